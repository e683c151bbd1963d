import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ProximaCore
import ServiceLifecycle
import Synchronization

/// One emulated inference endpoint: an OpenAI-compatible server whose answers come from an
/// `EngineModel` run in real time, delayed like a wide-area network between the caller and the site,
/// and bent by the faults set on it.
final class EmulatedEndpoint: Sendable {
    let name: String
    let models: [String]
    /// Served model names (as requests carry them) that are embeddings models: they answer
    /// `/v1/embeddings` and refuse chat and completions.
    let embeddingModels: Set<String>
    let site: Site
    let driver: EngineDriver
    let roundTrip: RoundTripModel
    private let faults = Mutex<(settings: FaultSettings, setAt: ContinuousClock.Instant)>((.none, .now))
    private let random = Mutex(SplitMix64(seed: 42))
    private let completionIDs = Atomic<Int>(0)
    /// Embedding requests served, their tokens, and the modelled compute time they took (nanoseconds).
    private let embeddingStats = Mutex<(requests: Int, tokens: Int, busyNanoseconds: Int64)>((0, 0, 0))

    init(
        name: String, models: [String], embeddingModels: Set<String> = [], site: Site, profile: GPUProfile, roundTrip: RoundTripModel = .init()
    ) {
        self.name = name
        self.models = models
        self.embeddingModels = embeddingModels
        self.site = site
        self.driver = EngineDriver(profile: profile)
        self.roundTrip = roundTrip
    }

    var currentFaults: FaultSettings { faults.withLock { $0.settings } }

    func setFaults(_ settings: FaultSettings) {
        faults.withLock { $0 = (settings, .now) }
        driver.setSlowdown(settings.slowdown)
    }

    /// The fault this request meets (the endpoint's fault settings and a random draw), and the
    /// one-way network delay to its caller.
    func drawFault(outputTokens: Int, headers: HTTPFields) -> (FaultSettings, FaultDecision, Duration) {
        let (settings, setAt) = faults.withLock { $0 }
        let draw = random.withLock { Double($0.next() >> 11) / Double(1 << 53) }
        let decision = FaultDecision.decide(
            settings, secondsSinceSet: (ContinuousClock.now - setAt).seconds, draw: draw, outputTokens: outputTokens)
        return (settings, decision, oneWayDelay(from: headers[HTTPField.Name("x-proxima-client-location")!]))
    }

    /// The answer of a failing engine, or nil when the request is served (or aborted mid-way).
    /// A partitioned or hung engine never answers: the caller's timeout ends the exchange.
    func failure(_ decision: FaultDecision, oneWay: Duration) async throws -> Response? {
        switch decision {
        case .refuse, .hang:
            try await Task.sleep(for: .seconds(3_600))
            throw CancellationError()
        case .fail(let status):
            try await Task.sleep(for: oneWay * 2)
            return Self.error("emulated engine failure", status: .init(code: status))
        case .serve, .abort:
            return nil
        }
    }

    /// One-way delay for a caller at `location`, or none when the caller did not say.
    func oneWayDelay(from header: String?) -> Duration {
        guard let location = Self.parseLocation(header) else { return .zero }
        return .seconds(clampedSeconds: roundTrip.roundTripSeconds(from: location, to: site.location) / 2)
    }

