import ArgumentParser
import Foundation
import NIOCore
import ProximaBench
import ProximaCore

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure: load generation against any OpenAI-compatible URL, the router's decision time.",
        subcommands: [Load.self, RouterBench.self, Overhead.self, Sweep.self, Upstream.self, CacheBench.self, CachePairs.self, CacheIndexBench.self, GuardsBench.self, EdgeBench.self])
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

struct Upstream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a fast OpenAI-compatible upstream stand-in (canned JSON; paced SSE for stream requests) until stopped.")

    @Option(help: "Port to listen on (127.0.0.1).")
    var port: Int = 18180

    @Option(help: "Events per streamed answer.")
    var chunks: Int = 20

    @Option(help: "Milliseconds between streamed events.")
    var pacingMs: Int = 50

    func run() async throws {
        OverheadRig.raiseOpenFileLimit()
        let upstream = try await FastUpstream(settings: .init(port: port, chunks: chunks, pacing: .milliseconds(Int64(pacingMs))))
        print("bench upstream on http://127.0.0.1:\(upstream.port)/v1 (\(chunks) events \(pacingMs) ms apart when streaming)")
        var sources: [any DispatchSourceSignal] = []
        let (signals, continuation) = AsyncStream<Void>.makeStream()
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { continuation.yield() }
            source.resume()
            sources.append(source)
        }
        for await _ in signals { break }
        withExtendedLifetime(sources) {}
        try await upstream.shutdown()
    }
}

/// Options given as NAME=VALUE, in order.
func namedPairs(_ list: [String], flag: String) throws -> [(String, String)] {
    try list.map { item in
        let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw ValidationError("--\(flag) takes NAME=VALUE, got '\(item)'") }
        return (parts[0], parts[1])
    }
}

struct Sweep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sustained requests/s per path, open-loop: a rising request rate, each latency from when its request was due.",
        discussion: """
            Each step sends requests at a fixed rate for --seconds over --connections kept-alive connections; a request \
            due while all are busy waits, and the wait counts. A step passes when every request succeeded, the rate was \
            achieved (95%) and p99 stayed within --p99-ms. The sweep of a path stops after its second failing step. \
            The best passing rate per path is reported.
            """)

    @Option(help: "A path to measure, repeatable: NAME=URL.")
    var target: [String] = []

    @Option(help: "Bearer key for a target, repeatable: NAME=KEY.")
    var bearer: [String] = []

    @Option(help: "Model name to request.")
    var model: String = "bench"

    @Option(help: "Request rates to try, in order (comma-separated requests/s).")
    var rates: String = "50,100,200,500,1000,2000,4000,6000,8000,10000,12000,16000,20000,24000,28000,32000"

    @Option(help: "Seconds per step.")
    var seconds: Double = 5

    @Option(help: "Kept-alive connections per path.")
    var connections: Int = 128

    @Option(help: "p99 limit of a passing step, milliseconds.")
    var p99Ms: Double = 20

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    func run() async throws {
        let bearers = Dictionary(try namedPairs(bearer, flag: "bearer"), uniquingKeysWith: { $1 })
        let targets = try namedPairs(target, flag: "target").map { name, url in
            try OverheadRig.Target(name: name, url: url, bearer: bearers[name])
        }
        guard !targets.isEmpty else { throw ValidationError("give at least one --target NAME=URL") }
        let rateList = try rates.split(separator: ",").map { part -> Double in
            guard let rate = Double(part.trimmingSpaces()), rate > 0 else { throw ValidationError("--rates takes positive numbers") }
            return rate
        }
        guard seconds > 0, connections > 0, p99Ms > 0 else { throw ValidationError("--seconds, --connections and --p99-ms must be positive") }
        OverheadRig.raiseOpenFileLimit()
        let settings = OpenLoopSweep.Settings(rates: rateList, seconds: seconds, connections: connections, p99LimitMilliseconds: p99Ms)
        var results: [String: [OpenLoopSweep.Step]] = [:]
        for target in targets {
            FileHandle.standardError.write(Data("sweep: \(target.name)\n".utf8))
            results[target.name] = try await OpenLoopSweep.sweep(target: target, model: model, settings: settings)
        }
        print(Self.table(targets: targets.map(\.name), results: results, limit: p99Ms))
        if let json { try writeJSON(results, to: json) }
    }

    static func table(targets: [String], results: [String: [OpenLoopSweep.Step]], limit: Double) -> String {
        func best(_ name: String) -> OpenLoopSweep.Step? {
            results[name]?.filter { OpenLoopSweep.passes($0, limitMilliseconds: limit) }.max { $0.rate < $1.rate }
        }
        func ratio(_ name: String, _ other: String) -> String {
            guard targets.contains(other), let mine = best(name), let theirs = best(other) else { return "-" }
            return String(format: "%.2fx", mine.rate / theirs.rate)
        }
        var lines = [
            "| path | sustained requests/s (open loop, p99 <= \(Int(limit)) ms) | p50 | p99 | vs nginx | vs litellm |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in targets {
            guard let step = best(name) else {
                lines.append("| \(name) | none passed | - | - | - | - |")
                continue
            }
            lines.append(
                "| \(name) | \(Int(step.rate)) | \(Int(step.p50)) µs | \(Int(step.p99)) µs | \(ratio(name, "nginx")) | \(ratio(name, "litellm")) |")
        }
        lines += ["", "Every step (path, offered rate, achieved, failed, p50, p99):", ""]
        for name in targets {
            for step in results[name] ?? [] {
                lines.append(
                    "    \(name.padding(toLength: 8, withPad: " ", startingAt: 0)) \(Int(step.rate))/s  achieved \(Int(step.achieved))/s  "
                        + "failed \(step.failed)  p50 \(Int(step.p50)) µs  p99 \(Int(step.p99)) µs")
            }
        }
        return lines.joined(separator: "\n")
    }
}

