import Testing
@testable import ProximaCore

@Suite struct FaultSettingsTests {
    @Test func eachFaultLeadsToItsDecision() {
        #expect(FaultDecision.decide(.none, secondsSinceSet: 0, draw: 0, outputTokens: 10) == .serve)
        #expect(FaultDecision.decide(.init(crash: true, hang: true), secondsSinceSet: 0, draw: 0.5, outputTokens: 10) == .refuse)
        #expect(FaultDecision.decide(.init(hang: true), secondsSinceSet: 0, draw: 0.5, outputTokens: 10) == .hang)
        let partition = FaultSettings(partitionSeconds: 30)
        #expect(FaultDecision.decide(partition, secondsSinceSet: 29, draw: 0.5, outputTokens: 10) == .hang)
        #expect(FaultDecision.decide(partition, secondsSinceSet: 31, draw: 0.5, outputTokens: 10) == .serve)
        let flaky = FaultSettings(errorRate: 0.2, abortRate: 0.3)
        #expect(FaultDecision.decide(flaky, secondsSinceSet: 0, draw: 0.1, outputTokens: 10) == .fail(status: 503))
        #expect(FaultDecision.decide(flaky, secondsSinceSet: 0, draw: 0.4, outputTokens: 10) == .abort(afterTokens: 5))
        #expect(FaultDecision.decide(flaky, secondsSinceSet: 0, draw: 0.6, outputTokens: 10) == .serve)
        #expect(FaultDecision.decide(flaky, secondsSinceSet: 0, draw: 0.4, outputTokens: 1) == .serve)
    }

    @Test func errorAndAbortRatesHoldOverManyDraws() {
        let flaky = FaultSettings(errorRate: 0.1, abortRate: 0.2)
        var random = SplitMix64(seed: 4)
        var failed = 0
        var aborted = 0
        for _ in 0..<20_000 {
            let draw = Double(random.next() >> 11) / Double(1 << 53)
            switch FaultDecision.decide(flaky, secondsSinceSet: 0, draw: draw, outputTokens: 8) {
            case .fail: failed += 1
            case .abort: aborted += 1
            default: break
            }
        }
        #expect(abs(Double(failed) / 20_000 - 0.1) < 0.01)
        #expect(abs(Double(aborted) / 20_000 - 0.2) < 0.01)
    }

    @Test func refusesOutOfRangeSettings() {
        let problems = FaultSettings(slowdown: 0.5, errorRate: 2, abortRate: -1, partitionSeconds: -3).problems(at: "faults")
        #expect(Set(problems.map(\.keyPath)) == ["faults.slowdown", "faults.error_rate", "faults.abort_rate", "faults.partition_seconds"])
        #expect(FaultSettings(slowdown: 3, errorRate: 0.5).problems(at: "f").isEmpty)
    }
}
