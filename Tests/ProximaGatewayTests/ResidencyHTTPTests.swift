import AsyncHTTPClient
import Foundation
import NIOCore
import ProximaCache
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// Residency over HTTP (docs/governance.md): a tenant's rule is a hard routing constraint. The
/// caller here says it stands next to the US site, which would win on every axis; under an EU-only
/// rule it is never used, not for the first try, a retry or a hedge, and a request no EU endpoint
/// can take is a 503 naming residency.
@Suite(.serialized) struct ResidencyHTTPTests {
    /// `us` (nearest the caller), `fr`, `de`; each endpoint's upstream model picks its behaviour.
    static func configuration(upstream: FaultyUpstream, us: String = "counted", fr: String = "counted", de: String = "counted")
        -> ProximaConfiguration
    {
        var configuration = ProximaConfiguration(
            sites: [
                SiteSettings(name: "iad", latitude: 38.9, longitude: -77.4, jurisdiction: "US"),
                SiteSettings(name: "cdg", latitude: 49.0, longitude: 2.5, jurisdiction: "FR"),
                SiteSettings(name: "fra", latitude: 50.1, longitude: 8.7, jurisdiction: "DE"),
            ],
            endpoints: [
                EndpointSettings(name: "us-ep", url: upstream.baseURL, site: "iad", engine: .openai, models: [.init(name: "chat", upstream: us)]),
                EndpointSettings(name: "fr-ep", url: upstream.baseURL, site: "cdg", engine: .openai, models: [.init(name: "chat", upstream: fr)]),
                EndpointSettings(name: "de-ep", url: upstream.baseURL, site: "fra", engine: .openai, models: [.init(name: "chat", upstream: de)]),
            ])
        configuration.routing.policy = "nearest"
        return configuration
    }

    func withGateway(
        us: String = "counted", fr: String = "counted", de: String = "counted", _ change: (inout ProximaConfiguration) -> Void,
        _ body: (RunningGateway, FaultyUpstream) async throws -> Void
    ) async throws {
        let upstream = try await FaultyUpstream.start()
        var configuration = Self.configuration(upstream: upstream, us: us, fr: fr, de: de)
        change(&configuration)
        let gateway = try await RunningGateway.start(configuration)
        try await gateway.run(stoppingAfter: upstream) { try await body(gateway, upstream) }
    }

    static let question = #"{"model":"chat","messages":[{"role":"user","content":"Where is my data processed?"}]}"#
    /// The caller says it is at the US site (callers without a credential may steer).
    static let nearUS = [("x-proxima-client-location", "38.9,-77.4")]
    static func euOnly(_ configuration: inout ProximaConfiguration) {
        configuration.residency.tenants["default"] = .init(jurisdictions: ["EU"])
    }