struct Overhead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure what proxies add over a fast upstream: latency one request at a time, and many concurrent SSE streams.",
        discussion: """
            Give the upstream itself as the target named 'direct' and each proxy in front of it as another target \
            (--target proxima=http://127.0.0.1:8080/v1). Latency is measured with a plain blocking client, one \
            kept-alive connection per target, the targets taking turns; added latency is each target's percentile \
            minus direct's. Streams are opened per target in turn; --pid lets the rig watch a proxy's memory. \
            Start the upstream with `proxima bench upstream` and the same pacing. scripts/bench-overhead runs it all.
            """)

    @Option(help: "A path to measure, repeatable: NAME=URL (one of them named 'direct').")
    var target: [String] = []

    @Option(help: "Bearer key for a target, repeatable: NAME=KEY.")
    var bearer: [String] = []

    @Option(help: "Process whose memory to watch during the stream tests, repeatable: NAME=PID.")
    var pid: [String] = []

    @Option(help: "Model name to request.")
    var model: String = "bench"

    @Option(help: "Requests per target per round, one at a time.")
    var requests: Int = 2_000

    @Option(help: "Rounds of the latency test (targets take turns each round).")
    var rounds: Int = 5

    @Option(help: "Concurrent stream counts to test (comma-separated; empty for none).")
    var streams: String = "1000,2000"

    @Option(help: "Milliseconds between the upstream's streamed events (as given to `proxima bench upstream`).")
    var pacingMs: Int = 50

    @Option(help: "Bytes of filler in each request's prompt (0: a short prompt).")
    var promptBytes: Int = 0

    @Option(help: "Proxima's /metrics URL for a target, NAME=URL: its own overhead histogram over the latency test is set beside the rig's figure.")
    var selfReport: String?

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    struct Report: Codable {
        var latency: [String: OverheadRig.Percentiles]
        var streams: [String: [OverheadRig.StreamResult]]
        var selfReported: SelfReported?
    }

    /// A gateway's own overhead histogram over the latency test, against the rig's measurement.
    struct SelfReported: Codable {
        var target: String
        var requests: Int
        var histogramMeanMicroseconds: Double
        var rigAddedMeanMicroseconds: Double
        var ratio: Double
    }

    func run() async throws {
        let bearers = Dictionary(try namedPairs(bearer, flag: "bearer"), uniquingKeysWith: { $1 })
        let pids = Dictionary(try namedPairs(pid, flag: "pid"), uniquingKeysWith: { $1 }).compactMapValues { Int32($0) }
        let targets = try namedPairs(target, flag: "target").map { name, url in
            var target = try OverheadRig.Target(name: name, url: url, bearer: bearers[name], pid: pids[name])
            target.promptPadding = promptBytes
            return target
        }
        guard targets.contains(where: { $0.name == "direct" }) else { throw ValidationError("one --target must be named 'direct' (the upstream itself)") }
        let counts = try streams.split(separator: ",").map { part -> Int in
            guard let count = Int(part.trimmingSpaces()), count > 0 else { throw ValidationError("--streams takes positive counts") }
            return count
        }
        let reporting = try selfReport.map { try namedPairs([$0], flag: "self-report")[0] }
        var before: (sum: Double, count: Double)?
        if let reporting { before = try await OverheadRig.gatewayOverhead(metricsURL: reporting.1) }
        FileHandle.standardError.write(Data("latency: \(rounds) rounds of \(requests) requests per target\n".utf8))
        let latency = try OverheadRig.latency(targets: targets, model: model, requests: requests, rounds: rounds)
        var selfReported: SelfReported?
        if let (name, url) = reporting, let before, let row = latency[name], let direct = latency["direct"] {
            let after = try await OverheadRig.gatewayOverhead(metricsURL: url)
            let count = after.count - before.count
            let histogramMean = count > 0 ? (after.sum - before.sum) / count * 1e6 : 0
            let rigMean = row.mean - direct.mean
            selfReported = SelfReported(
                target: name, requests: Int(count), histogramMeanMicroseconds: histogramMean, rigAddedMeanMicroseconds: rigMean,
                ratio: rigMean > 0 ? histogramMean / rigMean : 0)
        }
        var streamResults: [String: [OverheadRig.StreamResult]] = [:]
        for count in counts {
            for target in targets {
                FileHandle.standardError.write(Data("streams: \(count) through \(target.name)\n".utf8))
                let result = try await OverheadRig.streams(target: target, model: model, streams: count, pacing: Double(pacingMs) / 1_000)
                streamResults[target.name, default: []].append(result)
                try await Task.sleep(for: .seconds(2))
            }
        }
        print(Self.table(targets: targets.map(\.name), latency: latency, streams: streamResults))
        if let selfReported {
            print(
                String(
                    format: "\n%@'s own overhead histogram over the latency test: mean %.0f µs over %d requests; the rig's added mean: %.0f µs (ratio %.2f).",
                    selfReported.target, selfReported.histogramMeanMicroseconds, selfReported.requests, selfReported.rigAddedMeanMicroseconds,
                    selfReported.ratio))
        }
        if let json { try writeJSON(Report(latency: latency, streams: streamResults, selfReported: selfReported), to: json) }
    }

    static func table(targets: [String], latency: [String: OverheadRig.Percentiles], streams: [String: [OverheadRig.StreamResult]]) -> String {
        func us(_ value: Double) -> String { String(format: "%.0f µs", value) }
        var lines = [
            "| path | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        let direct = latency["direct"]
        for name in targets {
            guard let row = latency[name] else { continue }
            let added = direct.map { [row.p50 - $0.p50, row.p99 - $0.p99, row.p999 - $0.p999].map(us) } ?? ["-", "-", "-"]
            lines.append("| \(name) | \(us(row.p50)) | \(us(row.p99)) | \(us(row.p999)) | " + added.joined(separator: " | ") + " |")
        }
        if !streams.isEmpty {
            lines += [
                "", "| path | streams | completed | stalled | events | chunk delay p50 | p99 | peak RSS |", "|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for name in targets {
                for result in streams[name] ?? [] {
                    lines.append(
                        "| \(name) | \(result.streams) | \(result.completed) | \(result.stalled) | \(result.events) | "
                            + (result.chunkDelay.count > 0 ? "\(us(result.chunkDelay.p50)) | \(us(result.chunkDelay.p99))" : "- | -")
                            + " | \(result.peakRSSMiB.map { String(format: "%.0f MiB", $0) } ?? "-") |")
                }
            }
        }
        return lines.joined(separator: "\n")
    }
}
