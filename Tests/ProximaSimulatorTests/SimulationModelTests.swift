import Testing
@testable import ProximaBench
@testable import ProximaCore
@testable import ProximaSimulator

/// The simulator's GPU and network models, capacity changes, summaries and workloads.
@Suite struct SimulationModelTests {
    typealias F = FleetSimulationTests

    @Test func decodeSlowsWithTheBatchAsTheProfileSays() throws {
        let fleet = try F.fleet([("fra-1", "frankfurt")])
        let profile = try #require(GPUProfile.named("H100-8B"))
        for batch in [1, 64, 200] {
            let requests = (0..<batch).map { _ in SimulatedRequest(arrival: 0, location: F.frankfurt, promptTokens: 8, outputTokens: 101) }
            var simulation = FleetSimulation(fleet: fleet, requests: requests, settings: .init(policy: F.policy(.balanced)))
            simulation.run()
            let outcome = simulation.outcomes[0]
            let pace = (try #require(outcome.endToEnd) - (try #require(outcome.timeToFirstToken))) / 100
            let expected = profile.decodeStepSeconds(batch: batch)
            #expect(abs(pace - expected) < 0.02 * expected, "batch \(batch): \(pace) s per token, the profile says \(expected)")
        }
    }

    @Test func theNetworkAddsTheRoutersRoundTripHalfEachWay() throws {
        let fleet = try F.fleet([("fra-1", "frankfurt")])
        let near = SimulatedRequest(arrival: 0, location: F.frankfurt, promptTokens: 1_000, outputTokens: 2)
        let far = SimulatedRequest(arrival: 100, location: F.sydney, promptTokens: 1_000, outputTokens: 2)
        var simulation = FleetSimulation(fleet: fleet, requests: [near, far], settings: .init(policy: F.policy(.balanced)))
        simulation.run()
        let roundTrip = RoundTripModel()
        let nearRTT = roundTrip.roundTripSeconds(from: F.frankfurt, to: F.frankfurt)
        let farRTT = roundTrip.roundTripSeconds(from: F.sydney, to: F.frankfurt)
        #expect(abs((simulation.outcomes[0].roundTripSeconds ?? 0) - nearRTT) < 1e-9)
        #expect(abs((simulation.outcomes[1].roundTripSeconds ?? 0) - farRTT) < 1e-9)
        // The same engine work on an idle engine: the TTFTs differ by the round trips exactly.
        let difference = (simulation.outcomes[1].timeToFirstToken ?? 0) - (simulation.outcomes[0].timeToFirstToken ?? 0)
        #expect(abs(difference - (farRTT - nearRTT)) < 1e-9, "\(difference) vs \(farRTT - nearRTT)")
        #expect(farRTT > 0.3, "Frankfurt to Sydney is a third of a second or more: \(farRTT)")
    }

    @Test func aDrainedEndpointTakesNoNewRequestsAndFinishesItsOwn() throws {
        let fleet = try F.fleet([("fra-1", "frankfurt"), ("fra-2", "frankfurt")])
        let requests = (0..<300).map { index in
            SimulatedRequest(arrival: Double(index) * 0.1, location: F.frankfurt, promptTokens: 400, outputTokens: 300)
        }
        // fra-1 leaves at 10 s; fra-2 only joins at 5 s (drained from the start until then).
        let events = [
            try Outage(parsing: "fra-1@10", in: fleet, kind: .drain), try Outage(parsing: "fra-2@0-5", in: fleet, kind: .drain),
        ]
        var simulation = FleetSimulation(fleet: fleet, requests: requests, settings: .init(policy: F.policy(.balanced), outages: events))
        simulation.run()
        #expect(simulation.outcomes.allSatisfy { $0.error == nil }, "a drain loses nothing")
        for (index, outcome) in simulation.outcomes.enumerated() {
            let arrival = requests[index].arrival
            if arrival < 5 { #expect(outcome.endpoint == 0, "before fra-2 joins") }
            if arrival > 10 { #expect(outcome.endpoint == 1, "after fra-1 leaves") }
        }
        let middle = simulation.outcomes.enumerated().filter { requests[$0.offset].arrival > 5 && requests[$0.offset].arrival < 10 }
        #expect(Set(middle.compactMap(\.element.endpoint)) == [0, 1], "both serve while both are in")
    }

    @Test func theSummarySplitsTTFTAndAccountsEachSite() throws {
        let fleet = try F.fleet([("fra-1", "frankfurt"), ("syd-1", "sydney")])
        let requests = (0..<400).map { index in
            SimulatedRequest(
                arrival: Double(index) * 0.05, location: index.isMultiple(of: 2) ? F.frankfurt : F.sydney, promptTokens: 1_000, outputTokens: 50)
        }
        let (result, simulation) = FleetSimulation.run(
            label: "nearest", fleet: fleet, requests: requests, settings: .init(policy: F.policy(.nearest)), ttftTargetSeconds: 1)
        let mean = result.summary.timeToFirstToken.mean / 1_000
        let parts = result.meanRoundTripSeconds + result.meanUnloadedPrefillSeconds + result.meanWaitSeconds
        #expect(abs(parts - mean) < 0.01 * mean, "round trip + prefill + wait = \(parts), mean TTFT \(mean)")
        #expect(result.meanWaitSeconds > 0)
        #expect(result.sites.map(\.name) == ["frankfurt", "sydney"])
        let profile = try #require(GPUProfile.named("H100-8B"))
        for site in result.sites {
            #expect(abs(site.requestShare - 0.5) < 1e-9)
            #expect(site.gpuUtilization > 0 && site.gpuUtilization < 1)
            #expect(site.averagePowerWatts > profile.idleWatts && site.averagePowerWatts < profile.powerCapWatts)
        }
        let usage = simulation.usage
        #expect(usage.map(\.generatedTokens).reduce(0, +) == 400 * 50)
        #expect(result.offeredRate > 19 && result.offeredRate < 21)
        #expect(abs(result.goodput - result.summary.sloAttainment * result.offeredRate) < 1e-6 * result.offeredRate)
    }

    @Test func capacityIsTheSaturatedThroughputOfTheMix() throws {
        let profile = try #require(GPUProfile.named("H100-8B"))
        // Decode-bound: 1-token prompts, 100 output tokens, far more requests than slots.
        let decode = (0..<2_560).map { _ in SimulatedRequest(arrival: 0, location: F.frankfurt, promptTokens: 1, outputTokens: 100) }
        let slots = Double(profile.maxRunningSequences)
        let expected = slots / (100 * profile.decodeStepSeconds(batch: profile.maxRunningSequences))
        let measured = FleetCapacity.requestsPerSecond(of: profile, sample: decode)
        #expect(abs(measured - expected) < 0.05 * expected, "\(measured) vs \(expected) requests/s")
        // Prefill-bound: long prompts, one output token.
        let prefill = (0..<500).map { _ in SimulatedRequest(arrival: 0, location: F.frankfurt, promptTokens: 8_000, outputTokens: 1) }
        let prefillRate = FleetCapacity.requestsPerSecond(of: profile, sample: prefill)
        #expect(prefillRate < 1.05 * profile.prefillTokensPerSecond / 8_000 && prefillRate > 0.8 * profile.prefillTokensPerSecond / 8_000)
        let fleet = try F.fleet([("fra-1", "frankfurt"), ("fra-2", "frankfurt")])
        #expect(abs(FleetCapacity.requestsPerSecond(of: fleet, sample: decode) - 2 * measured) < 1e-9)
    }

    @Test func meanWaitGrowsLikeOneOverOneMinusTheLoad() throws {
        // One engine under Poisson arrivals of fixed size: queueing theory's 1/(1-ρ) near saturation.
        let fleet = try F.fleet([("fra-1", "frankfurt")])
        let sizes = SyntheticWorkload.Sizes(medianInputTokens: 1_500, medianOutputTokens: 150, sigma: 0)
        let sample = (0..<1_000).map { _ in SimulatedRequest(arrival: 0, location: F.frankfurt, promptTokens: 1_500, outputTokens: 150) }
        let capacity = FleetCapacity.requestsPerSecond(of: fleet, sample: sample)
        func wait(_ load: Double) -> Double {
            let trace = SyntheticWorkload.poisson(rate: load * capacity, duration: 1_500, sizes: sizes, seed: 11)
            let requests = trace.requests.map {
                SimulatedRequest(arrival: $0.time, location: F.frankfurt, promptTokens: $0.inputTokens, outputTokens: $0.outputTokens)
            }
            return FleetSimulation.run(
                label: "one", fleet: fleet, requests: requests, settings: .init(policy: F.policy(.leastInflight)), ttftTargetSeconds: 1
            ).result.meanWaitSeconds
        }
        let moderate = wait(0.6)
        let high = wait(0.9)
        // Theory: (1 - 0.6) / (1 - 0.9) = 4.
        let ratio = high / moderate
        #expect(ratio > 2.5 && ratio < 6, "wait at 90% / wait at 60% = \(ratio) (\(high) / \(moderate))")
    }
}

@Suite struct RegionalReplicaTests {
    static let trace = Trace(
        name: "t",
        requests: (0..<2_400).map { index in
            // 600 conversations of 4 turns; turn k of conversation c repeats its blocks and adds one.
            let conversation = UInt64(index % 600)
            let turn = UInt64(index / 600)
            return TraceRequest(
                time: Double(index), inputTokens: 512 * Int(turn + 2), outputTokens: 10,
                prefixBlockIDs: [0, 1_000 + conversation] + (0..<turn).map { 10_000 + conversation * 10 + $0 })
        }, blockTokens: 512)

    @Test func eachMetroReplaysTheTraceFromItsTimeZoneAtItsShare() {
        let metros = [
            Metro(name: "a", location: .init(latitude: 0, longitude: 0), utcOffsetHours: 0, weight: 1),
            Metro(name: "b", location: .init(latitude: 0, longitude: 90), utcOffsetHours: 6, weight: 3),
        ]
        let plan = LoadPlan(replicatingAcross: metros, trace: Self.trace, rateScale: 2, seed: 4)
        // Rate: the trace's times 2 in all, a quarter from a and three quarters from b.
        let counts = [0, 1].map { metro in plan.requests.filter { $0.metro == metro }.count }
        #expect(abs(Double(counts[0] + counts[1]) - 4_800) < 240, "\(counts)")
        #expect(abs(Double(counts[1]) / Double(counts[0] + counts[1]) - 0.75) < 0.05, "\(counts)")
        // b is 6 hours east: it sees the trace a quarter of its length earlier (wrapping).
        let firstOfB = plan.requests.filter { $0.metro == 1 }.map(\.sendAt)
        #expect(firstOfB.allSatisfy { $0 >= 0 && $0 < Self.trace.duration })
        // Conversations are kept whole, and each metro's ids are its own.
        for metro in [0, 1] {
            let blocks = plan.requests.filter { $0.metro == metro }.map(\.prefixBlockIDs)
            var turns: [UInt64: Int] = [:]
            for ids in blocks { turns[ids[1], default: 0] += 1 }
            #expect(turns.values.allSatisfy { $0.isMultiple(of: 4) }, "metro \(metro): every kept conversation has all its turns")
        }
        let idsA = Set(plan.requests.filter { $0.metro == 0 }.flatMap(\.prefixBlockIDs))
        let idsB = Set(plan.requests.filter { $0.metro == 1 }.flatMap(\.prefixBlockIDs))
        #expect(idsA.isDisjoint(with: idsB))
        #expect(plan.requests.map(\.sendAt) == plan.requests.map(\.sendAt).sorted())
    }

    @Test func aWorkloadAtALoadOffersThatShareOfCapacity() throws {
        let fleet = try FleetSimulationTests.fleet([("fra-1", "frankfurt"), ("syd-1", "sydney")])
        let builder = WorkloadBuilder(trace: Self.trace, fleet: fleet, runSeconds: 2_000, seed: 2)
        #expect(builder.capacity > 0)
        for load in [0.3, 0.8] {
            let requests = builder.requests(atLoad: load)
            let rate = Double(requests.count) / 2_000
            #expect(abs(rate - load * builder.capacity) < 0.1 * load * builder.capacity, "load \(load): \(rate) vs \(load * builder.capacity)")
        }
    }
}

@Suite struct EvidenceReportTests {
    @Test func theReportRunsEveryExperimentAndWritesItsFigures() throws {
        let global = try FleetSimulationTests.fleet([("fra-1", "frankfurt"), ("syd-1", "sydney")])
        let central = try FleetSimulationTests.fleet([("fra-1", "frankfurt"), ("fra-2", "frankfurt")])
        var poisson = SyntheticWorkload.poisson(rate: 5, duration: 600, sizes: .init(medianInputTokens: 1_000, medianOutputTokens: 50), seed: 1)
        poisson.name = "short"
        var conversations = RegionalReplicaTests.trace
        conversations.name = "conversations"
        let settings = EvidenceSettings(
            centralFleet: central, globalFleet: global, routing: RoutingSettings(centralSite: "frankfurt"), traces: [poisson, conversations],
            runSeconds: 30, kneeLoads: [0.3, 0.9], loads: [0.3, 0.9], mainLoad: 0.9, queueingLoads: [0.5, 0.9], queueingSeconds: 200,
            outageSite: "frankfurt")
        var lines: [String] = []
        let report = try EvidenceReport.run(settings, figuresPath: "figures") { lines.append($0) }
        let sections = [
            "## Headline", "## 1. One large region", "### Sanity against queueing theory", "## 2. The same capacity",
            "### short trace", "### conversations trace", "## 3. Ablation", "## 4. A site outage", "## 5. Prefix affinity",
            "## 6. Where the win comes from", "## 7. The cost of sovereignty", "## Reproduce",
        ]
        for section in sections { #expect(report.markdown.contains(section), "\(section)") }
        #expect(report.figures.map(\.name).sorted() == [
            "cost-vs-p99-conversations.svg", "cost-vs-p99-short.svg", "knee.svg", "ttft-vs-load-conversations.svg", "ttft-vs-load-short.svg",
        ])
        #expect(report.markdown.contains("](figures/knee.svg)"))
        #expect(report.figures.allSatisfy { $0.svg.hasPrefix("<svg") })
        // 2 knee + 2 queueing + 2 traces x 2 loads x 7 + 2 x 6 ablations + 7 outage + 3 x 4 prefix runs
        // + 2 traces x (2 loads + the outage) x (without and with the rule) sovereignty runs.
        #expect(report.runs.count == 75 && lines.count == 75)
        #expect(report.simulatedRequests == report.runs.map(\.result.summary.requests).reduce(0, +))
        // The one-region fleet sits entirely in the failed site: every request arriving then fails.
        let outage = try #require(report.runs.first { $0.experiment == "outage" && $0.result.label == "one region" })
        #expect(outage.result.summary.errors > 0)
        let globalOutage = try #require(report.runs.first { $0.experiment == "outage" && $0.result.label == "balanced" })
        #expect(globalOutage.result.summary.errors < outage.result.summary.errors)
        // Sovereignty: its table rows carry the runs' own figures, and with Frankfurt (the only EU site)
        // down, European callers under the EU rule are refused while nobody is without it.
        let sovereignty = report.runs.filter { $0.experiment == "sovereignty" }
        #expect(sovereignty.count == 12)
        for run in sovereignty where !run.result.label.contains("down") {
            let summary = run.result.summary
            let cells = "| \(Format.ms(summary.timeToFirstToken.p50)) | \(Format.p99(summary)) | \(Format.percent(summary.sloAttainment)) |"
            #expect(report.markdown.contains(cells), "\(run.result.label): \(cells)")
        }
        let refused = sovereignty.filter { $0.result.label.contains("down") && $0.result.label.contains("EU") }
        let served = sovereignty.filter { $0.result.label.contains("down") && $0.result.label.contains("none") }
        #expect(refused.count == 2 && refused.allSatisfy { $0.result.residencyRefused > 0 })
        #expect(served.count == 2 && served.allSatisfy { $0.result.residencyRefused == 0 })
        #expect(report.markdown.contains("saturate on average from about **"))
    }
}
