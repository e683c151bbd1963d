import Foundation
import ProximaCore

/// One routing policy's result on a load run: latency percentiles, SLO attainment, cost and where
/// the requests went. Rows of several policies on the same workload and fleet make the comparison
/// table of `proxima demo` and docs/benchmarks.md.
public struct PolicyResult: Codable, Sendable {
    public var policy: String
    public var requests: Int
    public var errors: Int
    public var timeToFirstToken: LatencySummary
    public var timePerOutputToken: LatencySummary
    public var endToEnd: LatencySummary
    /// Share of all requests (failures count as misses) whose first token came within the target.
    public var sloAttainment: Double
    public var ttftTargetSeconds: Double
    /// US dollars per million tokens (prompt and output) at the serving endpoints' per-token prices.
    public var costPerMillionTokens: Double
    /// Share of answered requests served by each site.
    public var siteShares: [String: Double]
    public var outputTokensPerSecond: Double

    /// Summarises one run. Prices come from the fleet (per-token, or GPU-hour through throughput,
    /// as the router sees them); prompt tokens from the usage chunk, else from `fallbackPromptTokens`.
    public init(policy: String, outcomes: [RequestOutcome], fleet: Fleet, ttftTargetSeconds: Double, wallSeconds: Double) {
        self.policy = policy
        self.requests = outcomes.count
        let succeeded = outcomes.filter { $0.error == nil }
        self.errors = outcomes.count - succeeded.count
        let group = LoadReport.group(policy, outcomes)
        self.timeToFirstToken = group.timeToFirstToken
        self.timePerOutputToken = group.timePerOutputToken
        self.endToEnd = group.endToEnd
        self.ttftTargetSeconds = ttftTargetSeconds
        let met = succeeded.filter { ($0.timeToFirstToken ?? .infinity) <= ttftTargetSeconds }.count
        self.sloAttainment = outcomes.isEmpty ? 0 : Double(met) / Double(outcomes.count)
        var byName: [String: Endpoint] = [:]
        for endpoint in fleet.endpoints { byName[endpoint.name] = endpoint }
        var cost = 0.0
        var tokens = 0
        var sites: [String: Int] = [:]
        for outcome in succeeded {
            guard let name = outcome.endpoint, let endpoint = byName[name] else { continue }
            let prompt = outcome.promptTokens ?? 0
            cost += Double(prompt) * endpoint.performance.inputCostPerToken
                + Double(outcome.outputTokens) * endpoint.performance.outputCostPerToken
            tokens += prompt + outcome.outputTokens
            sites[endpoint.siteName, default: 0] += 1
        }
        self.costPerMillionTokens = tokens > 0 ? cost / Double(tokens) * 1_000_000 : 0
        let answered = max(1, sites.values.reduce(0, +))
        self.siteShares = sites.mapValues { Double($0) / Double(answered) }
        let outputTokens = succeeded.map(\.outputTokens).reduce(0, +)
        self.outputTokensPerSecond = wallSeconds > 0 ? Double(outputTokens) / wallSeconds : 0
    }

    /// A Markdown table of several policies' results, one row each.
    public static func table(_ results: [PolicyResult]) -> String {
        var lines = [
            "| policy | requests | errors | TTFT p50 | TTFT p90 | TTFT p99 | TPOT p50 | E2E p50 | SLO met | $ / 1M tokens | busiest site |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for result in results {
            let busiest = result.siteShares.max { $0.value < $1.value }
            let cells = [
                result.policy, "\(result.requests)", "\(result.errors)", seconds(result.timeToFirstToken.p50),
                seconds(result.timeToFirstToken.p90), seconds(result.timeToFirstToken.p99),
                String(format: "%.0f ms", result.timePerOutputToken.p50), seconds(result.endToEnd.p50),
                String(format: "%.0f%% (%.1f s)", result.sloAttainment * 100, result.ttftTargetSeconds),
                String(format: "%.3f", result.costPerMillionTokens),
                busiest.map { "\($0.key) \(Int(($0.value * 100).rounded()))%" } ?? "-",
            ]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }

    private static func seconds(_ milliseconds: Double) -> String {
        milliseconds < 1_000 ? String(format: "%.0f ms", milliseconds) : String(format: "%.2f s", milliseconds / 1_000)
    }
}