    @Test func withoutARuleTheNearestSiteServesWhichIsWhyTheRuleMatters() async throws {
        try await withGateway({ _ in }) { gateway, _ in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: Self.nearUS)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "x-proxima-endpoint") == "us-ep")
        }
    }

    @Test func anEUOnlyTenantIsServedInTheEUWhereverItsCallerStands() async throws {
        try await withGateway(Self.euOnly) { gateway, _ in
            for _ in 0..<4 {
                let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: Self.nearUS)
                #expect(reply.status == 200)
                let endpoint = reply.headers.first(name: "x-proxima-endpoint")
                #expect(endpoint == "fr-ep" || endpoint == "de-ep")
                let route = reply.headers.first(name: "x-proxima-route") ?? ""
                #expect(route.contains("residency=EU"))
                #expect(route.contains("excluded_residency=1"))
            }
            let explain = try await TestHTTP.post(gateway.baseURL + "/v1/route/explain", json: Self.question, headers: Self.nearUS)
            #expect(explain.status == 200)
            let excluded = explain.json?["excluded"] as? [[String: Any]] ?? []
            #expect(excluded.count == 1)
            #expect(excluded.first?["endpoint"] as? String == "us-ep")
            #expect(excluded.first?["kind"] as? String == "residency")
            #expect((excluded.first?["reason"] as? String)?.contains("is in US; residency allows EU") == true)
            let residency = explain.json?["residency"] as? [String: Any]
            #expect(residency?["rule"] as? [String] == ["EU"])
            #expect((residency?["jurisdictions"] as? [String])?.contains("DE") == true)
        }
    }

    @Test func retriesStayInsideTheRule() async throws {
        // France is nearer the caller than Germany; it fails, and the retry goes to Germany, not the US.
        try await withGateway(fr: "fail500", Self.euOnly) { gateway, _ in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: Self.nearUS)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "x-proxima-endpoint") == "de-ep")
        }
        // Every EU endpoint fails: the caller gets the failure, not an answer from abroad.
        try await withGateway(fr: "fail500", de: "fail500", Self.euOnly) { gateway, _ in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: Self.nearUS)
            #expect(reply.status >= 500)
            #expect(reply.headers.first(name: "x-proxima-endpoint") != "us-ep")
        }
    }

    @Test func aHedgeStaysInsideTheRule() async throws {
        try await withGateway(fr: "hang", {
            Self.euOnly(&$0)
            $0.routing.hedging = HedgingSettings(enabled: true, delayFactor: 1, minimumDelaySeconds: 0.05)
            $0.server.timeouts.firstByte = 5
        }) { gateway, _ in
            // Hedges are for streams: a late first event.
            let stream = #"{"model":"chat","messages":[{"role":"user","content":"Where?"}],"stream":true}"#
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: stream, headers: Self.nearUS)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "x-proxima-endpoint") == "de-ep")
            #expect(reply.body.hasSuffix("data: [DONE]\n\n"))
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_hedges_total{model="chat",outcome="hedge_won"} 1"#))
        }
    }

    @Test func aFallbackModelIsUsedOnlyInsideTheRule() async throws {
        // `big` is served only in the US; its fallback `chat` in the US, France and Germany.
        try await withGateway({
            Self.euOnly(&$0)
            $0.endpoints.append(
                EndpointSettings(name: "big-us", url: $0.endpoints[0].url, site: "iad", engine: .openai, models: [.init(name: "big", upstream: "counted")]))
            $0.models = [ModelSettings(name: "big", fallbacks: ["chat"])]
        }) { gateway, _ in
            let big = #"{"model":"big","messages":[{"role":"user","content":"Where?"}]}"#
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: big, headers: Self.nearUS)
            #expect(reply.status == 200)
            let endpoint = reply.headers.first(name: "x-proxima-endpoint")
            #expect(endpoint == "fr-ep" || endpoint == "de-ep")
        }
    }

    @Test func noAllowedEndpointIsA503NamingResidencyAndNothingIsSent() async throws {
        try await withGateway({ $0.residency.tenants["default"] = .init(jurisdictions: ["JP"]) }) { gateway, upstream in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: Self.nearUS)
            #expect(reply.status == 503)
            let error = reply.json?["error"] as? [String: Any]
            #expect(error?["code"] as? String == "residency_unavailable")
            #expect((error?["message"] as? String)?.contains("residency rule (JP)") == true)
            #expect(upstream.received.load(ordering: .relaxed) == 0)
        }
    }

    @Test func aModelsRuleAndAProviderRuleApplyToo() async throws {
        try await withGateway({
            $0.sites[2].provider = "bigcloud"
            $0.residency.models["chat"] = .init(jurisdictions: ["DE", "FR"], providers: ["ownhost"])
        }) { gateway, _ in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: Self.nearUS)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "x-proxima-endpoint") == "fr-ep")
            let explain = try await TestHTTP.post(gateway.baseURL + "/v1/route/explain", json: Self.question, headers: Self.nearUS)
            let excluded = (explain.json?["excluded"] as? [[String: Any]] ?? []).compactMap { $0["endpoint"] as? String }.sorted()
            #expect(excluded == ["de-ep", "us-ep"])
        }
    }

    @Test func thePromptIsEmbeddedForTheSemanticCacheOnlyInsideTheRule() async throws {
        // The only embeddings endpoint is in the US: under an EU rule the prompt never goes there.
        let embedder = try await FaultyUpstream.start()
        defer { Task { await embedder.stop() } }
        for ruled in [false, true] {
            let before = embedder.received.load(ordering: .relaxed)
            try await withGateway({
                $0.endpoints.append(
                    EndpointSettings(name: "embed-us", url: embedder.baseURL, site: "iad", engine: .openai, models: [.init(name: "embedder", upstream: "embed")]))
                $0.cache = CacheSettings(enabled: true)
                $0.cache.semantic = .init(enabled: true, model: "embedder", threshold: 0.8, deadlineSeconds: 1)
                if ruled { Self.euOnly(&$0) }
            }) { gateway, _ in
                let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: Self.nearUS)
                #expect(reply.status == 200)
            }
            let embedded = embedder.received.load(ordering: .relaxed) - before
            #expect(embedded == (ruled ? 0 : 1), "ruled \(ruled): \(embedded) embedding calls")
        }
    }

    @Test func theCacheNeverServesAcrossRules() throws {
        let body = ByteBuffer(string: Self.question)
        let inference = try InferenceRequest(operation: .chatCompletions, body: body)
        let identity = CallerIdentity.anonymous
        let fleet = try Fleet(configuration: ProximaConfiguration(
            sites: [SiteSettings(name: "lab", latitude: 0, longitude: 0)],
            endpoints: [EndpointSettings(name: "e", url: "http://127.0.0.1:1", site: "lab", engine: .openai, models: [.init(name: "chat")])]))
        let model = try #require(fleet.model(named: "chat"))
        let settings = CacheSettings(enabled: true)
        func key(_ residency: String) -> CacheKey? {
            guard case .use(let plan, _) = ResponseCache.decide(
                inference, caller: identity, model: model, headers: [:], settings: settings, residency: residency)
            else { return nil }
            return plan.exactKey
        }
        let none = key("")
        let eu = key(ResidencyRule(.init(jurisdictions: ["EU"]), groups: .builtIn).canonicalKey)
        let de = key(ResidencyRule(.init(jurisdictions: ["DE"]), groups: .builtIn).canonicalKey)
        #expect(none != nil && eu != nil && de != nil)
        #expect(none != eu)
        #expect(eu != de)
        #expect(key(ResidencyRule(.init(jurisdictions: ["EU"]), groups: .builtIn).canonicalKey) == eu)
    }
}
