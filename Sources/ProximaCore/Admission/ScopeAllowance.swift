/// What admission needs to know about a request before it runs.
public struct AdmissionRequest: Sendable, Equatable {
    /// Tokens charged against tokens-per-minute limits until the real usage is known: the prompt's
    /// estimate plus the output expected (for example `max_tokens`).
    public var estimatedTokens: Int
    /// The request's `max_tokens` (or `max_completion_tokens`), if it sets one.
    public var maxTokens: Int?

    public init(estimatedTokens: Int, maxTokens: Int? = nil) {
        self.estimatedTokens = estimatedTokens
        self.maxTokens = maxTokens
    }
}

/// One scope's standing: its limits and what it has used of them. The gateway keeps one per key,
/// principal and tenant that has limits, and changes it under its own lock: ``check(_:at:)`` for
/// every scope of a request, then ``commit(_:)`` on each if all admit (``AdmissionDecision/admit(_:at:key:principal:tenant:)``
/// does both), and ``finish(_:promptTokens:completionTokens:price:at:)`` exactly once when the
/// answer ends.
public struct ScopeAllowance: Sendable, Equatable {
    public let scope: AdmissionScope
    public private(set) var limits: ScopeLimits
    public private(set) var requests: RateLimiter?
    public private(set) var tokens: RateLimiter?
    /// Admitted requests not yet finished.
    public private(set) var inFlight = 0
    public private(set) var budget: SpendBudget

    /// A fresh allowance at `at` (Unix seconds: budgets follow the UTC calendar).
    public init(scope: AdmissionScope, limits: ScopeLimits, at: Double) {
        self.scope = scope
        self.limits = limits
        requests = limits.requestsPerMinute.map { RateLimiter(perMinute: $0, at: at) }
        tokens = limits.tokensPerMinute.map { RateLimiter(perMinute: $0, at: at) }
        budget = SpendBudget(limits: limits, at: at)
    }

    /// Whether `request` may start at `at`, with the headers this scope would send. Changes nothing.
    public func check(_ request: AdmissionRequest, at: Double) -> ScopeCheck {
        var result = ScopeCheck(scope: scope, at: at, estimatedTokens: max(request.estimatedTokens, 0), maxTokensCap: limits.maxTokens)
        func refuse(_ refusal: AdmissionRefusal) {
            if let current = result.refusal, !refusal.isMoreRestrictive(than: current) { return }
            result.refusal = refusal
        }
        if let cap = limits.maxTokens, let asked = request.maxTokens, asked > cap {
            refuse(AdmissionRefusal(reason: .maxTokens(requested: asked), scope: scope, limit: Double(cap), retryAfter: nil))
        }
        if !budget.isUnlimited {
            let spend = budget.check(at: at)
            if let period = spend.exhausted {
                refuse(AdmissionRefusal(reason: .budget(period), scope: scope, limit: spend.limit.dollars, retryAfter: spend.retryAfter))
            }
        }
        if let cap = limits.concurrentRequests, !ConcurrencyLimit.admits(inFlight: inFlight, limit: cap) {
            refuse(
                AdmissionRefusal(
                    reason: .concurrency, scope: scope, limit: Double(cap), retryAfter: ConcurrencyLimit.retryAfterSeconds))
        }
        if let requests {
            let answer = requests.check(cost: 1, at: at)
            result.requests = answer
            if !answer.isAdmitted {
                refuse(AdmissionRefusal(reason: .requests, scope: scope, limit: requests.capacity, retryAfter: answer.retryAfter))
            }
        }
        if let tokens {
            let answer = tokens.check(cost: result.estimatedTokens, at: at)
            result.tokens = answer
            switch answer.outcome {
            case .admitted: break
            case .refused:
                refuse(AdmissionRefusal(reason: .tokens, scope: scope, limit: tokens.capacity, retryAfter: answer.retryAfter))
            case .exceedsCapacity:
                refuse(AdmissionRefusal(reason: .requestTooLarge, scope: scope, limit: tokens.capacity, retryAfter: nil))
            }
        }
        return result
    }

    /// Charges an admitted request: one request and its token estimate, and one more in flight.
    /// Call it with this allowance's own check, made under the same lock; a refused check changes
    /// nothing. Returns the receipt of the token charge, for the ticket.
    @discardableResult
    public mutating func commit(_ check: ScopeCheck) -> RateCharge? {
        guard check.isAdmitted else { return nil }
        requests?.charge(units: 1, at: check.at)
        inFlight = ConcurrencyLimit.started(inFlight)
        return tokens?.charge(units: AdmissionArithmetic.units(check.estimatedTokens), at: check.at)
    }

