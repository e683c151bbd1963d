import Testing
@testable import ProximaCore

/// Fleets and helpers for routing tests: a caller in Frankfurt, sites near and far.
enum RoutingFixture {
    static let frankfurt = Coordinates(latitude: 50.11, longitude: 8.68)

    static func endpoint(_ name: String, site: String, profile: String = "H100-8B", gpuHour: Double? = nil, limit: Int? = nil)
        -> EndpointSettings
    {
        EndpointSettings(
            name: name, url: "http://127.0.0.1:9000/v1", site: site, engine: .vllm, models: [.init(name: "m")],
            gpu: GPUSettings(profile: profile), pricing: gpuHour.map { PricingSettings(gpuHour: $0) }, maxConcurrency: limit)
    }

    static func fleet(_ endpoints: [EndpointSettings], models: [ModelSettings] = []) throws -> Fleet {
        try Fleet(
            configuration: ProximaConfiguration(
                sites: [
                    SiteSettings(name: "frankfurt", latitude: 50.11, longitude: 8.68, jurisdiction: "DE"),
                    SiteSettings(name: "london", latitude: 51.51, longitude: -0.13, jurisdiction: "GB"),
                    SiteSettings(name: "us-east", latitude: 38.95, longitude: -77.45, jurisdiction: "US-VA"),
                    SiteSettings(name: "sydney", latitude: -33.87, longitude: 151.21, jurisdiction: "AU"),
                ],
                endpoints: endpoints, models: models))
    }

    static func request(_ fleet: Fleet, prompt: Int = 1_000, output: Int? = 200, blocks: [UInt64] = []) -> RouteRequest {
        RouteRequest(
            model: fleet.models[0], stream: true, promptTokens: prompt, maxOutputTokens: output, prefixBlocks: blocks,
            clientLocation: frankfurt)
    }

    /// Puts `count` requests in flight on an endpoint, past their first token (decoding).
    static func load(_ telemetry: inout FleetTelemetry, _ endpoint: Int, _ count: Int, decoding: Bool = true) {
        for _ in 0..<count {
            _ = telemetry.begin(endpoint, at: 0)
            if decoding { telemetry.firstToken(endpoint, ttft: nil, predicted: nil, at: 0) }
        }
    }

    static func policy(_ kind: PolicyKind, target: Double = 1.0, central: String? = nil) -> RoutingPolicy {
        RoutingPolicy(name: kind.rawValue, kind: kind, ttftTargetSeconds: target, centralSite: central)
    }
}

@Suite struct RouterTests {
    typealias F = RoutingFixture
    let router = FleetRouter()

    @Test func predictedTTFTIsFlatBelowTheBatchSlotsAndSteepBeyond() throws {
        let fleet = try F.fleet([F.endpoint("a", site: "frankfurt")])
        func ttft(atLoad load: Int) -> Double {
            var telemetry = FleetTelemetry(endpointCount: 1)
            F.load(&telemetry, 0, load)
            let decision = router.decide(F.request(fleet), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 0, entropy: 0)
            return decision.candidates[0].evaluation.predictedTTFTSeconds
        }
        let idle = ttft(atLoad: 0)
        let busy = ttft(atLoad: 200)
        let saturated = ttft(atLoad: 256)
        let overloaded = ttft(atLoad: 356)
        #expect(idle > 0.04 && idle < 0.1, "1,000 prompt tokens at 25k tokens/s plus ~4 ms to the site: \(idle)")
        let slopeBelow = (busy - idle) / 200
        let slopeBeyond = (overloaded - saturated) / 100
        #expect(slopeBeyond > 20 * slopeBelow, "below: \(slopeBelow) s per request, beyond: \(slopeBeyond)")
        #expect(overloaded > 5, "100 requests queued behind 256 running ones wait seconds: \(overloaded)")
    }

