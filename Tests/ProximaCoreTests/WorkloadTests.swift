import Foundation
import Testing
@testable import ProximaCore

@Suite struct GeographyTests {
    let paris = Coordinates(latitude: 48.86, longitude: 2.35)
    let newYork = Coordinates(latitude: 40.71, longitude: -74.01)

    @Test func greatCircleDistancesMatchKnownValues() {
        #expect(abs(Geography.distanceKilometres(paris, newYork) - 5837) < 20)
        #expect(Geography.distanceKilometres(paris, paris) == 0)
        let antipode = Coordinates(latitude: -48.86, longitude: -177.65)
        #expect(abs(Geography.distanceKilometres(paris, antipode) - .pi * Geography.earthRadiusKilometres) < 1)
    }

    @Test func roundTripIsTheInflatedFibreBoundPlusTheLastMile() {
        let model = RoundTripModel(inflation: 2, lastMileMilliseconds: 2)
        let rtt = model.roundTripSeconds(from: paris, to: newYork)
        // 5,837 km: fibre bound 58.4 ms round trip, inflated to 116.7 ms, plus 2 ms.
        #expect(abs(rtt - 0.1187) < 0.002)
        #expect(model.roundTripSeconds(from: paris, to: paris) == 0.002)
        #expect(RoundTripModel(inflation: 3).roundTripSeconds(from: paris, to: newYork) > rtt)
    }
}

@Suite struct TraceTests {
    @Test func parsesTheAzureFormatIntoSecondsFromTheStart() throws {
        let trace = try Trace.parseAzure("""
            TIMESTAMP,ContextTokens,GeneratedTokens
            2023-11-16 18:17:03.9799600,4808,10
            2023-11-16 18:17:04.0319600,3180,8
            2023-11-16 18:18:03.9799600,10,1
            """)
        #expect(trace.requests.count == 3)
        #expect(trace.requests[0] == TraceRequest(time: 0, inputTokens: 4808, outputTokens: 10))
        #expect(abs(trace.requests[1].time - 0.052) < 1e-6)
        #expect(abs(trace.duration - 60) < 1e-6)
    }

    @Test func parsesTheMooncakeFormatWithPrefixBlocks() throws {
        let trace = try Trace.parseMooncake("""
            {"timestamp": 1500, "input_length": 2290, "output_length": 316, "hash_ids": [0, 42, 43]}
            {"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0, 1]}
            """)
        #expect(trace.blockTokens == 512)
        #expect(trace.requests.map(\.time) == [0, 1.5])
        #expect(trace.requests[1].prefixBlockIDs == [0, 42, 43])
        #expect(trace.requests[1].inputTokens == 2290)
    }

    @Test func reportsTheLineOfABrokenRecord() {
        #expect(throws: Trace.ParseError(line: 3, reason: "expected TIMESTAMP,ContextTokens,GeneratedTokens")) {
            try Trace.parseAzure("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9,1,1\n2023-11-16 18:17:04.0,x,1")
        }
        #expect(throws: Trace.ParseError.self) { try Trace.parseMooncake("{\"timestamp\": 1}") }
    }
}

@Suite struct CallerAssignmentTests {
    @Test func spreadsCallersByWeightAndRepeatsForASeed() {
        let metros = [
            Metro(name: "a", location: .init(latitude: 0, longitude: 0), utcOffsetHours: 0, weight: 3),
            Metro(name: "b", location: .init(latitude: 0, longitude: 10), utcOffsetHours: 1, weight: 1),
        ]
        var first = CallerAssignment(metros: metros, seed: 7)
        var second = CallerAssignment(metros: metros, seed: 7)
        var counts = [0, 0]
        for _ in 0..<10_000 {
            let metro = first.nextMetro()
            #expect(metro == second.nextMetro())
            counts[metro] += 1
        }
        #expect(abs(Double(counts[0]) / 10_000 - 0.75) < 0.02)
        var other = CallerAssignment(metros: metros, seed: 8)
        var differs = false
        var again = CallerAssignment(metros: metros, seed: 7)
        for _ in 0..<100 where other.nextMetro() != again.nextMetro() { differs = true }
        #expect(differs)
    }

    @Test func theWorldPopulationSpansAtLeastFourContinents() {
        let longitudes = Metro.world.map(\.location.longitude)
        #expect(Metro.world.count >= 8)
        #expect(longitudes.contains { $0 < -60 } && longitudes.contains { $0 > 100 } && longitudes.contains { abs($0) < 15 })
    }
}

