import AsyncHTTPClient
import Foundation
import NIOCore
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// The edge stage over HTTP (docs/security.md): a class's policy per tenant — block, rate limit,
/// cache only — answered in the OpenAI error format, and the class visible to operators. Callers here
/// are unknown (no credential, an ordinary user agent) unless a test says otherwise.
@Suite(.serialized) struct EdgePolicyTests {
    static func configuration(upstream: FaultyUpstream, change: (inout ProximaConfiguration) -> Void) -> ProximaConfiguration {
        var configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "lab", latitude: 1, longitude: 2)],
            endpoints: [
                EndpointSettings(name: "chat-ep", url: upstream.baseURL, site: "lab", engine: .openai, models: [.init(name: "chat", upstream: "counted")])
            ])
        change(&configuration)
        return configuration
    }

    func withGateway(
        _ change: (inout ProximaConfiguration) -> Void, _ body: (RunningGateway, FaultyUpstream) async throws -> Void
    ) async throws {
        let upstream = try await FaultyUpstream.start()
        let gateway = try await RunningGateway.start(Self.configuration(upstream: upstream, change: change))
        try await gateway.run(stoppingAfter: upstream) { try await body(gateway, upstream) }
    }

    static let question = #"{"model":"chat","messages":[{"role":"user","content":"What are your opening hours?"}]}"#
    static let browser = [("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"), ("accept", "*/*"), ("accept-language", "en")]

    static func error(_ reply: TestHTTP.Reply) -> [String: Any]? { reply.json?["error"] as? [String: Any] }

    @Test func aBlockedClassIsRefusedWith403BeforeItsBodyIsRead() async throws {
        try await withGateway({ $0.edge.policies["unknown"] = .block }) { gateway, upstream in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: Self.browser)
            #expect(reply.status == 403)
            #expect(Self.error(reply)?["code"] as? String == "caller_blocked")
            #expect(Self.error(reply)?["type"] as? String == "permission_error")
            #expect(reply.headers.first(name: "x-proxima-caller-class") == "unknown")
            #expect(upstream.received.load(ordering: .relaxed) == 0)
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics")
            #expect(metrics.body.contains(#"proxima_edge_requests_total{class="unknown",action="block"} 1"#))
        }
    }

    @Test func aTenantsOwnPolicyReplacesTheDefaultForItsClass() async throws {
        // With authentication off every caller is tenant `default`: its table wins over the defaults.
        try await withGateway({
            $0.edge.policies["unknown"] = .block
            $0.edge.tenants["default"] = ["unknown": .allow]
        }) { gateway, upstream in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: Self.browser)
            #expect(reply.status == 200)
            #expect(upstream.received.load(ordering: .relaxed) == 1)
        }
    }

    @Test func aRateLimitedClassGets429WithRetryAfterPastItsRate() async throws {
        try await withGateway({ $0.edge.policies["unknown"] = EdgePolicy(.rateLimit, requestsPerMinute: 2) }) { gateway, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            for _ in 0..<2 {
                let reply = try await TestHTTP.post(url, json: Self.question, headers: Self.browser)
                #expect(reply.status == 200)
            }
            let third = try await TestHTTP.post(url, json: Self.question, headers: Self.browser)
            #expect(third.status == 429)
            #expect(Self.error(third)?["code"] as? String == "rate_limit_exceeded")
            let retry = third.headers.first(name: "retry-after").flatMap(Int.init)
            #expect(retry != nil && retry! >= 1 && retry! <= 30)
            #expect(upstream.received.load(ordering: .relaxed) == 2)
        }
    }

    @Test func aCacheOnlyClassIsServedOnlyWhatTheCacheHolds() async throws {
        try await withGateway({
            $0.cache = CacheSettings(enabled: true, semantic: .init(enabled: false))
            $0.edge.policies["suspicious"] = .init(.cacheOnly)
            $0.edge.unknown.suspiciousScore = 0.0
        }) { gateway, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            // Nothing cached yet: 429, and nothing is sent upstream or stored.
            let first = try await TestHTTP.post(url, json: Self.question, headers: Self.browser)
            #expect(first.status == 429)
            #expect(Self.error(first)?["code"] as? String == "cache_only")
            #expect(upstream.received.load(ordering: .relaxed) == 0)
        }
        try await withGateway({
            $0.cache = CacheSettings(enabled: true, semantic: .init(enabled: false))
            $0.edge.policies["declared_bot"] = .init(.cacheOnly)
            $0.edge.policies["suspicious"] = .allow
        }) { gateway, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            let person = try await TestHTTP.post(url, json: Self.question, headers: Self.browser)
            #expect(person.status == 200)
            let bot = try await TestHTTP.post(url, json: Self.question, headers: [("user-agent", "python-requests/2.32.3")])
            #expect(bot.status == 200)
            #expect(bot.headers.first(name: "x-proxima-cache") == "hit-exact")
            let other = try await TestHTTP.post(
                url, json: #"{"model":"chat","messages":[{"role":"user","content":"Something never asked"}]}"#,
                headers: [("user-agent", "python-requests/2.32.3")])
            #expect(other.status == 429)
            #expect(upstream.received.load(ordering: .relaxed) == 1)
        }
    }

    @Test func theExplainOutputNamesTheCallersClassAndPolicy() async throws {
        try await withGateway({ $0.edge.policies["declared_bot"] = EdgePolicy(.rateLimit, requestsPerMinute: 5) }) { gateway, _ in
            let reply = try await TestHTTP.post(
                gateway.baseURL + "/v1/route/explain", json: Self.question, headers: [("user-agent", "curl/8.5.0")])
            #expect(reply.status == 200)
            let caller = reply.json?["caller"] as? [String: Any]
            #expect(caller?["class"] as? String == "declared_bot")
            #expect(caller?["policy"] as? String == "rate_limit")
            #expect(caller?["requests_per_minute"] as? Int == 5)
        }
    }

    @Test func withAPublicTenantCallersWithoutACredentialAreClassifiedAndHeldToItsPolicies() async throws {
        try await withGateway({
            $0.auth = AuthSettings(mode: .keys, tenants: [TenantSettings(id: "public")])
            $0.edge.publicTenant = "public"
            $0.edge.tenants["public"] = ["declared_bot": .block]
        }) { gateway, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            let person = try await TestHTTP.post(url, json: Self.question, headers: Self.browser)
            #expect(person.status == 200)
            // Anonymous callers may not steer: the class header is for operators.
            #expect(person.headers.first(name: "x-proxima-caller-class") == nil)
            let script = try await TestHTTP.post(url, json: Self.question, headers: [("user-agent", "python-requests/2.32.3")])
            #expect(script.status == 403)
            #expect(Self.error(script)?["code"] as? String == "caller_blocked")
            // A credential that is present but wrong is still refused as before.
            let wrong = try await TestHTTP.post(url, json: Self.question, headers: Self.browser + [("authorization", "Bearer nonsense")])
            #expect(wrong.status == 401)
            #expect(upstream.received.load(ordering: .relaxed) == 1)
        }
        // Without a public tenant, no credential is a 401.
        try await withGateway({ $0.auth = AuthSettings(mode: .keys, tenants: [TenantSettings(id: "public")]) }) { gateway, _ in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: Self.browser)
            #expect(reply.status == 401)
        }
    }
}
