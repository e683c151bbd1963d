import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import ProximaCore

/// An upstream whose work a cache run accounts for: where its metrics are, how many GPUs it holds,
/// what it charges, and whether it is the embeddings model (the cache's own cost).
public struct MeteredEndpoint: Codable, Sendable, Equatable {
    public var name: String
    /// The engine's Prometheus page (the emulator's `/metrics`).
    public var metricsURL: String
    public var gpuCount: Int
    public var inputPerMillion: Double
    public var outputPerMillion: Double
    public var gpuHour: Double
    public var servesEmbeddings: Bool

    public init(
        name: String, metricsURL: String, gpuCount: Int = 1, inputPerMillion: Double = 0, outputPerMillion: Double = 0, gpuHour: Double = 0,
        servesEmbeddings: Bool = false
    ) {
        self.name = name
        self.metricsURL = metricsURL
        self.gpuCount = gpuCount
        self.inputPerMillion = inputPerMillion
        self.outputPerMillion = outputPerMillion
        self.gpuHour = gpuHour
        self.servesEmbeddings = servesEmbeddings
    }

    /// The endpoints of `configuration`, with metrics at `metricsURL(name)`; an endpoint serves
    /// embeddings when one of its models is a logical model of kind `embeddings`.
    public static func all(in configuration: ProximaConfiguration, metricsURL: (String) -> String?) -> [MeteredEndpoint] {
        let embeddings = Set(configuration.models.filter { $0.kind == .embeddings }.map(\.name))
        return configuration.endpoints.compactMap { endpoint in
            guard let url = metricsURL(endpoint.name) else { return nil }
            return MeteredEndpoint(
                name: endpoint.name, metricsURL: url, gpuCount: endpoint.gpu?.count ?? 1, inputPerMillion: endpoint.pricing?.inputPerMillion ?? 0,
                outputPerMillion: endpoint.pricing?.outputPerMillion ?? 0, gpuHour: endpoint.pricing?.gpuHour ?? 0,
                servesEmbeddings: endpoint.models.contains { embeddings.contains($0.name) })
        }
    }
}

/// What one endpoint's counters say: prompt and generated tokens, engine busy seconds.
public struct EndpointCounters: Codable, Sendable, Equatable {
    public var promptTokens: Double
    public var generatedTokens: Double
    public var busySeconds: Double

    public init(promptTokens: Double = 0, generatedTokens: Double = 0, busySeconds: Double = 0) {
        self.promptTokens = promptTokens
        self.generatedTokens = generatedTokens
        self.busySeconds = busySeconds
    }

    /// Counters from a Prometheus page (summed over label sets): `vllm:prompt_tokens_total`,
    /// `vllm:generation_tokens_total`, `proxima_emulator_busy_seconds_total`.
    public init(prometheus text: String) {
        self.init()
        for sample in PrometheusText.parse(text) {
            switch sample.name {
            case "vllm:prompt_tokens_total": promptTokens += sample.value
            case "vllm:generation_tokens_total": generatedTokens += sample.value
            case "proxima_emulator_busy_seconds_total": busySeconds += sample.value
            default: break
            }
        }
    }

    /// Reads every endpoint's counters (zero for one that does not answer).
    public static func read(_ endpoints: [MeteredEndpoint]) async -> [String: EndpointCounters] {
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: .init(timeout: .init(connect: .seconds(2), read: .seconds(5))))
        var counters: [String: EndpointCounters] = [:]
        for endpoint in endpoints {
            var text = ""
            if let response = try? await client.execute(HTTPClientRequest(url: endpoint.metricsURL), timeout: .seconds(5)),
                let body = try? await response.body.collect(upTo: 8 << 20)
            {
                text = String(buffer: body)
            }
            counters[endpoint.name] = EndpointCounters(prometheus: text)
        }
        try? await client.shutdown()
        return counters
    }
}

/// The figures of one pass of a cache workload through the gateway.
public struct CacheRunSummary: Codable, Sendable {
    public var label: String
    public var requests: Int
    public var succeeded: Int
    public var errors: [String: Int]
    /// Requests by the `x-proxima-cache` header; `absent` when the gateway sent none.
    public var byCacheHeader: [String: Int]
    /// Requests by workload kind, and hits (either tier) by kind.
    public var byKind: [String: Int]
    public var hitsByKind: [String: Int]
    /// Hits on a different-answer variant, and on a fresh question: both wrong.
    public var wrongHitsOnVariants: Int
    public var wrongHitsOnFresh: Int
    public var timeToFirstToken: LatencySummary
    public var endToEnd: LatencySummary
    /// Tokens the callers were billed, from the usage chunks.
    public var billedPromptTokens: Int
    public var billedCompletionTokens: Int
    /// Work the fleet did (counter differences over the run): chat endpoints and the embeddings model.
    public var chatPromptTokens: Double
    public var chatGeneratedTokens: Double
    public var chatGPUSeconds: Double
    public var embeddingTokens: Double
    public var embeddingGPUSeconds: Double
    /// Money at the endpoints' prices: tokens x per-token prices plus busy GPU time x GPU-hour prices.
    public var chatCost: Double
    public var embeddingCost: Double
    public var wallSeconds: Double