/// The real traces shipped in `data/traces/`, checked against their documented facts. They are part
/// of the project: a missing file fails these tests rather than skipping them.
@Suite struct SharedTraceTests {
    static let directory: String = {
        "/" + #filePath.split(separator: "/").dropLast(3).joined(separator: "/") + "/data/traces/"
    }()

    @Test func theAzureCodeTraceMatchesItsDocumentedShape() throws {
        let trace = try Trace.parseAzure(try String(contentsOfFile: Self.directory + "azure-llm-2023-code.csv", encoding: .utf8))
        #expect(trace.requests.count == 8_819)
        #expect(abs(trace.duration / 60 - 57) < 1)
        let meanInput = Double(trace.requests.map(\.inputTokens).reduce(0, +)) / Double(trace.requests.count)
        #expect(abs(meanInput - 2_048) < 10)
    }

    @Test func theMooncakeTraceMatchesItsDocumentedShape() throws {
        let trace = try Trace.parseMooncake(
            try String(contentsOfFile: Self.directory + "mooncake-conversation.jsonl", encoding: .utf8))
        #expect(trace.requests.count == 12_031)
        #expect(abs(Double(trace.requests.count) / trace.duration - 3.4) < 0.1)
        var seen = Set<UInt64>()
        var repeated = 0
        var total = 0
        for request in trace.requests {
            for block in request.prefixBlockIDs {
                total += 1
                if !seen.insert(block).inserted { repeated += 1 }
            }
        }
        #expect(abs(Double(repeated) / Double(total) - 0.37) < 0.03)
    }
}

@Suite struct SyntheticWorkloadTests {
    @Test func poissonArrivalsHaveTheAskedRateAndRepeatForASeed() {
        let trace = SyntheticWorkload.poisson(rate: 20, duration: 500, seed: 1)
        #expect(abs(Double(trace.requests.count) / 500 - 20) < 1)
        #expect(trace.requests == SyntheticWorkload.poisson(rate: 20, duration: 500, seed: 1).requests)
        #expect(trace.requests != SyntheticWorkload.poisson(rate: 20, duration: 500, seed: 2).requests)
        let inputs = trace.requests.map(\.inputTokens).sorted()
        #expect(abs(Double(inputs[inputs.count / 2]) / 1_500 - 1) < 0.1)
    }

    @Test func burstyArrivalsAreMoreVariableThanPoisson() {
        func coefficientOfVariation(_ trace: Trace) -> Double {
            let gaps = zip(trace.requests.dropFirst(), trace.requests).map { $0.time - $1.time }
            let mean = gaps.reduce(0, +) / Double(gaps.count)
            let variance = gaps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(gaps.count)
            return variance.squareRoot() / mean
        }
        let poisson = SyntheticWorkload.poisson(rate: 5, duration: 2_000, seed: 3)
        let bursty = SyntheticWorkload.bursty(calmRate: 1, burstRate: 40, duration: 2_000, seed: 3)
        #expect(abs(coefficientOfVariation(poisson) - 1) < 0.1)
        #expect(poisson.name == "poisson" && bursty.name == "bursty")
        #expect(coefficientOfVariation(bursty) > 1.5)
    }

    @Test func callersFollowTheirLocalTimeOfDay() {
        let metros = [
            Metro(name: "east", location: .init(latitude: 0, longitude: 100), utcOffsetHours: 8),
            Metro(name: "west", location: .init(latitude: 0, longitude: -100), utcOffsetHours: -6),
        ]
        var assignment = CallerAssignment(metros: metros, seed: 9)
        // 04:00 UTC: 12:00 in the east (busy), 22:00 in the west (busy).
        var counts = [0, 0]
        for _ in 0..<4_000 { counts[assignment.nextMetro(atUTCHour: 4)] += 1 }
        #expect(abs(Double(counts[0]) / 4_000 - 0.5) < 0.05)
        // 10:00 UTC: 18:00 in the east (busy), 04:00 in the west (night): 1 : 0.25.
        counts = [0, 0]
        for _ in 0..<4_000 { counts[assignment.nextMetro(atUTCHour: 10)] += 1 }
        #expect(abs(Double(counts[0]) / 4_000 - 0.8) < 0.05)
    }
}
