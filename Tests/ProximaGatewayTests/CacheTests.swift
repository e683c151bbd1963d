import AsyncHTTPClient
import Foundation
import NIOCore
import ProximaCore
import ProximaStore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// The cache stage over HTTP (docs/cache.md): what is served from which tier, what is never stored,
/// tenants kept apart, coalescing, and a broken embeddings model that never fails a request. The
/// upstream is `FaultyUpstream`: its `counted` model answers differently each time, so an answer from
/// the cache can be told from a fresh one; its `embed` model gives deterministic word-hash vectors.
@Suite(.serialized) struct CacheTests {
    static func configuration(
        chat: String = "counted", embed: String? = "embed", upstream: FaultyUpstream, threshold: Double = 0.8,
        change: (inout CacheSettings) -> Void = { _ in }
    ) -> ProximaConfiguration {
        var endpoints = [
            EndpointSettings(name: "chat-ep", url: upstream.baseURL, site: "lab", engine: .openai, models: [.init(name: "chat", upstream: chat)])
        ]
        if let embed {
            endpoints.append(
                EndpointSettings(name: "embed-ep", url: upstream.baseURL, site: "lab", engine: .openai, models: [.init(name: "embedder", upstream: embed)]))
        }
        var configuration = ProximaConfiguration(sites: [SiteSettings(name: "lab", latitude: 1, longitude: 2)], endpoints: endpoints)
        var cache = CacheSettings(enabled: true)
        cache.semantic = .init(enabled: embed != nil, model: embed == nil ? nil : "embedder", threshold: threshold, deadlineSeconds: 1)
        change(&cache)
        configuration.cache = cache
        return configuration
    }