    @Test func everyExclusionHasAKindAndAReason() throws {
        var models = [ModelSettings(name: "m", contextLength: 4_096)]
        models[0].fallbacks = []
        let fleet = try F.fleet(
            [
                F.endpoint("drained", site: "frankfurt"), F.endpoint("broken", site: "frankfurt"),
                F.endpoint("full", site: "frankfurt", limit: 2), F.endpoint("faraway", site: "sydney"),
                F.endpoint("fine", site: "london"),
                EndpointSettings(name: "other", url: "http://127.0.0.1:1/v1", models: [.init(name: "x")]),
            ], models: models)
        var telemetry = FleetTelemetry(endpointCount: fleet.endpoints.count)
        telemetry.setDrained(0, true)
        for _ in 0..<3 { telemetry.end(1, outcome: .failure, sawFirstToken: false, at: 0) }
        F.load(&telemetry, 2, 2)
        var request = F.request(fleet)
        request.constraints = [JurisdictionConstraint(allowed: ["DE", "GB"])]
        let decision = router.decide(
            request, policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 1, entropy: 0, limit: .max, explain: true)
        #expect(decision.candidates.map(\.endpoint) == [4])
        let kinds = Dictionary(uniqueKeysWithValues: decision.exclusions.map { (fleet.endpoints[$0.endpoint].name, $0.kind) })
        #expect(kinds == ["drained": .drained, "broken": .circuitOpen, "full": .saturated, "faraway": .residency, "other": .modelNotServed])
        let reasons = decision.exclusions.map(\.reason).joined(separator: " | ")
        #expect(reasons.contains("2 of 2 in flight"))
        #expect(reasons.contains("AU"))
        #expect(reasons.contains("3 failures"))

        let tooLong = router.decide(
            F.request(fleet, prompt: 4_000, output: 500), policy: F.policy(.balanced), fleet: fleet, telemetry: FleetTelemetry(endpointCount: 6),
            now: 0, entropy: 0)
        #expect(tooLong.candidates.isEmpty)
        #expect(tooLong.onlyContextTooLong)
        #expect(tooLong.exclusions.first?.reason.contains("4096") == true)
    }

    @Test func balancedPrefersTheNearSiteUntilItSaturates() throws {
        let fleet = try F.fleet([F.endpoint("near", site: "frankfurt"), F.endpoint("far", site: "us-east")])
        var telemetry = FleetTelemetry(endpointCount: 2)
        let idle = router.decide(F.request(fleet), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 0, entropy: 0)
        #expect(fleet.endpoints[idle.candidates[0].endpoint].name == "near")
        #expect(idle.candidates[1].evaluation.rttSeconds > 0.06)
        F.load(&telemetry, 0, 320)
        let saturated = router.decide(F.request(fleet), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 0, entropy: 0)
        #expect(fleet.endpoints[saturated.candidates[0].endpoint].name == "far")
        #expect(saturated.candidates[1].evaluation.queueWaitSeconds > 1)
        #expect(saturated.candidates[1].evaluation.freeSlots == 0)
    }

    @Test func sloTakesTheCheapestThatMeetsTheTargetElseTheFastest() throws {
        let fleet = try F.fleet([
            F.endpoint("h100", site: "frankfurt", profile: "H100-8B", gpuHour: 3.5),
            F.endpoint("rtx", site: "london", profile: "RTX-PRO-6000-8B", gpuHour: 1.6),
        ])
        let telemetry = FleetTelemetry(endpointCount: 2)
        let relaxed = router.decide(F.request(fleet), policy: F.policy(.slo, target: 1.0), fleet: fleet, telemetry: telemetry, now: 0, entropy: 0)
        #expect(fleet.endpoints[relaxed.candidates[0].endpoint].name == "rtx")
        #expect(relaxed.candidates[0].evaluation.costUSD < relaxed.candidates[1].evaluation.costUSD)
        #expect(relaxed.candidates.allSatisfy { $0.evaluation.meetsTarget == true })
        let strict = router.decide(F.request(fleet), policy: F.policy(.slo, target: 0.001), fleet: fleet, telemetry: telemetry, now: 0, entropy: 0)
        #expect(fleet.endpoints[strict.candidates[0].endpoint].name == "h100")
        #expect(strict.reason.contains("fastest"))
    }

    @Test func aBurstWithStaleMetricsSpreadsInsteadOfHerding() throws {
        let fleet = try F.fleet((0..<8).map { F.endpoint("e\($0)", site: "frankfurt") })
        var telemetry = FleetTelemetry(endpointCount: 8)
        var counts = [Int](repeating: 0, count: 8)
        for sequence in 0..<80 {
            let decision = router.decide(
                F.request(fleet), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 0, entropy: UInt64(sequence))
            let chosen = decision.candidates[0].endpoint
            let granted1 = telemetry.begin(chosen, at: 0)
            #expect(granted1)
            counts[chosen] += 1
        }
        #expect(counts.min()! >= 6, "\(counts)")
        #expect(counts.max()! <= 14, "\(counts)")
    }