    /// Ends an admitted request, once: it no longer counts as in flight, its token estimate is
    /// corrected by the real usage, and its cost (usage × the serving endpoint's price) is added
    /// to the budgets of the day and month of `at` (Unix seconds). When the usage is unknown (a
    /// stream that broke before its usage chunk), pass the best estimate the caller has.
    public mutating func finish(_ ticket: AdmissionTicket, promptTokens: Int, completionTokens: Int, price: TokenPrice, at: Double) {
        inFlight = ConcurrencyLimit.ended(inFlight)
        let prompt = AdmissionArithmetic.wholeUnits(AdmissionArithmetic.units(promptTokens))
        let completion = AdmissionArithmetic.wholeUnits(AdmissionArithmetic.units(completionTokens))
        let (total, overflow) = prompt.addingReportingOverflow(completion)
        if let charge = ticket.tokenCharge(for: scope) {
            tokens?.settle(charge, actual: overflow ? Int.max : total, at: at)
        }
        if !budget.isUnlimited {
            budget.record(price.spend(promptTokens: prompt, completionTokens: completion), at: at)
        }
    }

    /// Adds what other replicas spent in this scope's windows (``SpendBudget/recordShared(today:thisMonth:at:)``).
    public mutating func recordSharedSpend(today: Money, thisMonth: Money, at: Double) {
        guard !budget.isUnlimited else { return }
        budget.recordShared(today: today, thisMonth: thisMonth, at: at)
    }

    /// New limits (a reload, an admin change): rate limits whose value is unchanged keep their
    /// state, changed ones start full, and budgets keep what was spent.
    public mutating func update(limits newLimits: ScopeLimits, at: Double) {
        if newLimits.requestsPerMinute != limits.requestsPerMinute {
            requests = newLimits.requestsPerMinute.map { RateLimiter(perMinute: $0, at: at) }
        }
        if newLimits.tokensPerMinute != limits.tokensPerMinute {
            tokens = newLimits.tokensPerMinute.map { RateLimiter(perMinute: $0, at: at) }
        }
        budget.update(
            dailyLimit: newLimits.dailyBudgetUSD.map(Money.init(dollars:)),
            monthlyLimit: newLimits.monthlyBudgetUSD.map(Money.init(dollars:)))
        limits = newLimits
    }

    /// The headers this scope would send at `at` on an answer that changed nothing.
    public func headers(at: Double) -> RateLimitHeaders {
        RateLimitHeaders(requests: requests?.snapshot(at: at), tokens: tokens?.snapshot(at: at))
    }
}

/// One scope's answer to one request, kept until the decision over all scopes is made.
public struct ScopeCheck: Sendable, Equatable {
    public var scope: AdmissionScope
    public var at: Double
    /// The estimate charged, never negative.
    public var estimatedTokens: Int
    /// The scope's largest allowed `max_tokens`, to apply to a request that sets none.
    public var maxTokensCap: Int?
    /// The most restrictive of this scope's refusals, `nil` when it admits.
    public var refusal: AdmissionRefusal?
    public var requests: RateCheck?
    public var tokens: RateCheck?

    public init(
        scope: AdmissionScope, at: Double, estimatedTokens: Int, maxTokensCap: Int? = nil, refusal: AdmissionRefusal? = nil,
        requests: RateCheck? = nil, tokens: RateCheck? = nil
    ) {
        self.scope = scope
        self.at = at
        self.estimatedTokens = estimatedTokens
        self.maxTokensCap = maxTokensCap
        self.refusal = refusal
        self.requests = requests
        self.tokens = tokens
    }

    public var isAdmitted: Bool { refusal == nil }
}

/// An admitted request's claim on its scopes, ended exactly once with
/// ``ScopeAllowance/finish(_:promptTokens:completionTokens:price:at:)`` on each of them.
public struct AdmissionTicket: Sendable, Equatable {
    /// The token estimate charged at admission.
    public var estimatedTokens: Int
    /// When it was charged.
    public var admittedAt: Double
    /// The receipts of the token charges, per scope with a tokens-per-minute limit.
    public var keyTokens: RateCharge?
    public var principalTokens: RateCharge?
    public var tenantTokens: RateCharge?

    public init(
        estimatedTokens: Int, admittedAt: Double, keyTokens: RateCharge? = nil, principalTokens: RateCharge? = nil,
        tenantTokens: RateCharge? = nil
    ) {
        self.estimatedTokens = estimatedTokens
        self.admittedAt = admittedAt
        self.keyTokens = keyTokens
        self.principalTokens = principalTokens
        self.tenantTokens = tenantTokens
    }

    public func tokenCharge(for scope: AdmissionScope) -> RateCharge? {
        switch scope {
        case .key: keyTokens
        case .principal: principalTokens
        case .tenant: tenantTokens
        }
    }
}
