import AsyncHTTPClient
import Foundation
import NIOCore
import ProximaCore
import ProximaStore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// The admit and account stages over HTTP: rate limits, concurrency caps, `max_tokens` caps and
/// budgets per key, principal and tenant, with OpenAI's headers, and the settlement of every
/// admitted request by its real usage.
@Suite(.serialized) struct AdmissionTests {
    static let now = Date().timeIntervalSince1970

    static func configuration(upstream: String, price: Double? = nil, limits: AdmissionSettings = .init(), tenant: ScopeLimits = .unlimited)
        -> ProximaConfiguration
    {
        var configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "lab", latitude: 1, longitude: 2)],
            endpoints: [
                EndpointSettings(
                    name: "ep0", url: upstream, site: "lab", engine: .openai,
                    models: [.init(name: "chat", upstream: "ok"), .init(name: "slow", upstream: "slow-plain")],
                    pricing: price.map { PricingSettings(inputPerMillion: $0, outputPerMillion: $0) })
            ])
        configuration.auth = AuthSettings(
            mode: .keys, tenants: [TenantSettings(id: "acme", limits: tenant)], principals: [PrincipalSettings(id: "dev", tenant: "acme")])
        configuration.limits = limits
        return configuration
    }

    static func body(_ model: String = "chat", maxTokens: Int? = nil, stream: Bool = false) -> String {
        let max = maxTokens.map { #","max_tokens":\#($0)"# } ?? ""
        return #"{"model":"\#(model)","messages":[{"role":"user","content":"hello there"}]\#(max)\#(stream ? #","stream":true"# : "")}"#
    }

    func withGateway(
        _ configuration: (String) -> ProximaConfiguration, keyLimits: ScopeLimits = .unlimited,
        _ body: (RunningGateway, String, APIKey, FaultyUpstream) async throws -> Void
    ) async throws {
        let upstream = try await FaultyUpstream.start()
        let gateway = try await RunningGateway.start(configuration(upstream.baseURL))
        let (key, token) = APIKeySecret.mint(tenantID: "acme", principalID: "dev", limits: keyLimits, createdAt: Self.now)
        gateway.gateway.replaceIdentities(with: IdentitySnapshot(keys: [key]))
        try await gateway.run(stoppingAfter: upstream) {
            try await body(gateway, token, key, upstream)
        }
    }

    static func post(_ gateway: RunningGateway, _ token: String, _ body: String = body()) async throws -> TestHTTP.Reply {
        try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: body, headers: [("authorization", "Bearer \(token)")])
    }

    @Test func aRateLimitAdmitsItsAllowanceThenRefusesWithHeaders() async throws {
        try await withGateway({ Self.configuration(upstream: $0) }, keyLimits: ScopeLimits(requestsPerMinute: 3)) {
            gateway, token, _, upstream in
            for remaining in [2, 1, 0] {
                let reply = try await Self.post(gateway, token)
                #expect(reply.status == 200)
                #expect(reply.headers.first(name: "x-ratelimit-limit-requests") == "3")
                #expect(reply.headers.first(name: "x-ratelimit-remaining-requests") == String(remaining))
                #expect(reply.headers.first(name: "x-ratelimit-reset-requests") != nil)
                #expect(reply.headers.first(name: "retry-after") == nil)
            }
            let refused = try await Self.post(gateway, token)
            #expect(refused.status == 429)
            #expect(refused.errorObject?["code"] as? String == "rate_limit_exceeded")
            #expect(refused.errorObject?["type"] as? String == "requests")
            #expect(Int(refused.headers.first(name: "retry-after") ?? "") ?? 0 >= 1)
            #expect(refused.headers.first(name: "x-ratelimit-remaining-requests") == "0")
            #expect(refused.headers["x-ratelimit-limit-requests"].count == 1, "the refusal's own headers, not twice")
            #expect(upstream.received.load(ordering: .relaxed) == 3)
            // A refusal before admission (a model that does not exist) still shows the limits.
            let unknown = try await Self.post(gateway, token, #"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#)
            #expect(unknown.status == 404)
            #expect(unknown.headers.first(name: "x-ratelimit-limit-requests") == "3")
            #expect(unknown.headers["x-ratelimit-limit-requests"].count == 1)
        }
    }

    @Test func aConcurrencyCapRefusesWhileItsRequestsRunAndFreesWhenTheyEnd() async throws {
        try await withGateway({ Self.configuration(upstream: $0) }, keyLimits: ScopeLimits(concurrentRequests: 1)) {
            gateway, token, key, _ in
            async let slow = Self.post(gateway, token, Self.body("slow"))
            let scope = ScopeKey(scope: .key, tenantID: "acme", id: key.id)
            #expect(try await eventually { gateway.gateway.ledger.allowance(scope)?.inFlight == 1 })
            let refused = try await Self.post(gateway, token)
            #expect(refused.status == 429)
            #expect(refused.body.contains("concurrent"))
            #expect(refused.headers.first(name: "retry-after") == "1")
            #expect(try await slow.status == 200)
            #expect(gateway.gateway.ledger.allowance(scope)?.inFlight == 0)
            #expect(try await Self.post(gateway, token).status == 200)
            // A stream holds its slot until it ends, and releases it.
            #expect(try await Self.post(gateway, token, Self.body(stream: true)).status == 200)
            #expect(try await eventually { gateway.gateway.ledger.allowance(scope)?.inFlight == 0 })
        }
    }

    @Test func maxTokensAboveTheCapIsA400AndAMissingOneIsCapped() async throws {
        try await withGateway({ Self.configuration(upstream: $0, limits: AdmissionSettings(key: ScopeLimits(maxTokens: 100))) }) {
            gateway, token, _, upstream in
            let refused = try await Self.post(gateway, token, Self.body(maxTokens: 101))
            #expect(refused.status == 400)
            #expect(refused.errorObject?["param"] as? String == "max_tokens")
            #expect(try await Self.post(gateway, token, Self.body(maxTokens: 100)).status == 200)
            #expect(try await Self.post(gateway, token).status == 200)
            #expect(upstream.lastBody.withLock { $0 }.hasSuffix(#","max_tokens":100}"#))
        }
    }

    @Test func aSpentBudgetAnswersInsufficientQuota() async throws {
        // $1 per token: the first answer (5 + 3 tokens) costs $8, past the tenant's $1 a day.
        try await withGateway({ Self.configuration(upstream: $0, price: 1_000_000, tenant: ScopeLimits(dailyBudgetUSD: 1)) }) {
            gateway, token, _, upstream in
            #expect(try await Self.post(gateway, token).status == 200)
            let refused = try await Self.post(gateway, token)
            #expect(refused.status == 429)
            #expect(refused.errorObject?["code"] as? String == "insufficient_quota")
            #expect(refused.errorObject?["type"] as? String == "insufficient_quota")
            #expect(refused.headers.first(name: "retry-after") != nil)
            #expect(upstream.received.load(ordering: .relaxed) == 1)
            let tenant = try #require(gateway.gateway.ledger.allowance(ScopeKey(scope: .tenant, tenantID: "acme", id: "acme")))
            #expect(tenant.budget.spent(.day, at: Self.now) == Money(dollars: 8))
        }
    }

    @Test func theTokenEstimateIsCorrectedByTheRealUsageStreamsIncluded() async throws {
        try await withGateway({ Self.configuration(upstream: $0, tenant: ScopeLimits(tokensPerMinute: 6_000)) }) {
            gateway, token, _, _ in
            let scope = ScopeKey(scope: .tenant, tenantID: "acme", id: "acme")
            for stream in [false, true] {
                // Estimated at admission: the prompt plus max_tokens (500); the answer used 8.
                let reply = try await Self.post(gateway, token, Self.body(maxTokens: 500, stream: stream))
                #expect(reply.status == 200)
                let remaining = Int(reply.headers.first(name: "x-ratelimit-remaining-tokens") ?? "") ?? 0
                #expect(remaining < 6_000 - 500, "the estimate was charged at admission")
                // The bucket refills 100 tokens a second, far slower than the 500 given back.
                #expect(try await eventually(timeout: .seconds(1)) {
                    let level = gateway.gateway.ledger.allowance(scope)?.tokens?.level ?? .infinity
                    return level <= Double(8 * (stream ? 2 : 1))
                }, "after the answer only the real usage stays charged")
                #expect(gateway.gateway.ledger.allowance(scope)?.inFlight == 0)
            }
        }
    }

    @Test func configuredDefaultsApplyToTheAnonymousCallerWhenAuthIsOff() async throws {
        try await withGateway({ upstream in
            var configuration = Self.configuration(upstream: upstream, limits: AdmissionSettings(tenant: ScopeLimits(requestsPerMinute: 1)))
            configuration.auth.mode = .none
            return configuration
        }) { gateway, _, _, _ in
            let url = gateway.baseURL + "/v1/chat/completions"
            let first = try await TestHTTP.post(url, json: Self.body())
            let second = try await TestHTTP.post(url, json: Self.body())
            #expect(first.status == 200 && second.status == 429)
        }
    }
}
