import Testing
@testable import ProximaCore

/// A small profile with round numbers: 1,000 prompt tokens/s, decode steps of 10 ms + 1 ms per sequence.
let roundEngineProfile = GPUProfile(
    name: "test", accelerator: "test", gpuCount: 1, modelClass: "8B", prefillTokensPerSecond: 1_000,
    decodeStepBaseSeconds: 0.010, decodeStepPerSequenceSeconds: 0.001, maxRunningSequences: 4,
    kvCapacityTokens: 10_000, blockTokens: 100, maxBatchedTokensPerStep: 2_048, idleWatts: 100, prefillWatts: 1_000,
    decodeWatts: 500, powerCapWatts: 1_000, pricePerGPUHour: 1)

extension EngineModel {
    /// Runs every step until the engine is idle and returns all events.
    mutating func drain() -> [EngineEvent] {
        var events: [EngineEvent] = []
        while let end = nextEventTime() { events += advance(to: end) }
        return events
    }
}

func firstTokenTime(of id: Int, in events: [EngineEvent]) -> Double? {
    for case .firstToken(id, let time) in events { return time }
    return nil
}

func finishTime(of id: Int, in events: [EngineEvent]) -> Double? {
    for case .finished(id, let time, _, _, _) in events { return time }
    return nil
}

func tokenTimes(of id: Int, in events: [EngineEvent]) -> [Double] {
    events.compactMap {
        switch $0 {
        case .firstToken(id, let time), .token(id, _, let time): time
        default: nil
        }
    }
}

func isClose(_ value: Double?, _ expected: Double, tolerance: Double = 1e-9) -> Bool {
    value.map { abs($0 - expected) <= tolerance } ?? false
}

