import Logging
import ProximaCore
import Synchronization

/// The one place a request's outcome is written: its metrics (count, duration, tokens, the gateway's
/// overhead, the in-flight gauge) and its log line. Created when the request arrives (which counts it
/// in flight), finished exactly once, by whichever part of the request path learns the outcome; a
/// later `finish` is ignored. A record dropped without being finished (its response body was never
/// written because the caller left) finishes itself as 499, so the in-flight gauge cannot drift.
final class RequestRecord: Sendable {
    private struct Labels {
        var model = "unknown"
        var stream = false
    }

    let requestID: String
    let operation: InferenceOperation
    let arrival: ContinuousClock.Instant
    /// Whether the connection's timing handler measures the gateway's overhead (else the record does).
    let measuredByConnection: Bool
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let labels = Mutex(Labels())
    private let finished = Atomic<Bool>(false)

    init(
        requestID: String, operation: InferenceOperation, arrival: ContinuousClock.Instant, measuredByConnection: Bool,
        metrics: GatewayMetrics, logger: Logger
    ) {
        self.requestID = requestID
        self.operation = operation
        self.arrival = arrival
        self.measuredByConnection = measuredByConnection
        self.metrics = metrics
        self.logger = logger
        metrics.requestStarted()
    }

    /// Names the request's model (for labels) once the body has been read.
    func identify(model: String, stream: Bool) {
        labels.withLock {
            $0.model = model
            $0.stream = stream
        }
    }

    var model: String { labels.withLock { $0.model } }

    /// Writes the outcome; only the first call counts. `upstreamWait` is the time spent waiting on
    /// upstreams, the rest of the elapsed time being the gateway's own.
    func finish(endpoint: String, status: Int, usage: TokenUsage?, estimated: Bool = false, upstreamWait: Duration = .zero) {
        guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let labels = labels.withLock { $0 }
        let elapsed = ContinuousClock.now - arrival
        metrics.recordRequest(operation: operation, model: labels.model, endpoint: endpoint, status: status, duration: elapsed)
        if !measuredByConnection && endpoint != "none" { metrics.recordOverhead(max(.zero, elapsed - upstreamWait)) }
        if let usage { metrics.recordTokens(model: labels.model, usage: usage, estimated: estimated) }
        metrics.requestEnded()
        logger.info(
            "request",
            metadata: [
                "request_id": "\(requestID)", "operation": "\(operation.rawValue)", "model": "\(labels.model)",
                "endpoint": "\(endpoint)", "status": "\(status)", "stream": "\(labels.stream)",
                "duration_ms": "\(elapsed.nanoseconds / 1_000_000)", "prompt_tokens": "\(usage?.promptTokens ?? 0)",
                "completion_tokens": "\(usage?.completionTokens ?? 0)",
            ])
    }

    var isFinished: Bool { finished.load(ordering: .acquiring) }

    deinit {
        if !finished.load(ordering: .acquiring) { finish(endpoint: "none", status: 499, usage: nil) }
    }
}
