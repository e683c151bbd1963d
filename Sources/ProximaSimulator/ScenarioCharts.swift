import ProximaBench

/// The two standard plots of a set of runs: TTFT p99 against load, one line per policy, and cost
/// against TTFT p99, one point per policy.
public enum ScenarioCharts {
    /// Load on the x axis: the offered load when the runs set one, else the fleet's mean GPU busy time.
    static func load(of result: ScenarioResult) -> Double {
        if let offered = result.offeredLoad { return offered }
        let busy = result.sites.map { $0.gpuUtilization * Double($0.endpoints) }.reduce(0, +)
        let endpoints = result.sites.map(\.endpoints).reduce(0, +)
        return endpoints > 0 ? busy / Double(endpoints) : 0
    }

    /// Runs grouped by label, in first-seen order.
    static func byLabel(_ results: [ScenarioResult]) -> [(String, [ScenarioResult])] {
        var order: [String] = []
        var groups: [String: [ScenarioResult]] = [:]
        for result in results {
            if groups[result.label] == nil { order.append(result.label) }
            groups[result.label, default: []].append(result)
        }
        return order.map { ($0, groups[$0] ?? []) }
    }

    public static func ttftAgainstLoad(_ results: [ScenarioResult], trace: String) -> SVGChart {
        let offered = results.allSatisfy { $0.offeredLoad != nil }
        return SVGChart(
            title: "TTFT p99 against load (\(trace))", xLabel: offered ? "offered load (share of capacity)" : "mean GPU busy time",
            yLabel: "TTFT p99 (s)", yScale: .logarithmic,
            series: byLabel(results).map { label, runs in
                SVGChart.Series(
                    name: label, points: runs.map { .init(x: load(of: $0), y: $0.summary.timeToFirstToken.p99 / 1_000) }.sorted { $0.x < $1.x })
            },
            referenceY: results.first.map { .init(value: $0.summary.ttftTargetSeconds, label: "target") })
    }

    /// Cost against TTFT p99 for the runs at one load (each label's run closest to `load`, or its last).
    public static func costAgainstTTFT(_ results: [ScenarioResult], trace: String, load: Double? = nil) -> SVGChart {
        let points = byLabel(results).compactMap { label, runs -> SVGChart.Series? in
            let run = load.flatMap { target in runs.min { abs(Self.load(of: $0) - target) < abs(Self.load(of: $1) - target) } } ?? runs.last
            return run.map {
                SVGChart.Series(
                    name: label,
                    points: [.init(x: $0.summary.timeToFirstToken.p99 / 1_000, y: $0.summary.costPerMillionTokens, label: label)])
            }
        }
        let title = load.map { "Cost against TTFT p99 at \(Format.percent($0)) load (\(trace))" } ?? "Cost against TTFT p99 (\(trace))"
        return SVGChart(title: title, xLabel: "TTFT p99 (s)", yLabel: "$ per 1M tokens", xScale: .logarithmic, style: .points, series: points)
    }

    /// Both charts with their file names.
    public static func charts(_ results: [ScenarioResult], trace: String, load: Double? = nil) -> [(String, SVGChart)] {
        [("ttft-vs-load-\(trace).svg", ttftAgainstLoad(results, trace: trace)), ("cost-vs-p99-\(trace).svg", costAgainstTTFT(results, trace: trace, load: load))]
    }
}