@Suite struct EngineBatchingTests {
    @Test func aloneARequestGetsItsFirstTokenAfterPrefillThenOnePerDecodeStep() {
        var engine = EngineModel(profile: roundEngineProfile, reportsEveryToken: true)
        engine.submit(EngineRequest(id: 1, promptTokens: 500, outputTokens: 4), at: 0)
        #expect(engine.nextEventTime() == 0.5)
        let events = engine.drain()
        let times = tokenTimes(of: 1, in: events)
        #expect(times.count == 4)
        #expect(isClose(times[0], 0.5))
        for (earlier, later) in zip(times, times.dropFirst()) { #expect(isClose(later - earlier, 0.011)) }
        #expect(isClose(finishTime(of: 1, in: events), 0.533))
        #expect(events.last == .finished(id: 1, at: times[3], promptTokens: 500, outputTokens: 4, cachedPromptTokens: 0))
        #expect(engine.generatedTokens == 4 && engine.promptTokensProcessed == 500)
    }

    @Test func concurrentRequestsShareStepsAndEachDecodesSlowerByTheBatchSlope() {
        var engine = EngineModel(profile: roundEngineProfile, reportsEveryToken: true)
        engine.submit(EngineRequest(id: 1, promptTokens: 500, outputTokens: 3), at: 0)
        engine.submit(EngineRequest(id: 2, promptTokens: 500, outputTokens: 3), at: 0)
        let events = engine.drain()
        #expect(isClose(firstTokenTime(of: 1, in: events), 1.0))
        #expect(isClose(firstTokenTime(of: 2, in: events), 1.0))
        for id in [1, 2] {
            let times = tokenTimes(of: id, in: events)
            #expect(isClose(times[1] - times[0], 0.012))
            #expect(isClose(times[2] - times[1], 0.012))
        }
    }

    @Test func aRequestArrivingMidStepWaitsForTheNextStep() {
        var engine = EngineModel(profile: roundEngineProfile)
        engine.submit(EngineRequest(id: 1, promptTokens: 500, outputTokens: 1), at: 0)
        engine.submit(EngineRequest(id: 2, promptTokens: 500, outputTokens: 1), at: 0.2)
        #expect(engine.nextEventTime() == 0.5)
        let events = engine.drain()
        #expect(isClose(firstTokenTime(of: 2, in: events), 1.0))
    }

    @Test func chunkedPrefillSharesTheStepBudgetWithDecodingSequences() {
        var engine = EngineModel(profile: roundEngineProfile, reportsEveryToken: true)
        engine.submit(EngineRequest(id: 1, promptTokens: 100, outputTokens: 5), at: 0)
        var events = engine.advance(to: 0.1)
        #expect(isClose(firstTokenTime(of: 1, in: events), 0.1))
        engine.submit(EngineRequest(id: 2, promptTokens: 3_000, outputTokens: 2), at: 0.1)
        events += engine.drain()
        let decoding = tokenTimes(of: 1, in: events)
        // The step planned at 0.1 only decodes; the next ones take one decode token plus 2,047 prompt
        // tokens, then one decode token plus the remaining 953.
        #expect(isClose(decoding[1] - decoding[0], 0.011))
        #expect(isClose(decoding[2] - decoding[1], 0.011 + 2.047))
        #expect(isClose(decoding[3] - decoding[2], 0.011 + 0.953))
        #expect(isClose(firstTokenTime(of: 2, in: events), decoding[3]))
        #expect(engine.promptTokensProcessed == 3_100)
    }

    @Test func admissionWaitsForAFreeSequenceSlot() {
        var engine = EngineModel(profile: roundEngineProfile)
        for id in 0..<6 { engine.submit(EngineRequest(id: id, promptTokens: 10, outputTokens: 5), at: 0) }
        #expect(engine.runningCount == 4)
        #expect(engine.waitingCount == 2)
        let events = engine.drain()
        let firstFinish = try! #require(finishTime(of: 0, in: events))
        #expect(try! #require(firstTokenTime(of: 4, in: events)) > firstFinish)
        #expect(engine.runningCount == 0 && engine.waitingCount == 0)
    }

    @Test func admissionWaitsForKVCapacityAndFinishingReleasesIt() {
        var engine = EngineModel(profile: roundEngineProfile)
        for (id, output) in [1_000, 1_500, 1_000].enumerated() {
            engine.submit(EngineRequest(id: id, promptTokens: 3_000, outputTokens: output), at: 0)
        }
        #expect(engine.runningCount == 2)
        #expect(engine.waitingCount == 1)
        #expect(isClose(engine.kvUsage, 0.85))
        var events: [EngineEvent] = []
        while engine.waitingCount > 0, let end = engine.nextEventTime() { events += engine.advance(to: end) }
        #expect(finishTime(of: 0, in: events) != nil)
        #expect(engine.runningCount == 2)
        #expect(isClose(engine.kvUsage, 0.85))
        _ = engine.drain()
        #expect(engine.kvUsage == 0)
    }

    @Test func aRequestLargerThanTheCacheRunsAlone() {
        var engine = EngineModel(profile: roundEngineProfile)
        engine.submit(EngineRequest(id: 1, promptTokens: 20_000, outputTokens: 10), at: 0)
        engine.submit(EngineRequest(id: 2, promptTokens: 10, outputTokens: 10), at: 0)
        #expect(engine.runningCount == 1 && engine.kvUsage == 1)
        let events = engine.drain()
        #expect(try! #require(firstTokenTime(of: 2, in: events)) > finishTime(of: 1, in: events)!)
    }

    @Test func eventsComeInTimeOrderAcrossAdvances() {
        var engine = EngineModel(profile: roundEngineProfile, reportsEveryToken: true)
        for id in 0..<8 { engine.submit(EngineRequest(id: id, promptTokens: 100 * (id + 1), outputTokens: 20), at: Double(id) * 0.05) }
        var events: [EngineEvent] = []
        var now = 0.4
        while !engine.isIdle {
            events += engine.advance(to: now)
            now += 0.37
        }
        #expect(events.count == 8 * 21)
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.time <= $1.time })
        #expect(engine.time >= events.last!.time)
    }

    @Test func identicalRunsGiveIdenticalEvents() {
        func run() -> ([EngineEvent], Double) {
            var random = SplitMix64(seed: 42)
            var engine = EngineModel(profile: GPUProfile.named("L40S-8B")!)
            var events: [EngineEvent] = []
            var time = 0.0
            for id in 0..<2_000 {
                time += Double(random.next() % 1_000) / 10_000
                events += engine.advance(to: time)
                let blocks = (0..<UInt64(random.next() % 6)).map { $0 + random.next() % 3 }
                engine.submit(
                    EngineRequest(id: id, promptTokens: 1 + Int(random.next() % 4_000), outputTokens: 1 + Int(random.next() % 400), prefixBlockIDs: blocks),
                    at: time)
            }
            events += engine.drain()
            #expect(engine.prefixCacheHits > 0)
            return (events, engine.energyJoules)
        }
        let first = run()
        let second = run()
        #expect(first.0.count == 4_000)
        #expect(first.0 == second.0)
        #expect(first.1 == second.1)
    }

    @Test func aHundredThousandRequestsRunThrough() {
        var engine = EngineModel(profile: GPUProfile.named("H100-8B")!)
        var finished = 0
        for id in 0..<100_000 {
            let time = Double(id) * 0.02
            for case .finished in engine.advance(to: time) { finished += 1 }
            engine.submit(EngineRequest(id: id, promptTokens: 100 + id % 200, outputTokens: 10 + id % 50), at: time)
        }
        for case .finished in engine.drain() { finished += 1 }
        #expect(finished == 100_000)
        #expect(engine.generatedTokens == (0..<100_000).reduce(0) { $0 + 10 + $1 % 50 })
    }
}

