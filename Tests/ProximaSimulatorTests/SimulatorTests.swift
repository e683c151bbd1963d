import Testing
@testable import ProximaCore
@testable import ProximaSimulator

@Suite struct EventQueueTests {
    @Test func eventsComeOutByTimeAndInSchedulingOrderAtEqualTimes() {
        var queue = EventQueue<String>()
        queue.schedule("c", at: 3)
        queue.schedule("a1", at: 1)
        queue.schedule("b", at: 2)
        queue.schedule("a2", at: 1)
        queue.schedule("a3", at: 1)
        var order: [String] = []
        while let (_, event) = queue.next() { order.append(event) }
        #expect(order == ["a1", "a2", "a3", "b", "c"])
        #expect(queue.isEmpty)
    }

    @Test func manyInterleavedEventsStaySorted() {
        var queue = EventQueue<Int>()
        var random = SplitMix64(seed: 9)
        var times: [Double] = []
        var now = 0.0
        for step in 0..<20_000 {
            queue.schedule(step, at: now + Double(random.next() % 1_000) / 10)
            if step % 3 == 0, let (time, _) = queue.next() {
                #expect(time >= now)
                now = time
                times.append(time)
            }
        }
        while let (time, _) = queue.next() { times.append(time) }
        #expect(times == times.sorted())
        #expect(times.count == 20_000)
    }
}

@Suite struct FleetSimulationTests {
    static let frankfurt = Coordinates(latitude: 50.11, longitude: 8.68)
    static let sydney = Coordinates(latitude: -33.87, longitude: 151.21)

    static func fleet(_ endpoints: [(String, String)]) throws -> Fleet {
        try Fleet(
            configuration: ProximaConfiguration(
                sites: [
                    SiteSettings(name: "frankfurt", latitude: 50.11, longitude: 8.68, jurisdiction: "DE"),
                    SiteSettings(name: "sydney", latitude: -33.87, longitude: 151.21, jurisdiction: "AU"),
                ],
                endpoints: endpoints.map { name, site in
                    EndpointSettings(
                        name: name, url: "http://127.0.0.1:1/v1", site: site, engine: .emulated, models: [.init(name: "m")],
                        gpu: .init(profile: "H100-8B"), pricing: .init(gpuHour: 3.5))
                }))
    }

    static func policy(_ kind: PolicyKind) -> RoutingPolicy { RoutingPolicy(name: kind.rawValue, kind: kind) }

    @Test func anIdleEndpointServesInRoundTripPlusPrefillAsTheRouterPredicts() throws {
        let fleet = try Self.fleet([("fra-1", "frankfurt")])
        let request = SimulatedRequest(arrival: 1, location: Self.sydney, promptTokens: 2_000, outputTokens: 50)
        var simulation = FleetSimulation(fleet: fleet, requests: [request], settings: .init(policy: Self.policy(.balanced)))
        simulation.run()
        let outcome = simulation.outcomes[0]
        let predicted = FleetRouter().decide(
            RouteRequest(model: fleet.models[0], promptTokens: 2_000, maxOutputTokens: 50, clientLocation: Self.sydney),
            policy: Self.policy(.balanced), fleet: fleet, telemetry: FleetTelemetry(endpointCount: 1), now: 0, entropy: 0
        ).candidates[0].evaluation
        let ttft = try #require(outcome.timeToFirstToken)
        #expect(outcome.error == nil && outcome.endpoint == 0 && outcome.outputTokens == 50)
        #expect(ttft > predicted.rttSeconds, "the network alone is \(predicted.rttSeconds) s")
        #expect(abs(ttft - predicted.predictedTTFTSeconds) < 0.2 * predicted.predictedTTFTSeconds, "\(ttft) vs \(predicted.predictedTTFTSeconds)")
        #expect(try #require(outcome.endToEnd) > ttft + 49 * 0.008)
        #expect(simulation.decisions == 1)
    }

    @Test func placementsAreTheSharedRoutersDecisions() throws {
        let fleet = try Self.fleet([("fra-1", "frankfurt"), ("syd-1", "sydney")])
        let requests = (0..<20).map { index in
            SimulatedRequest(
                arrival: Double(index), location: index.isMultiple(of: 2) ? Self.frankfurt : Self.sydney, promptTokens: 500,
                outputTokens: 10)
        }
        var simulation = FleetSimulation(fleet: fleet, requests: requests, settings: .init(policy: Self.policy(.nearest)))
        simulation.run()
        for (index, outcome) in simulation.outcomes.enumerated() {
            #expect(outcome.endpoint == (index.isMultiple(of: 2) ? 0 : 1))
        }
        var centralized = FleetSimulation(
            fleet: fleet, requests: requests,
            settings: .init(policy: RoutingPolicy(name: "centralized", kind: .centralized, centralSite: "sydney")))
        centralized.run()
        #expect(centralized.outcomes.allSatisfy { $0.endpoint == 1 })
        #expect(centralized.decisions == 20)
    }