    @Test func prefixSharingRequestsStickToOneEndpointUntilItIsLoaded() throws {
        let fleet = try F.fleet((0..<4).map { F.endpoint("e\($0)", site: "frankfurt") })
        var telemetry = FleetTelemetry(endpointCount: 4)
        let blocks: [UInt64] = (1...14).map { $0 &* 0x9E37_79B9 }
        let request = F.request(fleet, prompt: 8_000, blocks: blocks)
        var chosen: [Int] = []
        for sequence in 0..<6 {
            let decision = router.decide(request, policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 0, entropy: UInt64(sequence))
            let endpoint = decision.candidates[0].endpoint
            _ = telemetry.begin(endpoint, prefixBlocks: blocks, at: 0)
            telemetry.firstToken(endpoint, ttft: nil, predicted: nil, at: 0)
            chosen.append(endpoint)
            if sequence > 0 { #expect(decision.candidates[0].evaluation.cachedPromptTokens == 14 * 512) }
        }
        #expect(Set(chosen).count == 1, "\(chosen)")
        let home = chosen[0]
        F.load(&telemetry, home, 300)
        let loaded = router.decide(request, policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 0, entropy: 99)
        #expect(loaded.candidates[0].endpoint != home)
        // A request with another prefix does not care where this one is cached.
        let other = router.decide(
            F.request(fleet, prompt: 8_000, blocks: [7, 8, 9]), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry,
            now: 0, entropy: 5)
        #expect(other.candidates[0].evaluation.cachedPromptTokens == 0)
    }

    @Test func baselinesDoWhatTheirNamesSay() throws {
        let fleet = try F.fleet([
            F.endpoint("fra", site: "frankfurt", gpuHour: 3.5), F.endpoint("lon", site: "london", profile: "RTX-PRO-6000-8B", gpuHour: 1.6),
            F.endpoint("use-1", site: "us-east", gpuHour: 3.5), F.endpoint("use-2", site: "us-east", gpuHour: 3.5),
        ])
        var telemetry = FleetTelemetry(endpointCount: 4)
        F.load(&telemetry, 0, 5)
        F.load(&telemetry, 2, 1)
        func first(_ kind: PolicyKind, entropy: UInt64 = 0) -> String {
            let decision = router.decide(
                F.request(fleet), policy: F.policy(kind, central: "us-east"), fleet: fleet, telemetry: telemetry, now: 0,
                entropy: entropy)
            return fleet.endpoints[decision.candidates[0].endpoint].name
        }
        #expect(first(.nearest) == "fra")
        #expect(first(.cheapest) == "lon")
        #expect(first(.leastInflight) == "lon" || first(.leastInflight) == "use-2")
        #expect(first(.centralized) == "use-2", "the central site's least busy endpoint")
        var turns: [String: Int] = [:]
        for _ in 0..<40 { turns[first(.roundRobin), default: 0] += 1 }
        #expect(turns == ["fra": 10, "lon": 10, "use-1": 10, "use-2": 10])
        var randomPicks = Set<String>()
        for entropy in 0..<64 { randomPicks.insert(first(.random, entropy: UInt64(entropy))) }
        #expect(randomPicks.count == 4)
    }

    @Test func equalInputsAndEntropyGiveEqualDecisions() throws {
        let fleet = try F.fleet((0..<6).map { F.endpoint("e\($0)", site: $0 < 3 ? "frankfurt" : "london") })
        var telemetry = FleetTelemetry(endpointCount: 6)
        F.load(&telemetry, 1, 3)
        for entropy: UInt64 in [0, 1, 42, .max] {
            let a = router.decide(F.request(fleet), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 3, entropy: entropy)
            let b = router.decide(F.request(fleet), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 3, entropy: entropy)
            #expect(a.candidates == b.candidates)
        }
    }

    @Test func observedSlownessShiftsTrafficAndFadesWithoutNewObservations() throws {
        let fleet = try F.fleet([F.endpoint("slow", site: "frankfurt"), F.endpoint("ok", site: "frankfurt")])
        var telemetry = FleetTelemetry(endpointCount: 2)
        for _ in 0..<20 {
            _ = telemetry.begin(0, at: 0)
            telemetry.firstToken(0, ttft: 2.0, predicted: 0.05, at: 0)
            telemetry.end(0, outcome: .success, sawFirstToken: true, at: 0)
        }
        let now = router.decide(F.request(fleet), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 0, entropy: 0)
        #expect(fleet.endpoints[now.candidates[0].endpoint].name == "ok")
        let slow = try #require(now.candidates.first { $0.endpoint == 0 })
        #expect(slow.evaluation.observedCorrectionSeconds > 1.8)
        let later = router.decide(F.request(fleet), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 600, entropy: 0)
        let faded = try #require(later.candidates.first { $0.endpoint == 0 })
        #expect(faded.evaluation.observedCorrectionSeconds < 0.001, "ten minutes is twenty half-lives")
    }

    @Test func theQueuedPrefillTokensAheadSetThePredictedWait() throws {
        let fleet = try F.fleet([F.endpoint("short-prompts", site: "frankfurt"), F.endpoint("long-prompts", site: "frankfurt")])
        var telemetry = FleetTelemetry(endpointCount: 2)
        // Four requests awaiting their first token on each; those on the second have 8x the prompt.
        for _ in 0..<4 {
            _ = telemetry.begin(0, prefillTokens: 500, at: 0)
            _ = telemetry.begin(1, prefillTokens: 4_000, at: 0)
        }
        #expect(telemetry[0].pendingPrefillTokens == 2_000 && telemetry[1].pendingPrefillTokens == 16_000)
        let decision = router.decide(
            F.request(fleet, prompt: 1_000), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 0, entropy: 0, explain: true)
        let waits = Dictionary(uniqueKeysWithValues: decision.candidates.map { ($0.endpoint, $0.evaluation.queueWaitSeconds) })
        let rate = fleet.endpoints[0].performance.prefillRate(batch: 4)
        #expect(abs((waits[0] ?? 0) - 2_000 / rate) < 1e-9 && abs((waits[1] ?? 0) - 16_000 / rate) < 1e-9, "\(waits)")
        #expect(decision.candidates[0].endpoint == 0)
        // The tokens leave the queue with the first token, or with a request that ends without one.
        for _ in 0..<4 { telemetry.firstToken(1, ttft: nil, predicted: nil, prefillTokens: 4_000, at: 1) }
        telemetry.end(0, outcome: .failure, sawFirstToken: false, prefillTokens: 500, at: 1)
        #expect(telemetry[1].pendingPrefillTokens == 0 && telemetry[0].pendingPrefillTokens == 1_500)
    }

    @Test func sloKeepsAMarginOfTheTargetForPredictionError() throws {
        let fleet = try F.fleet([F.endpoint("cheap", site: "us-east", gpuHour: 1), F.endpoint("dear", site: "frankfurt", gpuHour: 9)])
        let telemetry = FleetTelemetry(endpointCount: 2)
        // From Frankfurt the cheap site's idle TTFT is about 0.2 s: inside a 0.25 s target, not inside 0.8 x 0.25 s.
        let request = F.request(fleet, prompt: 2_000)
        var policy = F.policy(.slo, target: 0.25)
        policy.sloMargin = 0
        let cheapTTFT = router.decide(request, policy: policy, fleet: fleet, telemetry: telemetry, now: 0, entropy: 0, explain: true)
            .candidates.first { $0.endpoint == 0 }?.evaluation.predictedTTFTSeconds ?? 0
        #expect(cheapTTFT > 0.2 && cheapTTFT < 0.25, "\(cheapTTFT)")
        #expect(router.decide(request, policy: policy, fleet: fleet, telemetry: telemetry, now: 0, entropy: 0).candidates[0].endpoint == 0)
        policy.sloMargin = 0.2
        #expect(router.decide(request, policy: policy, fleet: fleet, telemetry: telemetry, now: 0, entropy: 0).candidates[0].endpoint == 1)
    }

    @Test func freshEngineMetricsReplaceTheGatewaysOwnCount() throws {
        let fleet = try F.fleet([F.endpoint("a", site: "frankfurt")])
        var telemetry = FleetTelemetry(endpointCount: 1, settings: TelemetrySettings(staleAfterSeconds: 10))
        F.load(&telemetry, 0, 2)
        telemetry.recordEngineRead(0, snapshot: EngineLoadSnapshot(running: 256, waiting: 40, kvCacheUsage: 0.9, powerWatts: 600), at: 100)
        _ = telemetry.begin(0, at: 101)  // sent after the read: counts on top of the engine's numbers
        let fresh = router.decide(F.request(fleet), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 105, entropy: 0)
        let evaluation = fresh.candidates[0].evaluation
        #expect(evaluation.loadSource == .engine)
        #expect(evaluation.load == 297)
        #expect(abs(evaluation.freeKVCache - 0.1) < 1e-9)
        #expect(evaluation.powerHeadroom != nil && evaluation.powerHeadroom! < 0.2)
        #expect(evaluation.queueWaitSeconds > 1)
        let stale = router.decide(F.request(fleet), policy: F.policy(.balanced), fleet: fleet, telemetry: telemetry, now: 111, entropy: 0)
        #expect(stale.candidates[0].evaluation.loadSource == .gateway)
        #expect(stale.candidates[0].evaluation.load == 3)
    }

    @Test func gpuHourPricesBecomePerTokenPricesThroughThroughput() throws {
        let h100 = EndpointPerformance(settings: F.endpoint("a", site: "frankfurt", profile: "H100-8B", gpuHour: 3.5))
        let rtx = EndpointPerformance(settings: F.endpoint("b", site: "frankfurt", profile: "RTX-PRO-6000-8B", gpuHour: 1.6))
        #expect(h100.inputCostPerToken > 0 && h100.outputCostPerToken > h100.inputCostPerToken)
        // $3.5 an hour over 25k prefill tokens a second.
        #expect(abs(h100.inputCostPerToken - 3.5 / 3600 / 25_000) < 1e-15)
        // Less than half the price for 55% of the speed: cheaper per token.
        #expect(rtx.inputCostPerToken < h100.inputCostPerToken)
        #expect(rtx.outputCostPerToken < h100.outputCostPerToken)
        var hosted = F.endpoint("c", site: "frankfurt")
        hosted.gpu = nil
        hosted.pricing = PricingSettings(inputPerMillion: 0.5, outputPerMillion: 1.5)
        let perToken = EndpointPerformance(settings: hosted)
        #expect(perToken.inputCostPerToken == 0.5e-6 && perToken.outputCostPerToken == 1.5e-6)
        #expect(!perToken.profiled)
    }
}

@Suite struct RoutingSettingsTests {
    @Test func policiesAndTheirReferencesAreValidated() {
        var configuration = ConfigurationValidationTests.valid()
        configuration.routing.policy = "fastest"
        configuration.routing.routes = ["embeddings": "nearest", "images": "balanced"]
        configuration.routing.policies = [
            "cheap-fast": PolicySettings(kind: .slo, ttftTargetSeconds: 0),
            "central": PolicySettings(kind: .centralized),
            "nearest": PolicySettings(kind: .cheapest),
        ]
        configuration.routing.weights.cost = -1
        configuration.routing.centralSite = "atlantis"
        configuration.models[0].policy = "nope"
        let paths = Set(configuration.problems().map(\.keyPath))
        for path in [
            "routing.policy", "routing.routes.images", "routing.policies.cheap-fast.ttft_target_seconds", "routing.policies.nearest",
            "routing.weights.cost", "routing.central_site", "models[0].policy",
        ] {
            #expect(paths.contains(path), "\(path) in \(paths.sorted())")
        }
    }

    @Test func namedPoliciesInheritTheSharedParameters() {
        var settings = RoutingSettings(ttftTargetSeconds: 0.8, centralSite: "us-east")
        settings.policies["strict"] = PolicySettings(kind: .slo, ttftTargetSeconds: 0.3)
        #expect(RoutingPolicy.named("strict", in: settings)?.ttftTargetSeconds == 0.3)
        #expect(RoutingPolicy.named("slo", in: settings)?.ttftTargetSeconds == 0.8)
        #expect(RoutingPolicy.named("centralized", in: settings)?.centralSite == "us-east")
        #expect(RoutingPolicy.named("fastest", in: settings) == nil)
        #expect(RoutingPolicy.names(in: settings).contains("strict"))
    }
}
