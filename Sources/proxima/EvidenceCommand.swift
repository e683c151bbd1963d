import ArgumentParser
import Foundation
import ProximaBench
import ProximaCore
import ProximaGateway
import ProximaSimulator

struct Evidence: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the evidence report's experiments in simulation and write docs/evidence.md with its figures.",
        discussion: """
            Experiments: the TTFT knee of one region under rising load, a queueing-theory check, the same GPUs spread \
            over a global fleet per policy on both real traces (with the physical floor), an ablation of the balanced \
            policy's axes, a site outage mid-run, prefix affinity, and the cost of sovereignty (European callers held \
            to EU sites against unconstrained, with the EU site failing too). Deterministic for a seed.
            """)

    @Option(help: "The one-region fleet file.")
    var centralFleet: String = "examples/evidence/central.yaml"

    @Option(help: "The global fleet file (same GPUs, spread out); its routing section sets policies and the TTFT target.")
    var globalFleet: String = "examples/evidence/global.yaml"

    @Option(help: "Directory holding azure-llm-2023-code.csv and mooncake-conversation.jsonl (default: the traces shipped in data/traces).")
    var tracesDir: String = TraceFiles.shippedDirectory

    @Option(help: "Traces to replay (comma-separated): azure, mooncake or files.")
    var traces: String = "azure,mooncake"

    @Option(help: "Simulated seconds of arrivals per run.")
    var runSeconds: Double = 600

    @Option(help: "Where to write the report.")
    var out: String = "docs/evidence.md"

    @Option(help: "Directory for the SVG figures (linked from the report by its path relative to the report).")
    var figures: String = "docs/evidence"

    @Option(help: "Also write every run's result as JSON to this file.")
    var json: String?

    @Option(help: "Random seed.")
    var seed: UInt64 = 7

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let central = try ConfigurationLoader.load(path: centralFleet, environment: environment)
        let global = try ConfigurationLoader.load(path: globalFleet, environment: environment)
        let workloads = try traces.split(separator: ",").map { try TraceFiles.load(String($0.trimmingSpaces()), from: tracesDir) }
        let settings = EvidenceSettings(
            centralFleet: try Fleet(configuration: central), globalFleet: try Fleet(configuration: global), routing: global.routing,
            breaker: global.routing.breaker, telemetry: global.routing.telemetry, maxAttempts: global.server.maxAttempts, traces: workloads,
            runSeconds: runSeconds, seed: seed, centralFleetFile: centralFleet, globalFleetFile: globalFleet)
        let outURL = URL(fileURLWithPath: out)
        let figuresURL = URL(fileURLWithPath: figures, isDirectory: true)
        let report = try EvidenceReport.run(settings, figuresPath: Self.relativePath(from: outURL.deletingLastPathComponent(), to: figuresURL)) {
            FileHandle.standardError.write(Data(($0 + "\n").utf8))
        }
        try FileManager.default.createDirectory(at: figuresURL, withIntermediateDirectories: true)
        for figure in report.figures {
            try Data(figure.svg.utf8).write(to: figuresURL.appendingPathComponent(figure.name))
        }
        try Data(report.markdown.utf8).write(to: outURL)
        if let json {
            try writeJSON(report.runs, to: json)
        }
        print(
            "Wrote \(out) and \(report.figures.count) figures in \(figures): \(report.runs.count) runs, \(report.simulatedRequests) requests simulated in "
                + String(format: "%.1f s", report.wallSeconds))
    }

    /// `target` relative to `base` when it lies below it, else its absolute path.
    static func relativePath(from base: URL, to target: URL) -> String {
        let basePath = base.standardizedFileURL.path
        let targetPath = target.standardizedFileURL.path
        guard targetPath.hasPrefix(basePath + "/") else { return targetPath }
        return String(targetPath.dropFirst(basePath.count + 1))
    }
}
