import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import ProximaCore
import Synchronization

/// What happened to one request of a cache workload.
public struct CacheRequestOutcome: Codable, Sendable, Equatable {
    /// Index of the arrival in the workload.
    public var arrival: Int
    public var kind: CacheWorkload.Kind
    public var isConversation: Bool
    /// HTTP status of the answer, nil when none arrived.
    public var status: Int?
    /// Why it failed, nil on success: `http_NNN`, `transport`, `stream_error`, `truncated`.
    public var error: String?
    /// The `x-proxima-cache` header: `hit-exact`, `hit-semantic`, `miss`, `bypass`; nil when absent
    /// (the cache is off).
    public var cache: String?
    /// Seconds from sending to the first content event.
    public var timeToFirstToken: Double?
    /// Seconds from sending to the end of the stream.
    public var endToEnd: Double
    /// Usage as the stream's usage chunk reported it (what the caller is billed).
    public var promptTokens: Int?
    public var completionTokens: Int?
    /// Content events received.
    public var contentEvents: Int
    /// Seconds the request was sent after its planned time (the generator's own lag).
    public var lateStart: Double

    /// Served from the cache, by either tier.
    public var isHit: Bool { cache == "hit-exact" || cache == "hit-semantic" }
    /// A hit that cannot be right: no question with this answer was ever sent before.
    public var isWrongHit: Bool { isHit && (kind == .variant || kind == .fresh) }
}

/// Sends a cache workload open-loop to an OpenAI-compatible base URL (the gateway) as streamed chat
/// completions and records each request's outcome.
public final class CacheBenchClient: Sendable {
    public let baseURL: String
    public let model: String
    private let client: HTTPClient
    private let outcomes = Mutex<[CacheRequestOutcome]>([])
    private let completed = Atomic<Int>(0)

    public init(baseURL: String, model: String, maxConnections: Int = 2_048) {
        self.baseURL = baseURL
        self.model = model
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(16, maxConnections))
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool.retryConnectionEstablishment = false
        self.client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    /// Requests finished so far, for a progress display.
    public var completedCount: Int { completed.load(ordering: .relaxed) }

    /// Sends every arrival at its planned time and returns the outcomes in arrival order; shuts the
    /// client down at the end.
    public func run(_ workload: CacheWorkload) async -> [CacheRequestOutcome] {
        let start = ContinuousClock.now
        await withDiscardingTaskGroup { group in
            for (index, arrival) in workload.arrivals.enumerated() {
                let due = start + .seconds(clampedSeconds: arrival.sendAt)
                if due > ContinuousClock.now { try? await Task.sleep(until: due, clock: .continuous) }
                let lateStart = (ContinuousClock.now - due).seconds
                let body = Self.body(model: model, messages: workload.messages(of: arrival), maxTokens: arrival.maxTokens)
                let isConversation = workload.questions[arrival.question].isConversation
                group.addTask {
                    var outcome = await self.send(body)
                    outcome.arrival = index
                    outcome.kind = arrival.kind
                    outcome.isConversation = isConversation
                    outcome.lateStart = lateStart
                    self.outcomes.withLock { $0.append(outcome) }
                    self.completed.add(1, ordering: .relaxed)
                }
            }
        }
        try? await client.shutdown()
        return outcomes.withLock { $0 }.sorted { $0.arrival < $1.arrival }
    }

    /// The JSON body of one streamed chat completion.
    static func body(model: String, messages: [CacheWorkload.Message], maxTokens: Int) -> String {
        let list = messages.map { "{\"role\":\(LoadGenerator.quoted($0.role)),\"content\":\(LoadGenerator.quoted($0.content))}" }
        return "{\"model\":\(LoadGenerator.quoted(model)),\"messages\":[\(list.joined(separator: ","))],\"max_tokens\":\(max(1, maxTokens)),"
            + "\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
    }

    func send(_ body: String) async -> CacheRequestOutcome {
        var request = HTTPClientRequest(url: baseURL + "/chat/completions")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let start = ContinuousClock.now
        var outcome = CacheRequestOutcome(arrival: 0, kind: .fresh, isConversation: false, endToEnd: 0, contentEvents: 0, lateStart: 0)
        do {
            let response = try await client.execute(request, timeout: .seconds(300))
            outcome.status = Int(response.status.code)
            outcome.cache = response.headers.first(name: "x-proxima-cache")
            guard response.status == .ok else {
                _ = try? await response.body.collect(upTo: 1 << 20)
                outcome.error = "http_\(response.status.code)"
                outcome.endToEnd = (ContinuousClock.now - start).seconds
                return outcome
            }
            var scanner = StreamScanner()
            for try await chunk in response.body {
                scanner.scan(chunk)
                if outcome.timeToFirstToken == nil, scanner.contentEvents > 0 { outcome.timeToFirstToken = (ContinuousClock.now - start).seconds }
            }
            outcome.endToEnd = (ContinuousClock.now - start).seconds
            outcome.contentEvents = scanner.contentEvents
            outcome.completionTokens = scanner.reportedCompletionTokens
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
}
