import ArgumentParser
import Foundation
import ProximaBench
import ProximaCore

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure: load generation against any OpenAI-compatible URL, the router's decision time.",
        subcommands: [Load.self, RouterBench.self])
}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay a real trace or a synthetic workload open-loop against an OpenAI-compatible URL.",
        discussion: """
            Each request is a streamed chat completion whose prompt has the trace's input size in words and
            whose max_tokens is its output size. Callers are spread over metros (weighted, following their
            local time of day) and each request says where it comes from in the header
            x-proxima-client-location: LATITUDE,LONGITUDE (and x-proxima-client-region: METRO).
            """)

    @Option(help: "OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1.")
    var url: String

    @Option(help: "Model name to request.")
    var model: String

    @OptionGroup var workloadOptions: WorkloadOptions

    @Option(help: "Run length in seconds (synthetic length; trace: cut after this long).")
    var duration: Double = 60

    @Option(help: "Stop after this many requests.")
    var maxRequests: Int?

    @Option(help: "Requests allowed in flight; more are counted as client_limit errors.")
    var maxInFlight: Int = 10_000

    @Option(help: "Write the report as JSON to this file.")
    var json: String?

    @Option(help: "Seed for caller assignment and synthetic workloads.")
    var seed: UInt64 = 1

    func run() async throws {
        let workload = try workloadOptions.workload(duration: duration, seed: seed)
        let population = try workloadOptions.selectedMetros()
        let plan = workloadOptions.plan(workload, metros: population, duration: duration, maxRequests: maxRequests, seed: seed)
        guard !plan.requests.isEmpty else { throw ValidationError("the workload produced no request; check --duration and the trace") }
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        let generator = LoadGenerator(settings: .init(baseURL: base, model: model, maxInFlight: maxInFlight))
        FileHandle.standardError.write(
            Data("sending \(plan.requests.count) requests over \(String(format: "%.0f", plan.duration)) s to \(base) (\(workload.name))\n".utf8))
        let started = ContinuousClock.now
        let progress = Task { await showProgress(generator, total: plan.requests.count, planned: plan.duration, started: started) }
        let outcomes = await generator.run(plan)
        progress.cancel()
        _ = await progress.value
        let elapsed = ContinuousClock.now - started
        let report = LoadReport(
            target: base, workload: workload.name, outcomes: outcomes, metros: population,
            wallSeconds: elapsed.seconds)
        print(report.table())
        if let json {
            try report.json().write(to: URL(fileURLWithPath: json))
            FileHandle.standardError.write(Data("report written to \(json)\n".utf8))
        }
    }
}

struct RouterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Time the router's decisions over synthetic fleets of growing size, per policy.",
        discussion: """
            Every synthetic endpoint (vLLM, mixed 8B GPU profiles, sites around the world, varied load from
            the gateway's counts and engine metrics) serves the requested model, so each decision rates all
            of them and returns the first 4 (the gateway's hot path). Prints candidates x policy -> mean,
            p50 and p99 microseconds per decision. Build in release for meaningful figures.
            """)

    @Option(help: "Comma-separated fleet sizes (endpoints, all candidates).")
    var candidates: String = "10,100,1000,10000"

    @Option(help: "Comma-separated policies.")
    var policies: String = "balanced,slo,least-inflight,round-robin"

    @Option(help: "Measured seconds per cell (size x policy), after a warm-up.")
    var seconds: Double = 0.3

    @Option(help: "Candidates returned per decision.")
    var limit: Int = 4

    @Flag(help: "Print the result as JSON instead of a Markdown table.")
    var json = false

    func run() async throws {
        let sizes = try candidates.split(separator: ",").map { part in
            let text = part.trimmingCharacters(in: .whitespaces)
            guard let size = Int(text), size > 0 else { throw ValidationError("--candidates: '\(text)' is not a positive integer") }
            return size
        }
        let names = policies.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !sizes.isEmpty, !names.isEmpty else { throw ValidationError("give at least one size and one policy") }
        guard seconds > 0, limit >= 1 else { throw ValidationError("--seconds must be positive and --limit at least 1") }
        let settings = RouterBenchmark.Settings(candidates: sizes, policies: names, secondsPerCell: seconds, limit: limit)
        let result: RouterBenchmark.Result
        do {
            result = try RouterBenchmark.run(settings)
        } catch let failure as RouterBenchmark.Failure {
            throw ValidationError(failure.description)
        }
        if json {
            print(String(decoding: try result.json(), as: UTF8.self))
        } else {
            print(result.markdownTable(), terminator: "")
        }
    }
}

/// Redraws one progress line on standard error every half second (a line every 5 s when it is not a terminal).
func showProgress(_ generator: LoadGenerator, total: Int, planned: Double, started: ContinuousClock.Instant) async {
    let terminal = isatty(STDERR_FILENO) != 0
    var ticks = 0
    while !Task.isCancelled {
        try? await Task.sleep(for: .milliseconds(500))
        ticks += 1
        let progress = generator.progress
        let elapsed = Double((ContinuousClock.now - started).components.seconds)
        let fraction = total > 0 ? Double(progress.completed + progress.failed) / Double(total) : 1
        let width = 30
        let filled = min(width, Int(fraction * Double(width)))
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        let line = String(
            format: "[%@] %3.0f%%  %.0f/%.0f s  sent %d  done %d  failed %d  in flight %d", bar, fraction * 100, elapsed, planned,
            progress.sent, progress.completed, progress.failed, progress.inFlight)
        if terminal {
            FileHandle.standardError.write(Data(("\r" + line).utf8))
        } else if ticks % 10 == 0 {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }
    if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
}