    static func parseLocation(_ header: String?) -> Coordinates? {
        guard let header else { return nil }
        let parts = header.split(separator: ",")
        guard parts.count == 2, let latitude = Double(parts[0].trimmingCharacters(in: .whitespaces)),
            let longitude = Double(parts[1].trimmingCharacters(in: .whitespaces)), (-90...90).contains(latitude),
            (-180...180).contains(longitude)
        else { return nil }
        return Coordinates(latitude: latitude, longitude: longitude)
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/v1/models") { _, _ in
            let data = self.models.map { "{\"id\":\"\($0)\",\"object\":\"model\",\"owned_by\":\"proxima-emulator\"}" }.joined(separator: ",")
            return Self.json("{\"object\":\"list\",\"data\":[\(data)]}")
        }
        router.get("/health") { _, _ in Self.json("{\"status\":\"ok\"}") }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: self.metricsText())))
        }
        router.post("/v1/chat/completions") { request, _ in try await self.complete(request, isChat: true) }
        router.post("/v1/completions") { request, _ in try await self.complete(request, isChat: false) }
        router.post("/v1/embeddings") { request, _ in try await self.embed(request) }
        return router
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func error(_ message: String, status: HTTPResponse.Status, param: String? = nil) -> Response {
        let escaped = message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let paramJSON = param.map { "\"\($0)\"" } ?? "null"
        return json(
            "{\"error\":{\"message\":\"\(escaped)\",\"type\":\"\(status.code >= 500 ? "server_error" : "invalid_request_error")\",\"param\":\(paramJSON),\"code\":null}}",
            status: status)
    }

    func complete(_ request: Request, isChat: Bool) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 64 << 20)
        let prompt: EmulatedPrompt
        do {
            prompt = try EmulatedPrompt(body: Data(body.readableBytesView), isChat: isChat, blockTokens: driver.profile.blockTokens)
        } catch {
            return Self.error(error.message, status: .badRequest, param: error.param)
        }
        guard models.contains(prompt.model) else {
            return Self.error("The model '\(prompt.model)' does not exist", status: .notFound, param: "model")
        }
        guard !embeddingModels.contains(prompt.model) else {
            return Self.error("The model '\(prompt.model)' is an embeddings model; use /v1/embeddings", status: .badRequest, param: "model")
        }
        let (_, decision, oneWay) = drawFault(outputTokens: prompt.outputTokens, headers: request.headers)
        if let failure = try await failure(decision, oneWay: oneWay) { return failure }
        // The request travels to the site before the engine sees it.
        if oneWay > .zero { try await Task.sleep(for: oneWay) }
        let (_, events) = driver.submit(promptTokens: prompt.promptTokens, outputTokens: prompt.outputTokens, prefixBlockIDs: prompt.prefixBlockIDs)
        let id = "emu-\(name)-\(completionIDs.wrappingAdd(1, ordering: .relaxed).oldValue)"
        let created = Int(Date().timeIntervalSince1970)
        let abortAfter: Int? = if case .abort(let after) = decision { after } else { nil }
        if prompt.stream {
            return streamResponse(prompt, events: events, oneWay: oneWay, id: id, created: created, abortAfter: abortAfter)
        }
        var finished: (prompt: Int, output: Int, cached: Int)?
        var lastEventTime = 0.0
        for await event in events {
            lastEventTime = event.time
            if case .finished(_, _, let promptTokens, let outputTokens, let cached) = event { finished = (promptTokens, outputTokens, cached) }
        }
        guard let finished else { throw CancellationError() }
        // The answer travels back.
        let answerAt = driver.wallTime(ofEngineTime: lastEventTime) + oneWay
        if answerAt > .now { try await Task.sleep(until: answerAt, clock: .continuous) }
        let text = (0..<finished.output).map(EmulatedPrompt.word).joined()
        let usage = Self.usageJSON(finished.prompt, finished.output, finished.cached)
        let choice =
            prompt.isChat
            ? "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"\(text)\"},\"finish_reason\":\"length\"}"
            : "{\"index\":0,\"text\":\"\(text)\",\"finish_reason\":\"length\"}"
        let object = prompt.isChat ? "chat.completion" : "text_completion"
        return Self.json(
            "{\"id\":\"\(id)\",\"object\":\"\(object)\",\"created\":\(created),\"model\":\"\(prompt.model)\",\"choices\":[\(choice)],\"usage\":\(usage)}")
    }

    /// Modelled compute time of an embedding request: a fixed cost per request plus a cost per token
    /// (a small encoder model), stretched by the slowdown fault.
    static let embeddingFixedSeconds = 0.004
    static let embeddingSecondsPerToken = 0.000_01

    /// `POST /v1/embeddings` for an embeddings model: vectors from `HashedTextEmbedding`, answered after
    /// the network delay both ways and the modelled compute time; faults apply as for completions.
    func embed(_ request: Request) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 64 << 20)
        let embedding: EmulatedEmbeddingRequest
        do {
            embedding = try EmulatedEmbeddingRequest(body: Data(body.readableBytesView))
        } catch {
            return Self.error(error.message, status: .badRequest, param: error.param)
        }
        guard models.contains(embedding.model) else {
            return Self.error("The model '\(embedding.model)' does not exist", status: .notFound, param: "model")
        }
        guard embeddingModels.contains(embedding.model) else {
            return Self.error("The model '\(embedding.model)' does not support embeddings", status: .badRequest, param: "model")
        }
        let (settings, decision, oneWay) = drawFault(outputTokens: 1, headers: request.headers)
        if let failure = try await failure(decision, oneWay: oneWay) { return failure }
        let compute = min(3_600, (Self.embeddingFixedSeconds + Self.embeddingSecondsPerToken * Double(embedding.tokens)) * max(1, settings.slowdown))
        let computeDuration = Duration.seconds(clampedSeconds: compute)
        embeddingStats.withLock { stats in
            stats.requests += 1
            stats.tokens += embedding.tokens
            stats.busyNanoseconds += Int64(compute * 1e9)
        }
        let answer = embedding.responseJSON()
        try await Task.sleep(for: oneWay * 2 + computeDuration)
        return Self.json(answer)
    }

    static func usageJSON(_ prompt: Int, _ output: Int, _ cached: Int) -> String {
        "{\"prompt_tokens\":\(prompt),\"completion_tokens\":\(output),\"total_tokens\":\(prompt + output),\"prompt_tokens_details\":{\"cached_tokens\":\(cached)}}"
    }

    private func streamResponse(
        _ prompt: EmulatedPrompt, events: AsyncStream<EngineEvent>, oneWay: Duration, id: String, created: Int, abortAfter: Int?
    ) -> Response {
        let driver = self.driver
        let object = prompt.isChat ? "chat.completion.chunk" : "text_completion"
        let prefix = "data: {\"id\":\"\(id)\",\"object\":\"\(object)\",\"created\":\(created),\"model\":\"\(prompt.model)\",\"choices\":[{\"index\":0,"
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                var index = 0
                for await event in events {
                    // Each event reaches the caller one network delay after the engine produced it.
                    let due = driver.wallTime(ofEngineTime: event.time) + oneWay
                    if due > .now { try await Task.sleep(until: due, clock: .continuous) }
                    switch event {
                    case .firstToken, .token:
                        if let abortAfter, index >= abortAfter { throw EmulatedAbort() }
                        let word = EmulatedPrompt.word(index)
                        let delta =
                            prompt.isChat
                            ? (index == 0 ? "\"delta\":{\"role\":\"assistant\",\"content\":\"\(word)\"}" : "\"delta\":{\"content\":\"\(word)\"}")
                            : "\"text\":\"\(word)\""
                        try await writer.write(ByteBuffer(string: prefix + delta + ",\"finish_reason\":null}]}\n\n"))
                        index += 1
                    case .finished(_, _, let promptTokens, let outputTokens, let cached):
                        var tail = prefix + (prompt.isChat ? "\"delta\":{}" : "\"text\":\"\"") + ",\"finish_reason\":\"length\"}]}\n\n"
                        if prompt.includeUsage {
                            tail += "data: {\"id\":\"\(id)\",\"object\":\"\(object)\",\"created\":\(created),\"model\":\"\(prompt.model)\",\"choices\":[],\"usage\":\(Self.usageJSON(promptTokens, outputTokens, cached))}\n\n"
                        }
                        tail += "data: [DONE]\n\n"
                        try await writer.write(ByteBuffer(string: tail))
                    }
                }
                try await writer.finish(nil)
            })
    }

    /// The engine's state in vLLM's metric names, plus a DCGM-style power gauge.
    func metricsText() -> String {
        let snapshot = driver.snapshot()
        let embedding = embeddingStats.withLock { $0 }
        let model = models.first ?? "model"
        let labels = "model_name=\"\(model)\""
        let busySeconds = snapshot.busySeconds + Double(embedding.busyNanoseconds) / 1e9
        var lines = [
            "# TYPE vllm:num_requests_running gauge", "vllm:num_requests_running{\(labels)} \(snapshot.running)",
            "# TYPE vllm:num_requests_waiting gauge", "vllm:num_requests_waiting{\(labels)} \(snapshot.waiting)",
            "# TYPE vllm:kv_cache_usage_perc gauge", "vllm:kv_cache_usage_perc{\(labels)} \(snapshot.kvUsage)",
            "# TYPE vllm:prefix_cache_queries_total counter", "vllm:prefix_cache_queries_total{\(labels)} \(snapshot.prefixCacheQueries)",
            "# TYPE vllm:prefix_cache_hits_total counter", "vllm:prefix_cache_hits_total{\(labels)} \(snapshot.prefixCacheHits)",
            "# TYPE vllm:prompt_tokens_total counter", "vllm:prompt_tokens_total{\(labels)} \(snapshot.promptTokens + embedding.tokens)",
            "# TYPE vllm:generation_tokens_total counter", "vllm:generation_tokens_total{\(labels)} \(snapshot.generatedTokens)",
            "# TYPE vllm:request_success_total counter",
            "vllm:request_success_total{\(labels)} \(snapshot.metrics.finishedRequests + embedding.requests)",
            "# HELP proxima_emulator_busy_seconds_total Seconds the emulated engine computed (steps of the engine model, modelled embedding time).",
            "# TYPE proxima_emulator_busy_seconds_total counter", "proxima_emulator_busy_seconds_total{\(labels)} \(busySeconds)",
            "# TYPE proxima_emulator_energy_joules_total counter", "proxima_emulator_energy_joules_total{\(labels)} \(snapshot.energyJoules)",
        ]
        for (name, histogram) in [
            ("vllm:time_to_first_token_seconds", snapshot.metrics.timeToFirstToken),
            ("vllm:inter_token_latency_seconds", snapshot.metrics.interTokenLatency),
        ] {
            lines.append("# TYPE \(name) histogram")
            for (bound, count) in zip(histogram.bounds, histogram.counts) { lines.append("\(name)_bucket{\(labels),le=\"\(bound)\"} \(count)") }
            lines.append("\(name)_bucket{\(labels),le=\"+Inf\"} \(histogram.count)")
            lines.append("\(name)_sum{\(labels)} \(histogram.sum)")
            lines.append("\(name)_count{\(labels)} \(histogram.count)")
        }
        lines.append("# TYPE DCGM_FI_DEV_POWER_USAGE gauge")
        lines.append("DCGM_FI_DEV_POWER_USAGE{gpu=\"all\",endpoint=\"\(name)\"} \(snapshot.powerWatts)")
        return lines.joined(separator: "\n") + "\n"
    }
}

struct EmulatedAbort: Error {}
