import Foundation
import ProximaCore
import Testing
@testable import ProximaBench

/// The router benchmark's structure, at small sizes and very short cells. Times are measured by the
/// benchmark, never asserted here.
@Suite struct RouterBenchmarkTests {
    static let policies = ["balanced", "slo", "least-inflight", "round-robin"]

    @Test func oneRowPerSizeAndPolicyAndEveryDecisionHasACandidate() throws {
        let settings = RouterBenchmark.Settings(
            candidates: [10, 100], policies: Self.policies, secondsPerCell: 0.005, minimumSamples: 20)
        let result = try RouterBenchmark.run(settings)

        #expect(result.rows.count == 8)
        let cells = result.rows.map { "\($0.candidates)/\($0.policy)" }
        #expect(cells == [10, 100].flatMap { size in Self.policies.map { "\(size)/\($0)" } })
        for row in result.rows {
            #expect(row.decisions > 0)
            #expect(row.samples >= 20)
            #expect(row.decisions == row.samples * row.batchSize)
            #expect(row.decisionsWithoutCandidate == 0, "\(row.policy) at \(row.candidates)")
            #expect(row.minCandidatesReturned == 4 && row.maxCandidatesReturned == 4)
            // Nothing is excluded: every endpoint is rated on every decision.
            #expect(row.minEvaluated == row.candidates && row.maxEvaluated == row.candidates)
            #expect(row.sites == min(row.candidates, 50))
            #expect(row.p50Microseconds > 0)
            #expect(row.p50Microseconds <= row.p99Microseconds)
            #expect(row.p99Microseconds <= row.maxMicroseconds)
            #expect(row.distinctFirstChoices >= 1 && row.distinctFirstChoices <= row.candidates)
        }
        // Round-robin hands the first place around.
        let roundRobin = try #require(result.rows.first { $0.candidates == 10 && $0.policy == "round-robin" })
        #expect(roundRobin.distinctFirstChoices == 10)

        let table = result.markdownTable()
        #expect(table.split(separator: "\n").filter { $0.hasPrefix("| ") }.count == 1 + 8)
        let decoded = try JSONDecoder().decode(RouterBenchmark.Result.self, from: try result.json())
        #expect(decoded.rows == result.rows)
    }

    @Test(arguments: [1, 10, 100, 1_000])
    func syntheticFleetHasExactlyTheEndpointsAskedFor(size: Int) throws {
        let fleet = try RouterBenchmark.makeFleet(endpoints: size)
        #expect(fleet.endpoints.count == size)
        #expect(fleet.siteNames.count == min(size, 50))
        #expect(fleet.endpointIndices(serving: RouterBenchmark.modelName) == Array(0..<size))
        #expect(fleet.endpoints.allSatisfy { $0.engine == .vllm && $0.performance.profiled })
        #expect(Set(fleet.endpoints.map(\.name)).count == size)
    }

    @Test func telemetryExercisesBothLoadSourcesAndRequestsVary() throws {
        let fleet = try RouterBenchmark.makeFleet(endpoints: 200)
        let telemetry = RouterBenchmark.makeTelemetry(fleet: fleet)
        let statuses = telemetry.statuses
        #expect(statuses.count == 200)
        let withEngine = statuses.filter { $0.freshEngine(at: RouterBenchmark.decisionTime, staleAfter: 10) != nil }.count
        #expect(withEngine > 50 && withEngine < 180)
        #expect(statuses.allSatisfy { $0.awaitingFirstToken <= $0.inFlight })
        #expect(Set(statuses.map(\.inFlight)).count > 10)

        let requests = RouterBenchmark.makeRequests(fleet: fleet, count: 64)
        #expect(requests.count == 64)
        #expect(requests.allSatisfy { (1_000...4_000).contains($0.promptTokens) && $0.clientLocation != nil })
        #expect(requests.contains { !$0.prefixBlocks.isEmpty } && requests.contains { $0.prefixBlocks.isEmpty })
        #expect(Set(requests.compactMap(\.clientLocation)).count > 3)
    }

    @Test func decisionsUnderTheThresholdAreTimedInBatches() throws {
        let base = RouterBenchmark.Settings(candidates: [10], policies: ["balanced"], secondsPerCell: 0.002, minimumSamples: 10)
        var batched = base
        batched.batchBelowNanoseconds = 1e12
        batched.batchTargetNanoseconds = 1e9  // more than any decision: the largest batch (256)
        let batchedRow = try #require(try RouterBenchmark.run(batched).rows.first)
        #expect(batchedRow.batchSize == 256)
        #expect(batchedRow.decisions == batchedRow.samples * batchedRow.batchSize)
        #expect(batchedRow.p50Microseconds <= batchedRow.p99Microseconds)
        var single = base
        single.batchBelowNanoseconds = 0
        let singleResult = try RouterBenchmark.run(single)
        #expect(singleResult.rows.allSatisfy { $0.batchSize == 1 && $0.decisions == $0.samples })
        #expect(singleResult.batchBelowNanoseconds == 0)
    }

    @Test func unknownPolicyIsRefused() {
        #expect(throws: RouterBenchmark.Failure.self) {
            try RouterBenchmark.run(.init(candidates: [10], policies: ["fastest"], secondsPerCell: 0.001))
        }
    }

    @Test func percentileUsesNearestRank() {
        let values = (1...100).map(Double.init)
        #expect(RouterBenchmark.percentile(values, 0.5) == 50)
        #expect(RouterBenchmark.percentile(values, 0.99) == 99)
        #expect(RouterBenchmark.percentile([7], 0.99) == 7)
        #expect(RouterBenchmark.percentile([], 0.5) == 0)
    }
}
