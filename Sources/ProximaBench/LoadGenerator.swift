import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import ProximaCore
import Synchronization

/// What happened to one request of a run.
public struct RequestOutcome: Sendable, Equatable {
    public var metro: Int
    /// Seconds from sending to the first token, nil when none arrived.
    public var timeToFirstToken: Double?
    /// Seconds from sending to the end of the answer.
    public var endToEnd: Double
    public var outputTokens: Int
    public var lateStart: Double
    /// Why it failed, nil on success: `http_503`, `transport`, `stream_error`, `truncated`, `client_limit`.
    public var error: String?
    /// The endpoint that answered, from the gateway's `x-proxima-endpoint` header.
    public var endpoint: String?
    /// Prompt tokens as the usage chunk reported them.
    public var promptTokens: Int?

    public init(
        metro: Int, timeToFirstToken: Double? = nil, endToEnd: Double, outputTokens: Int, lateStart: Double,
        error: String? = nil, endpoint: String? = nil, promptTokens: Int? = nil
    ) {
        self.metro = metro
        self.timeToFirstToken = timeToFirstToken
        self.endToEnd = endToEnd
        self.outputTokens = outputTokens
        self.lateStart = lateStart
        self.error = error
        self.endpoint = endpoint
        self.promptTokens = promptTokens
    }
}

/// Sends a plan's requests open-loop (each at its planned time, whatever the answers do) to an
/// OpenAI-compatible endpoint, streaming, and records each outcome.
public final class LoadGenerator: Sendable {
    public struct Settings: Sendable {
        public var baseURL: String
        public var model: String
        /// Requests allowed in flight at once; a request planned beyond it is recorded as `client_limit`.
        public var maxInFlight: Int
        public var requestTimeout: Duration
        public var apiKey: String?
        /// Sent as `x-proxima-policy` when set.
        public var policy: String?

        public init(
            baseURL: String, model: String, maxInFlight: Int = 10_000, requestTimeout: Duration = .seconds(300), apiKey: String? = nil,
            policy: String? = nil
        ) {
            self.policy = policy
            self.baseURL = baseURL
            self.model = model
            self.maxInFlight = maxInFlight
            self.requestTimeout = requestTimeout
            self.apiKey = apiKey
        }
    }

    /// Live counters for a progress display.
    public struct Progress: Sendable {
        public var sent: Int
        public var completed: Int
        public var failed: Int
        public var inFlight: Int
    }

