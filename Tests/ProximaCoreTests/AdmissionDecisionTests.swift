import Testing
@testable import ProximaCore

@Suite struct AdmissionDecisionTests {
    static let now = 1_707_955_200.0  // 2024-02-15T00:00:00Z

    struct Scopes {
        var key: ScopeAllowance?
        var principal: ScopeAllowance?
        var tenant: ScopeAllowance?

        init(key: ScopeLimits? = nil, principal: ScopeLimits? = nil, tenant: ScopeLimits? = nil, at: Double = AdmissionDecisionTests.now) {
            self.key = key.map { ScopeAllowance(scope: .key, limits: $0, at: at) }
            self.principal = principal.map { ScopeAllowance(scope: .principal, limits: $0, at: at) }
            self.tenant = tenant.map { ScopeAllowance(scope: .tenant, limits: $0, at: at) }
        }

        mutating func admit(tokens: Int = 100, maxTokens: Int? = nil, at: Double = AdmissionDecisionTests.now)
            -> (decision: AdmissionDecision, ticket: AdmissionTicket?)
        {
            AdmissionDecision.admit(
                AdmissionRequest(estimatedTokens: tokens, maxTokens: maxTokens), at: at, key: &key, principal: &principal,
                tenant: &tenant)
        }
    }

    @Test func admittedRequestsAreChargedToEveryScope() {
        var scopes = Scopes(
            key: ScopeLimits(requestsPerMinute: 60, tokensPerMinute: 10_000, concurrentRequests: 2),
            tenant: ScopeLimits(requestsPerMinute: 1_000, tokensPerMinute: 1_000_000))
        let (decision, ticket) = scopes.admit(tokens: 500)
        #expect(decision.isAdmitted)
        #expect(ticket?.estimatedTokens == 500)
        #expect(ticket?.keyTokens?.units == 500)
        #expect(ticket?.tenantTokens?.units == 500)
        #expect(ticket?.principalTokens == nil)
        #expect(scopes.key?.inFlight == 1)
        #expect(scopes.tenant?.inFlight == 1)
        #expect(scopes.key?.requests?.level == 1)
        #expect(scopes.tenant?.tokens?.level == 500)
        // The headers after the charge, from the scope with the smaller share left.
        #expect(decision.headers.requests == RateLimitSnapshot(limit: 60, remaining: 59, resetSeconds: 1))
        #expect(decision.headers.tokens == RateLimitSnapshot(limit: 10_000, remaining: 9_500, resetSeconds: 3))
        #expect(decision.headers.retryAfterSeconds == nil)
    }

    @Test func oneRefusingScopeChargesNoScope() {
        var scopes = Scopes(key: ScopeLimits(requestsPerMinute: 60), tenant: ScopeLimits(tokensPerMinute: 1_000))
        #expect(scopes.admit(tokens: 900).decision.isAdmitted)
        let (decision, ticket) = scopes.admit(tokens: 200)
        #expect(ticket == nil)
        #expect(decision.refusal?.reason == .tokens)
        #expect(decision.refusal?.scope == .tenant)
        #expect(scopes.key?.requests?.level == 1)
        #expect(scopes.key?.inFlight == 1)
        // A refusal shows the limits as they are, not as if the request had been charged.
        #expect(decision.headers.requests == RateLimitSnapshot(limit: 60, remaining: 59, resetSeconds: 1))
        #expect(decision.headers.tokens?.remaining == 100)
        #expect(decision.headers.retryAfterSeconds == 6)  // 100 tokens short at 1,000 per minute
    }