    public var hits: Int { (byCacheHeader["hit-exact"] ?? 0) + (byCacheHeader["hit-semantic"] ?? 0) }
    public var wrongHits: Int { wrongHitsOnVariants + wrongHitsOnFresh }
    public var gpuSeconds: Double { chatGPUSeconds + embeddingGPUSeconds }
    public var cost: Double { chatCost + embeddingCost }

    public init(
        label: String, outcomes: [CacheRequestOutcome], endpoints: [MeteredEndpoint], before: [String: EndpointCounters],
        after: [String: EndpointCounters], wallSeconds: Double
    ) {
        self.label = label
        self.requests = outcomes.count
        let succeeded = outcomes.filter { $0.error == nil }
        self.succeeded = succeeded.count
        var errors: [String: Int] = [:]
        var byCacheHeader: [String: Int] = [:]
        var byKind: [String: Int] = [:]
        var hitsByKind: [String: Int] = [:]
        for outcome in outcomes {
            if let error = outcome.error { errors[error, default: 0] += 1 }
            byCacheHeader[outcome.cache ?? "absent", default: 0] += 1
            byKind[outcome.kind.rawValue, default: 0] += 1
            if outcome.isHit { hitsByKind[outcome.kind.rawValue, default: 0] += 1 }
        }
        self.errors = errors
        self.byCacheHeader = byCacheHeader
        self.byKind = byKind
        self.hitsByKind = hitsByKind
        self.wrongHitsOnVariants = outcomes.filter { $0.isHit && $0.kind == .variant }.count
        self.wrongHitsOnFresh = outcomes.filter { $0.isHit && $0.kind == .fresh }.count
        self.timeToFirstToken = LoadReport.summary(succeeded.compactMap(\.timeToFirstToken))
        self.endToEnd = LoadReport.summary(succeeded.map(\.endToEnd))
        self.billedPromptTokens = succeeded.compactMap(\.promptTokens).reduce(0, +)
        self.billedCompletionTokens = succeeded.compactMap(\.completionTokens).reduce(0, +)
        var chat = (prompt: 0.0, generated: 0.0, gpu: 0.0, cost: 0.0)
        var embedding = (tokens: 0.0, gpu: 0.0, cost: 0.0)
        for endpoint in endpoints {
            let start = before[endpoint.name] ?? .init()
            let end = after[endpoint.name] ?? .init()
            let prompt = max(0, end.promptTokens - start.promptTokens)
            let generated = max(0, end.generatedTokens - start.generatedTokens)
            let gpuSeconds = max(0, end.busySeconds - start.busySeconds) * Double(max(1, endpoint.gpuCount))
            let cost = prompt * endpoint.inputPerMillion / 1e6 + generated * endpoint.outputPerMillion / 1e6 + gpuSeconds / 3_600 * endpoint.gpuHour
            if endpoint.servesEmbeddings {
                embedding.tokens += prompt
                embedding.gpu += gpuSeconds
                embedding.cost += cost
            } else {
                chat.prompt += prompt
                chat.generated += generated
                chat.gpu += gpuSeconds
                chat.cost += cost
            }
        }
        self.chatPromptTokens = chat.prompt
        self.chatGeneratedTokens = chat.generated
        self.chatGPUSeconds = chat.gpu
        self.chatCost = chat.cost
        self.embeddingTokens = embedding.tokens
        self.embeddingGPUSeconds = embedding.gpu
        self.embeddingCost = embedding.cost
        self.wallSeconds = wallSeconds
    }
}

/// The cache-off and cache-on passes of one workload side by side.
public struct CacheBenchReport: Codable, Sendable {
    public var workload: String
    public var runs: [CacheRunSummary]

    public init(workload: String, runs: [CacheRunSummary]) {
        self.workload = workload
        self.runs = runs
    }