    public let settings: Settings
    private let client: HTTPClient
    private let sent = Atomic<Int>(0)
    private let completed = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)
    private let inFlight = Atomic<Int>(0)
    private let outcomes = Mutex<[RequestOutcome]>([])

    public init(settings: Settings) {
        self.settings = settings
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(16, settings.maxInFlight))
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        // A refused connection is an error to count, not something to retry until the timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        self.client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    public var progress: Progress {
        Progress(
            sent: sent.load(ordering: .relaxed), completed: completed.load(ordering: .relaxed),
            failed: failed.load(ordering: .relaxed), inFlight: inFlight.load(ordering: .relaxed))
    }

    /// Runs the plan to the end and returns every outcome (in completion order).
    public func run(_ plan: LoadPlan) async -> [RequestOutcome] {
        let synthesizer = PromptSynthesizer(blockTokens: plan.blockTokens)
        let start = ContinuousClock.now
        await withDiscardingTaskGroup { group in
            for (index, planned) in plan.requests.enumerated() {
                let due = start + .seconds(clampedSeconds: planned.sendAt)
                if due > ContinuousClock.now { try? await Task.sleep(until: due, clock: .continuous) }
                sent.add(1, ordering: .relaxed)
                guard inFlight.load(ordering: .relaxed) < settings.maxInFlight else {
                    record(RequestOutcome(metro: planned.metro, endToEnd: 0, outputTokens: 0, lateStart: 0, error: "client_limit"))
                    continue
                }
                inFlight.add(1, ordering: .relaxed)
                let metro = plan.metros[planned.metro]
                let lateStart = (ContinuousClock.now - due).seconds
                group.addTask {
                    let prompt = synthesizer.prompt(tokens: planned.inputTokens, prefixBlockIDs: planned.prefixBlockIDs, uniqueID: index)
                    var outcome = await self.send(prompt: prompt, outputTokens: planned.outputTokens, metro: metro)
                    outcome.metro = planned.metro
                    outcome.lateStart = lateStart
                    self.inFlight.subtract(1, ordering: .relaxed)
                    self.record(outcome)
                }
            }
        }
        try? await client.shutdown()
        return outcomes.withLock { $0 }
    }

    private func record(_ outcome: RequestOutcome) {
        if outcome.error == nil { completed.add(1, ordering: .relaxed) } else { failed.add(1, ordering: .relaxed) }
        outcomes.withLock { $0.append(outcome) }
    }

    /// Sends one streamed chat completion and measures it.
    func send(prompt: String, outputTokens: Int, metro: Metro) async -> RequestOutcome {
        var request = HTTPClientRequest(url: settings.baseURL + "/chat/completions")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "x-proxima-client-location", value: "\(metro.location.latitude),\(metro.location.longitude)")
        request.headers.add(name: "x-proxima-client-region", value: metro.name)
        if let apiKey = settings.apiKey { request.headers.add(name: "authorization", value: "Bearer \(apiKey)") }
        if let policy = settings.policy { request.headers.add(name: "x-proxima-policy", value: policy) }
        let body =
            "{\"model\":\(Self.quoted(settings.model)),\"messages\":[{\"role\":\"user\",\"content\":\(Self.quoted(prompt))}],"
            + "\"max_tokens\":\(max(1, outputTokens)),\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
        request.body = .bytes(ByteBuffer(string: body))
        let start = ContinuousClock.now
        var outcome = RequestOutcome(metro: 0, endToEnd: 0, outputTokens: 0, lateStart: 0)
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(settings.requestTimeout.nanoseconds))
            outcome.endpoint = response.headers.first(name: "x-proxima-endpoint")
            guard response.status == .ok else {
                _ = try? await response.body.collect(upTo: 1 << 20)
                outcome.error = "http_\(response.status.code)"
                outcome.endToEnd = (ContinuousClock.now - start).seconds
                return outcome
            }
            var scanner = StreamScanner()
            for try await chunk in response.body {
                scanner.scan(chunk)
                if outcome.timeToFirstToken == nil, scanner.contentEvents > 0 {
                    outcome.timeToFirstToken = (ContinuousClock.now - start).seconds
                }
            }
            outcome.endToEnd = (ContinuousClock.now - start).seconds
            outcome.outputTokens = scanner.reportedCompletionTokens ?? scanner.contentEvents
            outcome.promptTokens = scanner.reportedPromptTokens
            if scanner.sawError {
                outcome.error = "stream_error"
            } else if !scanner.sawDone {
                outcome.error = "truncated"
            }
        } catch {
            outcome.endToEnd = (ContinuousClock.now - start).seconds
            outcome.error = "transport"
        }
        return outcome
    }

    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case let s where s.value < 0x20: result += String(format: "\\u%04x", s.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}

/// Counts events of an OpenAI stream without decoding JSON: content events, the usage chunk's
/// completion tokens, errors and the end marker. Events may span chunk boundaries.
struct StreamScanner {
    private(set) var contentEvents = 0
    private(set) var reportedCompletionTokens: Int?
    private(set) var reportedPromptTokens: Int?
    private(set) var sawDone = false
    private(set) var sawError = false
    private var pending = ""

    mutating func scan(_ chunk: ByteBuffer) {
        pending += String(buffer: chunk)
        while let end = pending.range(of: "\n\n") {
            let event = pending[..<end.lowerBound]
            inspect(event)
            pending.removeSubrange(..<end.upperBound)
        }
    }

    private mutating func inspect(_ event: Substring) {
        guard event.hasPrefix("data:") else { return }
        if event.contains("[DONE]") {
            sawDone = true
        } else if event.contains("\"error\"") {
            sawError = true
        } else if let usage = event.range(of: "\"completion_tokens\":") {
            let digits = event[usage.upperBound...].drop { $0 == " " }.prefix { $0.isNumber }
            reportedCompletionTokens = Int(digits)
            if let prompt = event.range(of: "\"prompt_tokens\":") {
                reportedPromptTokens = Int(event[prompt.upperBound...].drop { $0 == " " }.prefix { $0.isNumber })
            }
        }
        if event.contains("\"content\":\"") || event.contains("\"text\":\"") {
            if !event.contains("\"content\":\"\"") && !event.contains("\"text\":\"\"") { contentEvents += 1 }
        }
    }
}