@Suite struct EnginePowerTests {
    @Test func anIdleEngineDrawsIdlePowerAndAccruesIdleEnergy() {
        var engine = EngineModel(profile: roundEngineProfile, startTime: 2)
        #expect(engine.advance(to: 12).isEmpty)
        #expect(engine.powerWatts(at: 5) == 100)
        #expect(isClose(engine.energyJoules, 1_000))
        #expect(engine.time == 12)
    }

    @Test func prefillDrawsMoreThanDecodeAndMixedStepsAreWeightedByTime() {
        var engine = EngineModel(profile: roundEngineProfile)
        engine.submit(EngineRequest(id: 1, promptTokens: 100, outputTokens: 50), at: 0)
        #expect(engine.powerWatts(at: 0.05) == 1_000)
        _ = engine.advance(to: 0.1)
        #expect(isClose(engine.powerWatts(at: 0.105), 500))
        engine.submit(EngineRequest(id: 2, promptTokens: 11, outputTokens: 50), at: 0.105)
        _ = engine.advance(to: 0.111)
        // 11 ms of decode at 500 W and 11 ms of prefill at 1,000 W.
        #expect(isClose(engine.powerWatts(at: 0.115), 750))
        _ = engine.advance(to: 0.2)
        #expect(isClose(engine.powerWatts(at: engine.time), 500))
        _ = engine.drain()
        #expect(engine.powerWatts(at: engine.time + 1) == 100)
    }

    @Test func powerNeverExceedsTheCapAndCappedStepsRunSlowerForTheSameEnergy() {
        func loaded(capWatts: Double) -> EngineModel {
            var profile = roundEngineProfile
            profile.powerCapWatts = capWatts
            var engine = EngineModel(profile: profile)
            for id in 0..<3 { engine.submit(EngineRequest(id: id, promptTokens: 1_000, outputTokens: 100), at: 0) }
            return engine
        }
        var free = loaded(capWatts: 1_000)
        var limited = loaded(capWatts: 800)
        #expect(isClose(free.nextEventTime(), 2.048))
        #expect(isClose(limited.nextEventTime(), 2.048 * 1_000 / 800))
        var time = 0.0
        while let end = limited.nextEventTime() {
            #expect(limited.powerWatts(at: (time + end) / 2) <= 800)
            _ = limited.advance(to: end)
            time = end
        }
        _ = free.drain()
        #expect(limited.time > free.time)
        #expect(isClose(limited.energyJoules, free.energyJoules, tolerance: 1e-6))
    }

