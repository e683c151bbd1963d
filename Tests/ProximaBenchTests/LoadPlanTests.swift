import Foundation
import NIOCore
import ProximaCore
import Testing
@testable import ProximaBench

@Suite struct LoadPlanTests {
    let trace = Trace(name: "t", requests: (0..<1_000).map { TraceRequest(time: Double($0) * 0.1, inputTokens: 100, outputTokens: 500) })

    @Test func timeScalingCompressesTheTrace() {
        let plan = LoadPlan(trace: trace, metros: Metro.world, timeScale: 2)
        #expect(plan.requests.count == 1_000)
        #expect(abs(plan.duration - 49.95) < 1e-6)
    }

    @Test func rateScalingReplicatesOrThinsRequests() {
        #expect(LoadPlan(trace: trace, metros: Metro.world, rateScale: 2).requests.count == 2_000)
        let half = LoadPlan(trace: trace, metros: Metro.world, rateScale: 0.5).requests.count
        #expect(abs(half - 500) < 60)
        let doubled = LoadPlan(trace: trace, metros: Metro.world, rateScale: 2).requests
        #expect(zip(doubled, doubled.dropFirst()).allSatisfy { $0.sendAt <= $1.sendAt })
    }

    @Test func skippingStartsLaterInTheTrace() {
        let plan = LoadPlan(trace: trace, metros: Metro.world, skipSeconds: 50)
        #expect(plan.requests.count == 500)
        #expect(plan.requests.first?.sendAt == 0)
    }

    @Test func limitsCapDurationRequestsAndOutput() {
        let plan = LoadPlan(trace: trace, metros: Metro.world, maxDuration: 10, maxOutputTokens: 64)
        #expect(plan.requests.count == 101)
        #expect(plan.requests.allSatisfy { $0.outputTokens == 64 })
        #expect(LoadPlan(trace: trace, metros: Metro.world, maxRequests: 7).requests.count == 7)
        #expect(plan.requests.allSatisfy { Metro.world.indices.contains($0.metro) })
    }
}

@Suite struct PromptSynthesizerTests {
    @Test func writesOneWordPerTokenAndSharesPrefixBlocks() {
        let synthesizer = PromptSynthesizer(blockTokens: 4)
        let a = synthesizer.prompt(tokens: 10, prefixBlockIDs: [7, 8, 9], uniqueID: 1)
        let b = synthesizer.prompt(tokens: 10, prefixBlockIDs: [7, 8, 3], uniqueID: 2)
        #expect(a.split(separator: " ").count == 10)
        let wordsA = a.split(separator: " ")
        let wordsB = b.split(separator: " ")
        #expect(wordsA.prefix(8) == wordsB.prefix(8))
        #expect(wordsA[8...] != wordsB[8...], "the third blocks differ")
        // Four bytes per word (three letters and a space): bytes / 4 estimates the tokens.
        let long = synthesizer.prompt(tokens: 2_000, prefixBlockIDs: [1, 2], uniqueID: 3)
        #expect(long.utf8.count == 2_000 * 4 - 1)
        #expect(long.split(separator: " ").allSatisfy { $0.count == 3 && $0.allSatisfy { $0 >= "a" && $0 <= "z" } })
        // Unique parts of different requests differ.
        #expect(Set((0..<50).map { synthesizer.prompt(tokens: 20, prefixBlockIDs: [], uniqueID: $0) }).count == 50)
        let plain = PromptSynthesizer(blockTokens: 0)
        #expect(plain.prompt(tokens: 5, prefixBlockIDs: [], uniqueID: 1) != plain.prompt(tokens: 5, prefixBlockIDs: [], uniqueID: 2))
        #expect(plain.prompt(tokens: 0, prefixBlockIDs: [], uniqueID: 1).isEmpty)
    }
}

@Suite struct StreamScannerTests {
    @Test func countsContentUsageAndTheEndAcrossChunkBoundaries() {
        let stream = """
            data: {"choices":[{"delta":{"role":"assistant","content":""}}]}

            data: {"choices":[{"delta":{"content":"Hel"}}]}

            data: {"choices":[{"delta":{"content":"lo"}}]}

            data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens": 2}}

            data: [DONE]


            """
        for size in [1, 5, 17, 1_000] {
            var scanner = StreamScanner()
            var rest = Substring(stream)
            while !rest.isEmpty {
                scanner.scan(ByteBuffer(string: String(rest.prefix(size))))
                rest = rest.dropFirst(size)
            }
            #expect(scanner.contentEvents == 2)
            #expect(scanner.reportedCompletionTokens == 2)
            #expect(scanner.sawDone && !scanner.sawError)
        }
        var failing = StreamScanner()
        failing.scan(ByteBuffer(string: "data: {\"error\":{\"message\":\"x\"}}\n\n"))
        #expect(failing.sawError && !failing.sawDone)
    }
}

@Suite struct LoadReportTests {
    @Test func summarisesPercentilesPerMetroAndOverall() throws {
        let metros = Array(Metro.world.prefix(2))
        var outcomes: [RequestOutcome] = []
        for index in 1...100 {
            outcomes.append(
                RequestOutcome(
                    metro: index % 2, timeToFirstToken: Double(index) / 1000, endToEnd: Double(index) / 100, outputTokens: 11,
                    lateStart: 0, error: index == 100 ? "http_503" : nil))
        }
        let report = LoadReport(target: "t", workload: "w", outcomes: outcomes, metros: metros, wallSeconds: 10)
        #expect(report.requests == 100)
        #expect(report.errors == ["http_503": 1])
        #expect(abs(report.overall.timeToFirstToken.p50 - 50) < 0.5)
        #expect(abs(report.overall.timeToFirstToken.p99 - 99) < 0.5)
        #expect(report.perMetro.map(\.requests) == [50, 50])
        #expect(report.outputTokensPerSecond == 99.0 * 11 / 10)
        let decoded = try JSONDecoder().decode(LoadReport.self, from: try report.json())
        #expect(decoded.overall.timeToFirstToken == report.overall.timeToFirstToken)
        #expect(report.table().contains("new-york"))
    }
}