    @Test func equalSeedsGiveEqualRuns() throws {
        let fleet = try Self.fleet((1...4).map { ("fra-\($0)", "frankfurt") })
        var random = SplitMix64(seed: 3)
        let requests = (0..<400).map { index in
            SimulatedRequest(
                arrival: Double(index) * 0.01, location: Self.frankfurt, promptTokens: 200 + Int(random.next() % 2_000),
                outputTokens: 20 + Int(random.next() % 200))
        }
        func run(_ seed: UInt64) -> [SimulatedOutcome] {
            var simulation = FleetSimulation(fleet: fleet, requests: requests, settings: .init(policy: Self.policy(.balanced), seed: seed))
            simulation.run()
            return simulation.outcomes
        }
        let first = run(5)
        #expect(first == run(5))
        #expect(first.allSatisfy { $0.error == nil })
        #expect(Set(first.compactMap(\.endpoint)).count == 4, "the burst spreads over the four endpoints")
    }

    @Test func anOutageIsRoutedAroundWithoutFailingRequestsThatHadNotStarted() throws {
        let fleet = try Self.fleet([("fra-1", "frankfurt"), ("fra-2", "frankfurt")])
        let requests = (0..<200).map { index in
            SimulatedRequest(arrival: 1 + Double(index) * 0.05, location: Self.frankfurt, promptTokens: 300, outputTokens: 20)
        }
        var simulation = FleetSimulation(
            fleet: fleet, requests: requests,
            settings: .init(policy: Self.policy(.balanced), scrapeIntervalSeconds: 0.5, outages: [Outage(endpoints: ["fra-1"], start: 0, end: 1_000)]))
        simulation.run()
        #expect(simulation.outcomes.allSatisfy { $0.error == nil && $0.endpoint == 1 })
        // The health check opened the breaker before the first request; only the half-open probes
        // (one each time the open time runs out) still try the endpoint that is down.
        let probes = simulation.outcomes.filter { $0.attempts > 1 }.count
        #expect(probes >= 1 && probes <= 5, "\(probes) requests tried the endpoint that was down")
    }

    @Test func aBurstQueuesOnOneEndpointAndEveryRequestFinishes() throws {
        let fleet = try Self.fleet([("fra-1", "frankfurt")])
        let requests = (0..<600).map { _ in SimulatedRequest(arrival: 0, location: Self.frankfurt, promptTokens: 1_000, outputTokens: 200) }
        var simulation = FleetSimulation(fleet: fleet, requests: requests, settings: .init(policy: Self.policy(.balanced)))
        simulation.run()
        let ttfts = simulation.outcomes.compactMap(\.timeToFirstToken).sorted()
        #expect(ttfts.count == 600)
        #expect(ttfts.last! > 10 * ttfts.first!, "the last of 600 waits for slots: \(ttfts.first!) → \(ttfts.last!)")
    }

    @Test func outagesAreReadByEndpointOrSite() throws {
        let fleet = try Self.fleet([("fra-1", "frankfurt"), ("fra-2", "frankfurt"), ("syd-1", "sydney")])
        #expect(try Outage(parsing: "syd-1@10-20", in: fleet) == Outage(endpoints: ["syd-1"], start: 10, end: 20))
        #expect(try Outage(parsing: "frankfurt@5", in: fleet) == Outage(endpoints: ["fra-1", "fra-2"], start: 5, end: .infinity))
        for bad in ["atlantis@1-2", "fra-1@x", "fra-1@5-3", "@1-2", "fra-1"] {
            #expect(throws: OutageSyntaxError.self, "\(bad)") { try Outage(parsing: bad, in: fleet) }
        }
    }

    @Test func aSiteOutageMidRunLosesOnlyTheStreamsItWasServing() throws {
        let fleet = try Self.fleet([("fra-1", "frankfurt"), ("syd-1", "sydney")])
        let requests = (0..<300).map { index in
            SimulatedRequest(arrival: Double(index) * 0.1, location: Self.frankfurt, promptTokens: 500, outputTokens: 400)
        }
        var simulation = FleetSimulation(
            fleet: fleet, requests: requests,
            settings: .init(policy: Self.policy(.nearest), scrapeIntervalSeconds: 0.5, outages: [try Outage(parsing: "frankfurt@10", in: fleet)]))
        simulation.run()
        let aborted = simulation.outcomes.filter { $0.error == "aborted" }
        #expect(!aborted.isEmpty, "streams running in Frankfurt at 10 s are cut")
        let abortedArrivals = simulation.outcomes.enumerated().filter { $0.element.error == "aborted" }.map { requests[$0.offset].arrival }
        #expect(abortedArrivals.allSatisfy { $0 < 10 }, "only streams that started before the outage")
        let later = simulation.outcomes.enumerated().filter { requests[$0.offset].arrival > 11 }.map(\.element)
        #expect(later.allSatisfy { $0.error == nil && $0.endpoint == 1 }, "after the outage everything goes to Sydney")
        #expect(simulation.outcomes.filter { $0.error != nil }.count == aborted.count, "nothing else fails")
    }
}
