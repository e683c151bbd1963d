import Foundation
import Histogram
import ProximaCore

/// Latency percentiles in milliseconds.
public struct LatencySummary: Codable, Sendable, Equatable {
    public var count: Int
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var mean: Double
    public var max: Double
}

/// The figures of one load run: overall, and per caller metro.
public struct LoadReport: Codable, Sendable {
    public struct Group: Codable, Sendable {
        public var name: String
        public var requests: Int
        public var errors: Int
        public var timeToFirstToken: LatencySummary
        public var timePerOutputToken: LatencySummary
        public var endToEnd: LatencySummary
    }

    public var target: String
    public var workload: String
    public var durationSeconds: Double
    public var requests: Int
    public var errors: [String: Int]
    public var outputTokensPerSecond: Double
    public var requestsPerSecond: Double
    /// How late the generator sent requests behind their plan (its own lag), in milliseconds.
    public var sendLag: LatencySummary
    public var overall: Group
    public var perMetro: [Group]

    public init(target: String, workload: String, outcomes: [RequestOutcome], metros: [Metro], wallSeconds: Double) {
        self.target = target
        self.workload = workload
        self.durationSeconds = wallSeconds
        self.requests = outcomes.count
        var errors: [String: Int] = [:]
        for outcome in outcomes { if let error = outcome.error { errors[error, default: 0] += 1 } }
        self.errors = errors
        let tokens = outcomes.filter { $0.error == nil }.map(\.outputTokens).reduce(0, +)
        self.outputTokensPerSecond = wallSeconds > 0 ? Double(tokens) / wallSeconds : 0
        self.requestsPerSecond = wallSeconds > 0 ? Double(outcomes.count) / wallSeconds : 0
        self.sendLag = Self.summary(outcomes.map(\.lateStart))
        self.overall = Self.group("all", outcomes)
        self.perMetro = metros.enumerated().compactMap { index, metro in
            let mine = outcomes.filter { $0.metro == index }
            return mine.isEmpty ? nil : Self.group(metro.name, mine)
        }
    }

    static func group(_ name: String, _ outcomes: [RequestOutcome]) -> Group {
        let succeeded = outcomes.filter { $0.error == nil }
        let perToken = succeeded.compactMap { outcome -> Double? in
            guard let first = outcome.timeToFirstToken, outcome.outputTokens > 1 else { return nil }
            return (outcome.endToEnd - first) / Double(outcome.outputTokens - 1)
        }
        return Group(
            name: name, requests: outcomes.count, errors: outcomes.count - succeeded.count,
            timeToFirstToken: summary(succeeded.compactMap(\.timeToFirstToken)), timePerOutputToken: summary(perToken),
            endToEnd: summary(succeeded.map(\.endToEnd)))
    }

    /// Percentiles of durations given in seconds, through an HDR histogram at microsecond resolution.
    static func summary(_ seconds: [Double]) -> LatencySummary {
        var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        for value in seconds { _ = histogram.record(UInt64(max(0, min(value, 3_600)) * 1_000_000)) }
        guard !seconds.isEmpty else { return LatencySummary(count: 0, p50: 0, p90: 0, p99: 0, mean: 0, max: 0) }
        func milliseconds(_ microseconds: UInt64) -> Double { (Double(microseconds) / 1_000).rounded(toPlaces: 2) }
        return LatencySummary(
            count: seconds.count, p50: milliseconds(histogram.valueAtPercentile(50)), p90: milliseconds(histogram.valueAtPercentile(90)),
            p99: milliseconds(histogram.valueAtPercentile(99)), mean: (histogram.mean / 1_000).rounded(toPlaces: 2),
            max: milliseconds(histogram.max))
    }

    /// A plain-text table for a terminal.
    public func table() -> String {
        var lines: [String] = []
        lines.append("target \(target), workload \(workload): \(requests) requests in \(String(format: "%.1f", durationSeconds)) s, "
            + "\(String(format: "%.1f", requestsPerSecond)) req/s, \(String(format: "%.0f", outputTokensPerSecond)) output tokens/s")
        if !errors.isEmpty {
            lines.append("errors: " + errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        }
        lines.append("send lag (generator behind plan): p50 \(sendLag.p50) ms, p99 \(sendLag.p99) ms")
        lines.append("")
        let header = ["callers", "requests", "errors", "TTFT p50", "TTFT p90", "TTFT p99", "TPOT p50", "E2E p50", "E2E p99"]
        var rows = [header]
        for group in perMetro + [overall] {
            rows.append([
                group.name, String(group.requests), String(group.errors), Self.ms(group.timeToFirstToken.p50), Self.ms(group.timeToFirstToken.p90),
                Self.ms(group.timeToFirstToken.p99), Self.ms(group.timePerOutputToken.p50), Self.ms(group.endToEnd.p50),
                Self.ms(group.endToEnd.p99),
            ])
        }
        let widths = (0..<header.count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for (index, row) in rows.enumerated() {
            lines.append(
                row.enumerated().map { column, cell in
                    column == 0 ? cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[column] - cell.count) + cell
                }.joined(separator: "  "))
            if index == 0 { lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        return lines.joined(separator: "\n")
    }

    static func ms(_ value: Double) -> String { value >= 100 ? String(format: "%.0f ms", value) : String(format: "%.1f ms", value) }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        let factor = pow(10, Double(places))
        return (self * factor).rounded() / factor
    }
}