    static func chat(_ text: String, stream: Bool = false, extra: String = "") -> String {
        #"{"model":"chat","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"# + JSONScanner.quoted(text) + "}]"
            + (stream ? #","stream":true,"stream_options":{"include_usage":true}"# : "") + extra + "}"
    }

    static func content(_ reply: TestHTTP.Reply) -> String? {
        ((reply.json?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
    }

    static func cacheHeader(_ reply: TestHTTP.Reply) -> String? { reply.headers.first(name: "x-proxima-cache") }

    func withCache(
        chat: String = "counted", embed: String? = "embed", threshold: Double = 0.8, change: (inout CacheSettings) -> Void = { _ in },
        _ body: (RunningGateway, FaultyUpstream) async throws -> Void
    ) async throws {
        let upstream = try await FaultyUpstream.start()
        let gateway = try await RunningGateway.start(
            Self.configuration(chat: chat, embed: embed, upstream: upstream, threshold: threshold, change: change))
        try await gateway.run(stoppingAfter: upstream) { try await body(gateway, upstream) }
    }

    // MARK: exact tier

    @Test func anIdenticalRequestIsAnsweredFromTheExactTierWhateverItsKeyOrderAndSpacing() async throws {
        try await withCache(embed: nil) { gateway, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            let first = try await TestHTTP.post(url, json: Self.chat("What are your opening hours?"))
            #expect(first.status == 200)
            #expect(Self.cacheHeader(first) == "miss")
            let reordered = #"{ "messages" : [ {"content":"Be brief.","role":"system"}, {"role":"user","content":"What are your opening hours?"} ], "model":"chat" }"#
            let second = try await TestHTTP.post(url, json: reordered)
            #expect(second.status == 200)
            #expect(Self.cacheHeader(second) == "hit-exact")
            #expect(Self.content(second) == Self.content(first))
            #expect(second.json?["id"] as? String != first.json?["id"] as? String, "a hit gets a fresh id")
            #expect(upstream.received.load(ordering: .relaxed) == 1)
            // Billed nothing by default: usage reports what the caller pays.
            let usage = second.json?["usage"] as? [String: Any]
            #expect(usage?["completion_tokens"] as? Int == 0)
            #expect(second.headers.first(name: "x-proxima-endpoint") == nil)
            // A different sampling parameter is a different request.
            let warmer = try await TestHTTP.post(url, json: Self.chat("What are your opening hours?", extra: #","temperature":0.2"#))
            #expect(Self.cacheHeader(warmer) == "miss")
            #expect(upstream.received.load(ordering: .relaxed) == 2)
        }
    }

    @Test func aWholeAnswerIsReplayedAsTheEnginesStream() async throws {
        try await withCache(embed: nil, change: { $0.billing = .original }) { gateway, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            let first = try await TestHTTP.post(url, json: Self.chat("Where is my parcel?"))
            #expect(Self.cacheHeader(first) == "miss")
            let replay = try await TestHTTP.post(url, json: Self.chat("Where is my parcel?", stream: true))
            #expect(replay.status == 200)
            #expect(Self.cacheHeader(replay) == "hit-exact")
            #expect(replay.headers.first(name: "content-type") == "text/event-stream")
            let events = replay.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.last == "data: [DONE]")
            var text = ""
            var finish: String?
            var usage: [String: Any]?
            var ids = Set<String>()
            for event in events.dropLast() {
                #expect(event.hasPrefix("data: "))
                let object = try #require(try JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any])
                #expect(object["object"] as? String == "chat.completion.chunk")
                ids.insert(object["id"] as? String ?? "")
                for choice in object["choices"] as? [[String: Any]] ?? [] {
                    text += (choice["delta"] as? [String: Any])?["content"] as? String ?? ""
                    if let reason = choice["finish_reason"] as? String { finish = reason }
                }
                if let reported = object["usage"] as? [String: Any] { usage = reported }
            }
            #expect(text == Self.content(first))
            #expect(finish == "stop")
            #expect(ids.count == 1, "every chunk carries the same id")
            // `billing: original`: the usage the original answer reported.
            #expect(usage?["completion_tokens"] as? Int == 3)
            #expect(upstream.received.load(ordering: .relaxed) == 1)
        }
    }

    @Test func aStreamIsStoredOnlyWhenItEndedWell() async throws {
        try await withCache(embed: nil) { gateway, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            let first = try await TestHTTP.post(url, json: Self.chat("Stream me", stream: true))
            #expect(Self.cacheHeader(first) == "miss")
            #expect(first.body.hasSuffix("data: [DONE]\n\n"))
            let again = try await TestHTTP.post(url, json: Self.chat("Stream me"))
            #expect(Self.cacheHeader(again) == "hit-exact")
            #expect(Self.content(again) == "answer 1")
            #expect(upstream.received.load(ordering: .relaxed) == 1)
        }
        // Errors, aborted and failed streams, and answers that are not completions are never stored.
        for model in ["fail500", "stream-abort", "stream-error", "big"] {
            try await withCache(chat: model, embed: nil) { gateway, upstream in
                let url = gateway.baseURL + "/v1/chat/completions"
                for _ in 0..<2 {
                    let reply = try await TestHTTP.post(url, json: Self.chat("Fail me", stream: model.hasPrefix("stream")))
                    #expect(Self.cacheHeader(reply) == "miss", "\(model)")
                }
                #expect(upstream.received.load(ordering: .relaxed) >= 2, "\(model): both went upstream")
                #expect(gateway.gateway.cache.exact.statistics.entries == 0, "\(model)")
                #expect(gateway.gateway.cache.flightsInProgress == 0, "\(model)")
            }
        }
    }

    @Test func callersControlReadingAndWritingPerRequest() async throws {
        try await withCache(embed: nil) { gateway, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            let unstored = try await TestHTTP.post(url, json: Self.chat("Private question"), headers: [("cache-control", "no-store")])
            #expect(Self.cacheHeader(unstored) == "miss")
            let next = try await TestHTTP.post(url, json: Self.chat("Private question"))
            #expect(Self.cacheHeader(next) == "miss", "no-store kept nothing")
            let fresh = try await TestHTTP.post(url, json: Self.chat("Private question"), headers: [("cache-control", "no-cache")])
            #expect(Self.cacheHeader(fresh) == "bypass", "no-cache does not read")
            #expect(upstream.received.load(ordering: .relaxed) == 3)
            let cached = try await TestHTTP.post(url, json: Self.chat("Private question"))
            #expect(Self.cacheHeader(cached) == "hit-exact")
            #expect(Self.content(cached) == "answer 3", "no-cache still stored the fresh answer")
            // Not cached by default: high temperature, several choices, log probabilities.
            for extra in [#","temperature":1.5"#, #","n":2"#, #","logprobs":true"#] {
                let reply = try await TestHTTP.post(url, json: Self.chat("Private question", extra: extra))
                #expect(Self.cacheHeader(reply) == "bypass", "\(extra)")
            }
        }
    }

    @Test func identicalRequestsInFlightTogetherRunOnce() async throws {
        try await withCache(chat: "counted-slow", embed: nil) { gateway, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            async let first = TestHTTP.post(url, json: Self.chat("Coalesce me"))
            try await Task.sleep(for: .milliseconds(150))
            async let second = TestHTTP.post(url, json: Self.chat("Coalesce me"))
            let replies = try await [first, second]
            #expect(replies.allSatisfy { $0.status == 200 })
            #expect(Set(replies.map { Self.cacheHeader($0) ?? "" }) == ["miss", "hit-exact"])
            #expect(Self.content(replies[0]) == Self.content(replies[1]))
            #expect(upstream.received.load(ordering: .relaxed) == 1)
            #expect(gateway.gateway.cache.flightsInProgress == 0)
        }
    }

    // MARK: semantic tier

    @Test func aNearRepeatIsServedFromTheSemanticTierAndANegationIsNot() async throws {
        try await withCache { gateway, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            let first = try await TestHTTP.post(url, json: Self.chat("How do I enable two factor login on my account"))
            #expect(Self.cacheHeader(first) == "miss")
            let near = try await TestHTTP.post(url, json: Self.chat("how do I enable two factor login on my account?"))
            #expect(Self.cacheHeader(near) == "hit-semantic")
            #expect(Self.content(near) == Self.content(first))
            let opposite = try await TestHTTP.post(url, json: Self.chat("How do I disable two factor login on my account"))
            #expect(Self.cacheHeader(opposite) == "miss", "the negation guard refuses the nearest prompt")
            // Another system prompt is another partition, however similar the question.
            let otherSystem = try await TestHTTP.post(
                url, json: Self.chat("How do I enable two factor login on my account").replacingOccurrences(of: "Be brief.", with: "Be kind."))
            #expect(Self.cacheHeader(otherSystem) == "miss")
            let metrics = String(decoding: gateway.gateway.metrics.exposition(), as: UTF8.self)
            #expect(metrics.contains(#"proxima_cache_guard_rejections_total{guard="negation"} 1"#))
            #expect(metrics.contains(#"proxima_cache_lookups_total{tier="semantic",outcome="hit",reason="similar"} 1"#))
            // Three chat requests reached the upstream, beside the embeddings.
            #expect(gateway.gateway.cache.semantic.statistics.entries == 3)
        }
    }

    @Test func aBrokenEmbeddingsModelNeverFailsARequest() async throws {
        for embed in ["embed-slow", "embed-bad", "fail500", "hang"] {
            try await withCache(embed: embed, change: { $0.semantic.deadlineSeconds = 0.3 }) { gateway, upstream in
                let url = gateway.baseURL + "/v1/chat/completions"
                for _ in 0..<2 {
                    let reply = try await TestHTTP.post(url, json: Self.chat("Anything at all \(embed)?"))
                    #expect(reply.status == 200, "\(embed)")
                }
                let metrics = String(decoding: gateway.gateway.metrics.exposition(), as: UTF8.self)
                #expect(metrics.contains("proxima_cache_embedding_failures_total"), "\(embed)")
                // The exact tier still works without vectors.
                let third = try await TestHTTP.post(url, json: Self.chat("Anything at all \(embed)?"))
                #expect(Self.cacheHeader(third) == "hit-exact", "\(embed)")
            }
        }
    }

    /// The cache reads every caller's body again (its canonical form) and every upstream answer: with
    /// both tiers on, hostile and mutated bodies still get a prompt answer, and the gateway recovers.
    @Test func hostileBodiesGetAPromptAnswerWithTheCacheOn() async throws {
        try await withCache(chat: "ok") { gateway, upstream in
            let probes = HostileInputTests.probes()
            for path in ["/v1/chat/completions", "/v1/completions"] {
                _ = try await HostileInputTests.send(probes.map { ("\(path) \($0.0)", $0.1) }, to: gateway, path: path)
            }
            var random = SplitMix64(seed: Fuzzing.seed)
            let seed = Array(Self.chat("Mutate me please", extra: #","temperature":0.5,"tools":[{"type":"function","function":{"name":"f"}}]"#).utf8)
            let mutations = (0..<min(Fuzzing.iterations(default: 300), 5_000)).map { ("mutation \($0)", Fuzzing.mutate(seed, using: &random)) }
            let statuses = try await HostileInputTests.send(mutations, to: gateway)
            #expect(statuses[200, default: 0] > 0 && statuses[400, default: 0] > 0, "\(statuses)")
            try await HostileInputTests.checkRecovered(gateway, upstream)
            #expect(gateway.gateway.cache.flightsInProgress == 0)
        }
    }

    /// Vectors whose dimension changes from one answer to the next are refused and counted, never
    /// compared: the requests are served uncached.
    @Test func vectorsOfTheWrongDimensionAreRefusedAndCounted() async throws {
        try await withCache(embed: "embed-ragged") { gateway, _ in
            let url = gateway.baseURL + "/v1/chat/completions"
            for text in ["even", "odd!", "four", "five5"] {
                let reply = try await TestHTTP.post(url, json: Self.chat(text))
                #expect(reply.status == 200)
            }
            let metrics = String(decoding: gateway.gateway.metrics.exposition(), as: UTF8.self)
            #expect(metrics.contains(#"proxima_cache_embedding_failures_total{reason="invalid_vector"}"#))
            #expect(gateway.gateway.cache.semantic.statistics.entries == 3, "only the vectors of the first dimension are kept (five5 has one more)")
        }
    }

    // MARK: tenants

    @Test func tenantsNeverShareAnswersInEitherTier() async throws {
        let upstream = try await FaultyUpstream.start()
        var configuration = Self.configuration(upstream: upstream)
        configuration.auth = AuthSettings(
            mode: .keys, tenants: [TenantSettings(id: "acme"), TenantSettings(id: "globex")],
            principals: [PrincipalSettings(id: "a", tenant: "acme"), PrincipalSettings(id: "g", tenant: "globex")])
        let gateway = try await RunningGateway.start(configuration)
        let now = Date().timeIntervalSince1970
        let acmeKey = APIKeySecret.mint(tenantID: "acme", principalID: "a", createdAt: now)
        let globexKey = APIKeySecret.mint(tenantID: "globex", principalID: "g", createdAt: now)
        gateway.gateway.replaceIdentities(with: IdentitySnapshot(keys: [acmeKey.key, globexKey.key]))
        let tokens = ["acme": acmeKey.token, "globex": globexKey.token]
        try await gateway.run(stoppingAfter: upstream) {
            let url = gateway.baseURL + "/v1/chat/completions"
            func ask(_ tenant: String, _ text: String) async throws -> TestHTTP.Reply {
                try await TestHTTP.post(url, json: Self.chat(text), headers: [("authorization", "Bearer \(tokens[tenant]!)")])
            }
            let acme = try await ask("acme", "What is the refund policy?")
            #expect(Self.cacheHeader(acme) == "miss")
            let acmeAgain = try await ask("acme", "What is the refund policy?")
            #expect(Self.cacheHeader(acmeAgain) == "hit-exact")
            // The same bytes from another tenant: a miss, in the exact tier and the semantic tier.
            let globex = try await ask("globex", "What is the refund policy?")
            #expect(Self.cacheHeader(globex) == "miss")
            #expect(Self.content(globex) != Self.content(acme))
            let globexNear = try await ask("globex", "what is the refund policy")
            #expect(Self.cacheHeader(globexNear) == "hit-semantic")
            #expect(Self.content(globexNear) == Self.content(globex), "globex's own answer, never acme's")
            let acmeNear = try await ask("acme", "what is the refund policy")
            #expect(Self.content(acmeNear) == Self.content(acme))
            #expect(upstream.received.load(ordering: .relaxed) >= 2)
        }
    }
}
