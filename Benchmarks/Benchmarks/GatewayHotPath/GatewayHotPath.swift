import Benchmark
import NIOCore
import ProximaBench
import ProximaCore
@_spi(Benchmarks) import ProximaGateway

// Microbenchmarks of the functions the gateway runs on every request: reading the request body,
// rewriting it for the upstream, relaying the upstream's server-sent events, choosing an endpoint,
// recording metrics, admission (AdmissionBenchmarks.swift) and the identify and admit stages
// (IdentifyAdmitBenchmarks.swift). Inputs are built once, before any measurement; only the named calls run in
// the measured region.
//
// Metrics: wall time and malloc calls. `.instructions` is left out: on Linux it is read from the
// hardware performance counters (perf_events), which the 2-core VM these figures were taken on does
// not expose (`perf stat -e instructions true` answers "not supported"); with it enabled, every
// sample was zero and the harness printed no instructions row at all.
//
// Fast calls run 1,000 times per measured iteration (`scalingFactor: .kilo`); the harness reports
// figures per call.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        warmupIterations: 5,
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        maxIterations: 1_000
    )

    requestBenchmarks()
    serverSentEventBenchmarks()
    routingBenchmarks()
    metricsBenchmarks()
    admissionBenchmarks()
    identifyAdmitBenchmarks()
}

// MARK: - 1. Request parsing and the model rewrite

func requestBenchmarks() {
    let allocator = ByteBufferAllocator()
    for (label, size) in [("1 KB", 1_024), ("16 KB", 16 * 1_024)] {
        let body = ByteBuffer(string: ChatBody.make(approximateBytes: size))
        // Check the input once: a parse error here would make the benchmark measure the error path.
        let parsed: InferenceRequest
        do {
            parsed = try InferenceRequest(operation: .chatCompletions, body: body)
        } catch {
            fatalError("the \(label) benchmark body does not parse: \(error)")
        }
        let rewritten = parsed.upstreamBody(upstreamModel: ChatBody.upstreamModel, allocator: allocator)
        precondition(rewritten.readableBytes > body.readableBytes, "upstreamBody made no edit")

        Benchmark("InferenceRequest.init chat \(label)") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try InferenceRequest(operation: .chatCompletions, body: body))
            }
        }

        // The usual streaming case: the model is renamed and `stream_options.include_usage` added.
        Benchmark("InferenceRequest.upstreamBody chat \(label)") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(parsed.upstreamBody(upstreamModel: ChatBody.upstreamModel, allocator: allocator))
            }
        }
    }
}

/// A streaming chat completion request as an OpenAI client sends it: a system prompt, a short
/// exchange, and a last user message holding pasted text that sets the body's size.
enum ChatBody {
    static let callerModel = "llama-3.1-8b"
    static let upstreamModel = "meta-llama/Llama-3.1-8B-Instruct"

    static func make(approximateBytes: Int) -> String {
        let head = """
            {"model":"\(callerModel)","messages":[\
            {"role":"system","content":"You are a concise assistant for an operations team. Answer in plain \
            English, cite the log lines you rely on, and say \\"unknown\\" when the logs do not tell."},\
            {"role":"user","content":"Why did the nightly export job fail?"},\
            {"role":"assistant","content":"The export job stopped at 02:14 UTC with exit code 137, which \
            usually means the process was killed for using too much memory. Can you paste the job's log?"},\
            {"role":"user","content":"Here is the log:\\n
            """
        let tail = """
            "}],"stream":true,"temperature":0.2,"top_p":0.95,"max_tokens":512,"user":"ops-dashboard"}
            """
        var log = ""
        var line = 0
        while head.utf8.count + log.utf8.count + tail.utf8.count < approximateBytes - 60 {
            log += "2026-11-23T02:\(10 + line % 5):\(10 + line % 50)Z worker-\(line % 7) "
            log += line % 3 == 0 ? "batch \(line) wrote 4096 rows to \\\"exports/part-\(line).csv\\\"\\n" : "heap at \(60 + line % 40)% of limit\\n"
            line += 1
        }
        return head + log + tail
    }
}

// MARK: - 2. Server-sent event relay

func serverSentEventBenchmarks() {
    let streamBytes = Array(ChatStream.events.joined().utf8)
    let pieceSizes = ChatStream.pieceSizes(total: streamBytes.count)
    let eventBuffers = ChatStream.events.map { ByteBuffer(string: $0) }
    let allocator = ByteBufferAllocator()

    // Check the input once: the splitter must give back every event, byte for byte.
    var check = ServerSentEventSplitter()
    var split: [ByteBuffer] = []
    var offset = 0
    for size in pieceSizes {
        try! check.append(allocator.buffer(bytes: streamBytes[offset..<(offset + size)]))
        offset += size
        while let event = check.nextEvent() { split.append(event) }
    }
    precondition(split == eventBuffers, "the splitter did not return the stream's \(eventBuffers.count) events")

    // One iteration relays one whole stream: 20 content chunks, the usage chunk and [DONE], arriving
    // in pieces of 16-400 bytes that split events anywhere. Each piece is a fresh buffer, owned only
    // by the splitter once appended, as when it comes from the HTTP client; making them is not timed.
    Benchmark(
        "ServerSentEventSplitter stream of \(eventBuffers.count) events",
        configuration: .init(scalingFactor: .one, maxIterations: 10_000)
    ) { benchmark in
        var pieces: [ByteBuffer] = []
        pieces.reserveCapacity(pieceSizes.count)
        var start = 0
        for size in pieceSizes {
            pieces.append(allocator.buffer(bytes: streamBytes[start..<(start + size)]))
            start += size
        }
        pieces.reverse()
        benchmark.startMeasurement()
        var splitter = ServerSentEventSplitter(allocator: allocator)
        var events = 0
        while let piece = pieces.popLast() {
            try splitter.append(piece)
            while let event = splitter.nextEvent() {
                blackHole(event)
                events += 1
            }
        }
        benchmark.stopMeasurement()
        precondition(events == eventBuffers.count)
    }

    // Per event, over the stream's events in order (content chunks, the usage chunk, [DONE]).
    Benchmark("ServerSentEventSummary.init per event") { benchmark in
        var index = 0
        for _ in benchmark.scaledIterations {
            blackHole(ServerSentEventSummary(event: eventBuffers[index]))
            index += 1
            if index == eventBuffers.count { index = 0 }
        }
    }

    // A content chunk that also carries usage (engines that report usage on every chunk), for a
    // caller that did not ask for usage: the summary is read once, the member cut out per call.
    let usageChunk = ByteBuffer(string: ChatStream.contentChunkWithUsage)
    let usageSummary = ServerSentEventSummary(event: usageChunk)
    precondition(usageSummary.removingUsage(from: usageChunk).readableBytes < usageChunk.readableBytes, "no usage member found")
    Benchmark("ServerSentEventSummary.removingUsage content chunk") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(usageSummary.removingUsage(from: usageChunk))
        }
    }
}