    @Test func theLongestWaitWinsAmongRateRefusals() throws {
        var scopes = Scopes(key: ScopeLimits(requestsPerMinute: 1), tenant: ScopeLimits(tokensPerMinute: 600))
        let ticket = try #require(scopes.admit(tokens: 300).ticket)
        // The answer used 900 tokens: the tenant owes 600 beyond its estimate.
        scopes.tenant?.finish(ticket, promptTokens: 450, completionTokens: 450, price: .free, at: Self.now)
        #expect(scopes.tenant?.tokens?.level == 900)
        // At 30 s the key waits 30 s more for its next request, the tenant 60 s for 600 tokens.
        let refusal = scopes.admit(tokens: 600, at: Self.now + 30).decision.refusal
        #expect(refusal?.reason == .tokens)
        #expect(refusal?.scope == .tenant)
        #expect(refusal?.retryAfterSeconds == 60)
        // At 40 s the tenant has room for 50 tokens; the key still waits 20 s.
        let later = scopes.admit(tokens: 50, at: Self.now + 40).decision.refusal
        #expect(later?.reason == .requests)
        #expect(later?.scope == .key)
        #expect(later?.retryAfterSeconds == 20)
    }

    @Test func equalWaitsGoToTheBroaderScope() {
        let key = AdmissionRefusal(reason: .requests, scope: .key, limit: 1, retryAfter: 30)
        let tenant = AdmissionRefusal(reason: .tokens, scope: .tenant, limit: 100, retryAfter: 30)
        #expect(tenant.isMoreRestrictive(than: key))
        #expect(!key.isMoreRestrictive(than: tenant))
        let decision = AdmissionDecision(
            key: ScopeCheck(scope: .key, at: 0, estimatedTokens: 0, refusal: key), principal: nil,
            tenant: ScopeCheck(scope: .tenant, at: 0, estimatedTokens: 0, refusal: tenant))
        #expect(decision.refusal == tenant)
    }

    @Test func aBudgetRefusalOutranksARateRefusalAndATooLargeMaxTokensOutranksBoth() {
        var scopes = Scopes(
            key: ScopeLimits(requestsPerMinute: 1, maxTokens: 1_000), tenant: ScopeLimits(dailyBudgetUSD: 0))
        let budget = scopes.admit().decision
        #expect(budget.refusal?.reason == .budget(.day))
        #expect(budget.refusal?.httpStatus == 429)
        #expect(budget.refusal?.code == "insufficient_quota")
        #expect(budget.refusal?.type == "insufficient_quota")
        #expect(budget.headers.retryAfterSeconds == 86_400)
        let tooMany = scopes.admit(maxTokens: 4_096).decision
        #expect(tooMany.refusal?.reason == .maxTokens(requested: 4_096))
        #expect(tooMany.refusal?.httpStatus == 400)
        #expect(tooMany.refusal?.param == "max_tokens")
        #expect(tooMany.refusal?.retryAfter == nil)
        #expect(tooMany.headers.retryAfterSeconds == nil)
    }

    @Test func aRequestLargerThanTheWholeTokenLimitIsRefusedWithoutRetryAfter() {
        var scopes = Scopes(principal: ScopeLimits(tokensPerMinute: 4_000))
        let decision = scopes.admit(tokens: 4_001).decision
        #expect(decision.refusal?.reason == .requestTooLarge)
        #expect(decision.refusal?.httpStatus == 429)
        #expect(decision.refusal?.code == "rate_limit_exceeded")
        #expect(decision.refusal?.type == "tokens")
        #expect(decision.headers.retryAfterSeconds == nil)
        #expect(decision.refusal?.message.contains("limit 4000") == true)
    }

    @Test func concurrencyIsFreedWhenARequestFinishes() throws {
        var scopes = Scopes(key: ScopeLimits(concurrentRequests: 1))
        let ticket = try #require(scopes.admit().ticket)
        let refused = scopes.admit().decision
        #expect(refused.refusal?.reason == .concurrency)
        #expect(refused.refusal?.type == "requests")
        #expect(refused.headers.retryAfterSeconds == 1)
        scopes.key?.finish(ticket, promptTokens: 10, completionTokens: 10, price: .free, at: Self.now + 1)
        #expect(scopes.key?.inFlight == 0)
        #expect(scopes.admit(at: Self.now + 1).decision.isAdmitted)
    }