    /// A markdown table: one column per run, and the change of the last against the first.
    public func markdown() -> String {
        func ms(_ value: Double) -> String { String(format: "%.0f ms", value) }
        func share(_ count: Int, of total: Int) -> String { total > 0 ? String(format: "%d (%.1f%%)", count, Double(count) / Double(total) * 100) : "0" }
        func change(_ off: Double, _ on: Double) -> String { off > 0 ? String(format: "%+.0f%%", (on - off) / off * 100) : "" }
        let compare = runs.count > 1
        var lines = [workload, ""]
        lines.append("| | " + runs.map(\.label).joined(separator: " | ") + (compare ? " | change |" : " |"))
        lines.append("|---|" + runs.map { _ in "---|" }.joined() + (compare ? "---|" : ""))
        func row(_ name: String, _ values: [String], _ delta: String = "") {
            lines.append("| \(name) | " + values.joined(separator: " | ") + (compare ? " | \(delta) |" : " |"))
        }
        func numeric(_ name: String, _ value: (CacheRunSummary) -> Double, _ format: (Double) -> String) {
            row(name, runs.map { format(value($0)) }, compare ? change(value(runs[0]), value(runs[runs.count - 1])) : "")
        }
        row("requests (succeeded)", runs.map { "\($0.requests) (\($0.succeeded))" })
        row("errors", runs.map { $0.errors.isEmpty ? "0" : $0.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") })
        numeric("TTFT mean", { $0.timeToFirstToken.mean }, ms)
        numeric("TTFT p50", { $0.timeToFirstToken.p50 }, ms)
        numeric("TTFT p99", { $0.timeToFirstToken.p99 }, ms)
        numeric("end to end mean", { $0.endToEnd.mean }, ms)
        numeric("end to end p50", { $0.endToEnd.p50 }, ms)
        numeric("end to end p99", { $0.endToEnd.p99 }, ms)
        for tier in ["hit-exact", "hit-semantic", "miss", "bypass", "absent"] {
            row("cache: \(tier)", runs.map { share($0.byCacheHeader[tier] ?? 0, of: $0.requests) })
        }
        row("served from cache", runs.map { share($0.hits, of: $0.requests) })
        row("wrong hits (variants)", runs.map { "\($0.wrongHitsOnVariants) of \($0.byKind[CacheWorkload.Kind.variant.rawValue] ?? 0)" })
        row("wrong hits (fresh)", runs.map { "\($0.wrongHitsOnFresh) of \($0.byKind[CacheWorkload.Kind.fresh.rawValue] ?? 0)" })
        for kind in CacheWorkload.Kind.allCases where kind == .exactRepeat || kind == .paraphrase {
            row("hits on \(kind.rawValue.replacingOccurrences(of: "_", with: " "))s", runs.map { "\($0.hitsByKind[kind.rawValue] ?? 0) of \($0.byKind[kind.rawValue] ?? 0)" })
        }
        numeric("chat GPU time", { $0.chatGPUSeconds }, { String(format: "%.1f GPU-s", $0) })
        numeric("embedding GPU time", { $0.embeddingGPUSeconds }, { String(format: "%.2f GPU-s", $0) })
        numeric("chat tokens generated", { $0.chatGeneratedTokens }, { String(format: "%.0f", $0) })
        numeric("chat prompt tokens", { $0.chatPromptTokens }, { String(format: "%.0f", $0) })
        numeric("embedding tokens", { $0.embeddingTokens }, { String(format: "%.0f", $0) })
        numeric("money (chat + embeddings)", { $0.cost }, { String(format: "$%.4f", $0) })
        numeric("tokens billed to callers", { Double($0.billedPromptTokens + $0.billedCompletionTokens) }, { String(format: "%.0f", $0) })
        return lines.joined(separator: "\n") + "\n"
    }
}

extension CacheRunSummary {
    /// One pass: reads the endpoints' counters, sends the workload to `baseURL` (the gateway's
    /// `/v1`), reads the counters again and sums up.
    public static func measure(
        label: String, workload: CacheWorkload, baseURL: String, model: String, endpoints: [MeteredEndpoint],
        progress: (@Sendable (Int) -> Void)? = nil
    ) async -> CacheRunSummary {
        let before = await EndpointCounters.read(endpoints)
        let client = CacheBenchClient(baseURL: baseURL, model: model)
        let started = ContinuousClock.now
        let ticker = Task {
            guard let progress else { return }
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                progress(client.completedCount)
            }
        }
        let outcomes = await client.run(workload)
        ticker.cancel()
        let wall = (ContinuousClock.now - started).seconds
        let after = await EndpointCounters.read(endpoints)
        return CacheRunSummary(label: label, outcomes: outcomes, endpoints: endpoints, before: before, after: after, wallSeconds: wall)
    }
}