    @Test func energyGrowsWithWork() {
        func energy(requests: Int) -> Double {
            var engine = EngineModel(profile: GPUProfile.named("H100-70B")!)
            for id in 0..<requests { engine.submit(EngineRequest(id: id, promptTokens: 2_000, outputTokens: 200), at: 0) }
            _ = engine.drain()
            _ = engine.advance(to: 600)
            return engine.energyJoules
        }
        let idle = energy(requests: 0)
        let light = energy(requests: 5)
        let heavy = energy(requests: 50)
        #expect(isClose(idle, 600 * 0.18 * 1_400, tolerance: 1e-6))
        #expect(idle < light && light < heavy)
    }
}

@Suite struct EngineProfileCatalogTests {
    @Test func theCatalogHoldsEveryAcceleratorForBothModelClasses() throws {
        let gpuCounts = [
            "H100-8B": 1, "H100-70B": 2, "H200-8B": 1, "H200-70B": 2, "L40S-8B": 1, "L40S-70B": 4,
            "RTX-PRO-6000-8B": 1, "RTX-PRO-6000-70B": 2,
        ]
        #expect(Set(GPUProfile.catalog.keys) == Set(gpuCounts.keys))
        for (name, gpuCount) in gpuCounts {
            let profile = try #require(GPUProfile.named(name))
            #expect(profile.name == name && profile.gpuCount == gpuCount)
            #expect(name == "\(profile.accelerator)-\(profile.modelClass)")
            #expect(profile.kvCapacityTokens > 100_000)
            #expect(profile.idleWatts < profile.decodeWatts && profile.decodeWatts < profile.prefillWatts)
            #expect(profile.prefillWatts <= profile.powerCapWatts)
        }
        #expect(GPUProfile.named("A100-8B") == nil)
    }

    @Test func theCatalogKeepsPublishedFigures() throws {
        let h100 = try #require(GPUProfile.named("H100-70B"))
        // FP8 halves the FP16 figures: 37 ms at batch 1, 52 ms at batch 32, 6,100-6,800 tokens/s.
        #expect(abs(h100.decodeStepSeconds(batch: 1) - 0.037 / 2) < 0.001)
        #expect(abs(h100.decodeStepSeconds(batch: 32) - 0.052 / 2) < 0.002)
        #expect((12_200...13_600).contains(h100.prefillTokensPerSecond))
        #expect(h100.decodeStepSeconds(batch: 0) == 0)
        #expect(h100.pricePerHour == 7)
        // (0.9 x 160 GB - 70 GB) / 160 KiB.
        #expect(h100.kvCapacityTokens == 451_660)
    }

    @Test func fasterAcceleratorsDecodeAndPrefillFaster() throws {
        let names = ["H200", "H100", "RTX-PRO-6000", "L40S"]
        let small = try names.map { try #require(GPUProfile.named("\($0)-8B")) }
        for (faster, slower) in zip(small, small.dropFirst()) {
            #expect(faster.decodeStepSeconds(batch: 16) < slower.decodeStepSeconds(batch: 16))
            #expect(faster.prefillTokensPerSecond >= slower.prefillTokensPerSecond)
            #expect(faster.pricePerGPUHour > slower.pricePerGPUHour)
        }
        let h100 = try #require(GPUProfile.named("H100-8B"))
        let h200 = try #require(GPUProfile.named("H200-8B"))
        let speedup = h100.decodeStepSeconds(batch: 1) / h200.decodeStepSeconds(batch: 1)
        #expect((1.2...1.4).contains(speedup))
    }
}