    @Test func finishingCorrectsTheTokenEstimateAndRecordsTheSpend() throws {
        var scopes = Scopes(tenant: ScopeLimits(tokensPerMinute: 6_000, dailyBudgetUSD: 10))
        let ticket = try #require(scopes.admit(tokens: 2_000).ticket)
        let price = TokenPrice(inputPerMillion: 1, outputPerMillion: 2)
        scopes.tenant?.finish(ticket, promptTokens: 300, completionTokens: 200, price: price, at: Self.now + 1)
        // 2,000 charged, 100 refilled in a second, 1,500 refunded.
        #expect(abs((scopes.tenant?.tokens?.level ?? 0) - 400) < 1e-9)
        #expect(scopes.tenant?.budget.spentToday == Money(nanodollars: 700_000))
        #expect(scopes.tenant?.inFlight == 0)
    }

    @Test func theSmallestMaxTokensCapIsReported() {
        var scopes = Scopes(key: ScopeLimits(maxTokens: 4_096), principal: ScopeLimits(maxTokens: 1_024), tenant: ScopeLimits())
        let decision = scopes.admit(maxTokens: nil).decision
        #expect(decision.isAdmitted)
        #expect(decision.maxTokensCap == 1_024)
        #expect(scopes.admit(maxTokens: 1_024).decision.isAdmitted)
        #expect(!scopes.admit(maxTokens: 1_025).decision.isAdmitted)
    }

    @Test func unlimitedScopesAdmitWithoutHeaders() {
        var scopes = Scopes(key: .unlimited, tenant: .unlimited)
        let decision = scopes.admit(tokens: Int.max).decision
        #expect(decision.isAdmitted)
        #expect(decision.headers.isEmpty)
        var nothing = Scopes()
        #expect(nothing.admit().decision.isAdmitted)
    }

    @Test func theHeadersComeFromTheScopeClosestToExhaustionPerLimit() {
        var scopes = Scopes(
            key: ScopeLimits(requestsPerMinute: 10, tokensPerMinute: 1_000_000),
            tenant: ScopeLimits(requestsPerMinute: 1_000, tokensPerMinute: 1_000))
        let decision = scopes.admit(tokens: 500).decision
        #expect(decision.headers.requests?.limit == 10)
        #expect(decision.headers.tokens?.limit == 1_000)
    }

    @Test func reloadedLimitsKeepTheStateOfUnchangedOnes() {
        var allowance = ScopeAllowance(scope: .key, limits: ScopeLimits(requestsPerMinute: 2, tokensPerMinute: 100), at: 0)
        var none: ScopeAllowance?
        var other: ScopeAllowance?
        var scope: ScopeAllowance? = allowance
        _ = AdmissionDecision.admit(AdmissionRequest(estimatedTokens: 50), at: 0, key: &scope, principal: &none, tenant: &other)
        allowance = scope!
        allowance.update(limits: ScopeLimits(requestsPerMinute: 2, tokensPerMinute: 200, concurrentRequests: 5), at: 0)
        #expect(allowance.requests?.level == 1)
        #expect(allowance.tokens?.level == 0)
        #expect(allowance.inFlight == 1)
        allowance.update(limits: .unlimited, at: 0)
        #expect(allowance.requests == nil)
        #expect(allowance.headers(at: 0).isEmpty)
    }

    @Test func refusalsRenderAsOpenAIErrors() {
        let cases: [(AdmissionRefusal.Reason, Int, String, String)] = [
            (.requests, 429, "requests", "rate_limit_exceeded"), (.tokens, 429, "tokens", "rate_limit_exceeded"),
            (.requestTooLarge, 429, "tokens", "rate_limit_exceeded"), (.concurrency, 429, "requests", "rate_limit_exceeded"),
            (.maxTokens(requested: 9), 400, "invalid_request_error", "invalid_request"),
            (.budget(.month), 429, "insufficient_quota", "insufficient_quota"),
        ]
        for (reason, status, type, code) in cases {
            let refusal = AdmissionRefusal(reason: reason, scope: .key, limit: 5, retryAfter: 1.5)
            #expect(refusal.httpStatus == status)
            #expect(refusal.type == type)
            #expect(refusal.code == code)
            #expect(refusal.message.contains("this key"))
        }
        let budget = AdmissionRefusal(reason: .budget(.month), scope: .tenant, limit: 25, retryAfter: 90)
        #expect(budget.message == "You exceeded the monthly budget of $25.000000 for this tenant. Please try again in 1m30s.")
    }
}
