import ArgumentParser
import Foundation
import Logging
import NIOCore
import ProximaBench
import ProximaCore
import ProximaEmulator
import ProximaGateway
import ServiceLifecycle

struct CacheBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Measure the response cache end to end: the same repetitive chat workload through the gateway with the cache off, then on.",
        discussion: """
            Starts the emulated fleet of --fleet (a chat model and an embeddings model) and a gateway in this
            process, once per pass on fresh engines, and sends the workload built from the fow-cache labelled
            pairs and conversations (data/fow-cache) at the Mooncake trace's arrival times: exact repeats,
            paraphrases (right hits), different-answer variants (wrong hits if served) and fresh questions
            with Zipf popularity. Reports TTFT and end-to-end time, the share served per cache tier, wrong
            hits, GPU time (the engines' busy seconds) and money (tokens x the endpoints' prices) for each
            pass. See docs/benchmarks.md, "Semantic cache on the emulated fleet".
            """)

    @Option(help: "Fleet file with emulated endpoints: a chat model and a model of kind embeddings.")
    var fleet: String = "examples/fleet-cache.yaml"

    @Option(help: "Chat model to request (default: the first logical model of kind chat).")
    var model: String?

    @Option(help: "Embeddings model for the semantic tier (default: the first logical model of kind embeddings).")
    var embeddingsModel: String?

    @Option(help: "Directory holding the fow-cache data (pairs.jsonl, conv-parts/).")
    var dataDir: String = CacheWorkload.shippedDataDirectory

    @Option(help: "Directory holding mooncake-conversation.jsonl.")
    var tracesDir: String = TraceFiles.shippedDirectory

    @Option(help: "Mean arrival rate, requests per second (the trace's arrival times, compressed).")
    var rate: Double = 8

    @Option(help: "Seconds of arrivals per pass.")
    var duration: Double = 60

    @Option(help: "Cap on a question's max_tokens (taken from the trace's output lengths).")
    var maxOutputTokens: Int = 512

    @Option(help: "Share of arrivals asking a question seen before, verbatim.")
    var exactRepeat: Double = CacheWorkload.Mix().exactRepeat

    @Option(help: "Share of arrivals asking a same-answer paraphrase of a question seen before.")
    var paraphrase: Double = CacheWorkload.Mix().paraphrase

    @Option(help: "Share of arrivals asking a different-answer variant of a question seen before.")
    var variant: Double = CacheWorkload.Mix().variant

    @Option(help: "Share of arrivals asking a question unlike any seen before.")
    var fresh: Double = CacheWorkload.Mix().fresh

    @Option(help: "Share of arrivals that are multi-turn conversations.")
    var conversationShare: Double = CacheWorkload.Mix().conversationShare

    @Option(help: "Zipf exponent of question popularity.")
    var zipf: Double = CacheWorkload.Mix().zipfExponent

    @Option(help: "Semantic similarity threshold for the cache-on pass (default: the configuration's).")
    var threshold: Double?

    @Option(help: "Passes to run, in order, each on a fresh fleet: off, on, comma-separated (off,off,on also shows the noise between two identical passes).")
    var passes: String = "off,on"

    @Option(help: "Seed of the workload.")
    var seed: UInt64 = 14

    @Option(help: "Write the markdown report to this file.")
    var output: String = "cache-bench.md"

    @Option(help: "Also write the summaries as JSON to this file.")
    var json: String?

    func run() async throws {
        var configuration = try ConfigurationLoader.load(path: fleet, environment: ProcessInfo.processInfo.environment)
        let chatModel = model ?? configuration.models.first { $0.kind == .chat }?.name
        let embedModel = embeddingsModel ?? configuration.models.first { $0.kind == .embeddings }?.name
        guard let chatModel else { throw ValidationError("\(fleet) names no chat model; give --model") }
        guard let embedModel else { throw ValidationError("\(fleet) names no model of kind embeddings; give --embeddings-model") }
        let passNames = passes.split(separator: ",").map { String($0.trimmingSpaces()) }
        guard !passNames.isEmpty, passNames.allSatisfy({ $0 == "off" || $0 == "on" }) else {
            throw ValidationError("--passes takes off and on, comma-separated")
        }
        let mix = CacheWorkload.Mix(
            exactRepeat: exactRepeat, paraphrase: paraphrase, variant: variant, fresh: fresh, conversationShare: conversationShare,
            zipfExponent: zipf)
        let workload: CacheWorkload
        do {
            workload = try CacheWorkload.build(
                pairs: try CacheWorkload.loadPairs(from: dataDir), trace: try TraceFiles.load("mooncake", from: tracesDir), rate: rate,
                duration: duration, mix: mix, maxOutputTokens: maxOutputTokens, seed: seed)
        } catch let failure as CacheWorkload.Failure {
            throw ValidationError(failure.description)
        }
        LoggingSystem.bootstrap { label in
            var handler = TextLogHandler(label: label)
            handler.logLevel = .warning
            return handler
        }
        var quiet = Logger(label: "proxima-bench-cache")
        quiet.logLevel = .warning
        configuration.logging.level = "warning"
        let description = Self.describe(workload, rate: rate)
        print(description + "\n")

        var summaries: [CacheRunSummary] = []
        for (index, pass) in passNames.enumerated() {
            var run = configuration
            run.cache.enabled = pass == "on"
            if pass == "on" {
                run.cache.semantic.model = embedModel
                if let threshold { run.cache.semantic.threshold = threshold }
            }
            // A repeated pass (off,off,on: an A/A check of the machine's noise) gets its number.
            let repeats = passNames.filter { $0 == pass }.count
            let ordinal = passNames[...index].filter { $0 == pass }.count
            let label = (pass == "on" ? "cache on" : "cache off") + (repeats > 1 ? " (\(ordinal))" : "")
            print("[\(index + 1)/\(passNames.count)] \(label): \(workload.arrivals.count) requests over \(Int(duration)) s")
            let summary = try await Self.pass(run, label: label, workload: workload, model: chatModel, logger: quiet)
            print(String(format: "  TTFT mean %.0f ms, end to end mean %.0f ms, %d served from cache, %d errors", summary.timeToFirstToken.mean, summary.endToEnd.mean, summary.hits, summary.requests - summary.succeeded))
            summaries.append(summary)
        }
        let report = CacheBenchReport(workload: description, runs: summaries)
        let markdown = report.markdown()
        print("\n" + markdown)
        try markdown.write(toFile: output, atomically: true, encoding: .utf8)
        print("written to \(output)")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }

    /// One pass on a freshly started fleet and gateway, so that no engine queue, prefix cache or
    /// response cache carries over from the previous pass.
    static func pass(_ configuration: ProximaConfiguration, label: String, workload: CacheWorkload, model: String, logger: Logger) async throws
        -> CacheRunSummary
    {
        var configuration = configuration
        let emulated = try await EmulatorFleet.start(configuration: configuration, logger: logger)
        for index in configuration.endpoints.indices where configuration.endpoints[index].engine == .emulated {
            if let url = emulated.baseURL(of: configuration.endpoints[index].name) { configuration.endpoints[index].url = url }
        }
        configuration.server.host = "127.0.0.1"
        configuration.server.port = 0
        let gateway: Gateway
        do {
            gateway = try Gateway(configuration: configuration, logger: logger)
        } catch {
            await emulated.stop()
            throw error
        }
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let group = ServiceGroup(
            configuration: gateway.serviceGroupConfiguration(
                services: gateway.services(onServerRunning: { channel in
                    portContinuation.yield(channel.localAddress?.port ?? 0)
                    portContinuation.finish()
                }), signals: []))
        let gatewayTask = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            await group.triggerGracefulShutdown()
            _ = try? await gatewayTask.value
            await emulated.stop()
            throw ValidationError("the gateway did not start")
        }
        let endpoints = MeteredEndpoint.all(in: configuration) { name in
            emulated.port(of: name).map { "http://127.0.0.1:\($0)/metrics" }
        }
        let total = workload.arrivals.count
        // A progress line only on a terminal; a redirected run's output stays the report alone.
        let showsProgress = isatty(2) != 0
        let summary = await CacheRunSummary.measure(
            label: label, workload: workload, baseURL: "http://127.0.0.1:\(port)/v1", model: model, endpoints: endpoints,
            progress: showsProgress ? Self.progressPrinter(total: total) : nil)
        if showsProgress { FileHandle.standardError.write(Data("\r".utf8)) }
        await group.triggerGracefulShutdown()
        _ = try? await gatewayTask.value
        await emulated.stop()
        return summary
    }

    static func progressPrinter(total: Int) -> @Sendable (Int) -> Void {
        { done in FileHandle.standardError.write(Data("\r  \(done)/\(total) done   ".utf8)) }
    }

    /// How the workload was built, with the shares actually planned.
    static func describe(_ workload: CacheWorkload, rate: Double) -> String {
        let counts = workload.kindCounts
        let total = max(1, workload.arrivals.count)
        let conversations = workload.arrivals.filter { workload.questions[$0.question].isConversation }.count
        func percent(_ value: Double) -> String { String(format: "%.0f%%", value * 100) }
        func share(_ kind: CacheWorkload.Kind) -> String {
            "\(kind.rawValue.replacingOccurrences(of: "_", with: " ")) \(percent(Double(counts[kind] ?? 0) / Double(total))) (\(counts[kind] ?? 0))"
        }
        let mix = workload.mix
        return "Workload: \(workload.arrivals.count) streamed chat requests over \(Int(workload.duration)) s (Mooncake conversation arrivals "
            + "compressed to \(String(format: "%.1f", rate))/s), fow-cache questions with Zipf s=\(String(format: "%.2f", mix.zipfExponent)) popularity; "
            + "sent: \([share(.exactRepeat), share(.paraphrase), share(.variant), share(.fresh)].joined(separator: ", ")); "
            + "\(percent(Double(conversations) / Double(total))) multi-turn; target mix \(percent(mix.exactRepeat)) / \(percent(mix.paraphrase)) / "
            + "\(percent(mix.variant)) / \(percent(mix.fresh))."
    }
}