/// A streamed chat completion as vLLM sends it with `stream_options.include_usage`.
enum ChatStream {
    static let prefix = #"data: {"id":"chatcmpl-5c1f0e9a2b7d4c3e8f6a1b2c3d4e5f60","object":"chat.completion.chunk","created":1795485600,"model":"meta-llama/Llama-3.1-8B-Instruct","#
    static let words = [
        "The", " export", " job", " was", " killed", " by", " the", " kernel", "'s", " out", "-of", "-memory", " killer",
        " at", " 02", ":14", " UTC", ";", " raise", " its",
    ]

    static var events: [String] {
        var events: [String] = []
        for (index, word) in words.enumerated() {
            let delta = index == 0 ? #"{"role":"assistant","content":"\#(word)"}"# : #"{"content":"\#(word)"}"#
            let finish = index == words.count - 1 ? #""length""# : "null"
            events.append(
                prefix + #""choices":[{"index":0,"delta":\#(delta),"logprobs":null,"finish_reason":\#(finish)}]}"# + "\n\n")
        }
        events.append(
            prefix + #""choices":[],"usage":{"prompt_tokens":1843,"total_tokens":1863,"completion_tokens":20}}"# + "\n\n")
        events.append("data: [DONE]\n\n")
        return events
    }

    static let contentChunkWithUsage =
        prefix
        + #""choices":[{"index":0,"delta":{"content":" limit"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":1843,"total_tokens":1864,"completion_tokens":21}}"#
        + "\n\n"

    /// Piece sizes of 16 to 400 bytes, a fixed pseudo-random sequence, adding up to `total`.
    static func pieceSizes(total: Int) -> [Int] {
        var random = SplitMix64(seed: 0x55E)
        var sizes: [Int] = []
        var remaining = total
        while remaining > 0 {
            let size = min(remaining, 16 + Int(random.next() % 385))
            sizes.append(size)
            remaining -= size
        }
        return sizes
    }
}

// MARK: - 3. Routing decision

func routingBenchmarks() {
    let router = FleetRouter()
    let policy = RoutingPolicy(name: "balanced", kind: .balanced)
    for size in [12, 100] {
        // The synthetic fleets, load and requests of `proxima bench router`: every endpoint serves
        // the model, so every one is filtered, rated and scored.
        let fleet: Fleet
        do {
            fleet = try RouterBenchmark.makeFleet(endpoints: size)
        } catch {
            fatalError("synthetic fleet of \(size) endpoints: \(error)")
        }
        let telemetry = RouterBenchmark.makeTelemetry(fleet: fleet)
        let requests = RouterBenchmark.makeRequests(fleet: fleet, count: 64)
        precondition(requests.count == 64)
        let first = router.decide(requests[0], policy: policy, fleet: fleet, telemetry: telemetry, now: 1, entropy: 1, limit: 4)
        precondition(first.candidates.count == 4 && first.evaluatedCount == size, "the decision did not rate every endpoint")

        Benchmark("FleetRouter.decide balanced \(size) endpoints") { benchmark in
            var random = SplitMix64(seed: UInt64(size))
            var index = 0
            for _ in benchmark.scaledIterations {
                blackHole(
                    router.decide(
                        requests[index], policy: policy, fleet: fleet, telemetry: telemetry, now: 1, entropy: random.next(),
                        limit: 4))
                index = (index + 1) & 63
            }
        }
    }
}

// MARK: - 4. Metrics recording

func metricsBenchmarks() {
    let metrics = GatewayMetrics()
    let usage = TokenUsage(promptTokens: 1_843, completionTokens: 20)

    // What the gateway records for one answered streaming request. The labelled handles are made on
    // the first call (during warm-up); later calls find them in the cache.
    Benchmark("GatewayMetrics one request") { benchmark in
        for _ in benchmark.scaledIterations {
            metrics.recordTimeToFirstToken(model: "llama-3.1-8b", endpoint: "endpoint-3", .milliseconds(182))
            metrics.recordTokens(model: "llama-3.1-8b", usage: usage, estimated: false)
            metrics.recordOverhead(.microseconds(95))
            metrics.recordRequest(
                operation: .chatCompletions, model: "llama-3.1-8b", endpoint: "endpoint-3", status: 200, duration: .milliseconds(1_240))
        }
    }
}
