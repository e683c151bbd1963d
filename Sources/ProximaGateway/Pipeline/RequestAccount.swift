import Foundation
import Logging
import ProximaCore
import Synchronization

/// The account stage: the one place a request's outcome is booked. Created when the request arrives
/// (which counts it in flight), finished exactly once by whichever stage learns the outcome; a later
/// `finish` is ignored. Finishing ends the serving endpoint's claim with its verdict, writes the
/// request's metrics (count, duration, tokens, the gateway's overhead, the in-flight gauge) and its
/// log line, and settles its admission: the concurrency it held, its token estimate corrected by the
/// real usage (streams included), its cost (usage × the serving endpoint's price) on the budgets. An account dropped without being finished (its response body was never written because
/// the caller left) finishes itself as 499, so nothing it holds can leak.
final class RequestAccount: Sendable {
    private struct Labels {
        var model = "unknown"
        var stream = false
        var admission: (ledger: any AdmissionLedger, pass: AdmissionPass)?
        var caller: CallerClassification?
        var verdicts: [GuardVerdict] = []
    }

    let requestID: String
    let operation: InferenceOperation
    let arrival: ContinuousClock.Instant
    /// Whether the connection's timing handler measures the gateway's overhead (else the account does).
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
    func describe(model: String, stream: Bool) {
        labels.withLock {
            $0.model = model
            $0.stream = stream
        }
    }

    var model: String { labels.withLock { $0.model } }

    /// The caller's class, from the edge stage.
    func describe(caller: CallerClassification) {
        labels.withLock { $0.caller = caller }
    }

    /// A content guard's verdict on the request or its answer.
    func record(_ verdict: GuardVerdict) {
        labels.withLock { $0.verdicts.append(verdict) }
    }

    /// The request was admitted under `pass`: settled in `ledger` when the account is booked.
    func admitted(_ pass: AdmissionPass, ledger: any AdmissionLedger) {
        labels.withLock { $0.admission = (ledger, pass) }
    }

    /// How the endpoint that served the request did, for its claim.
    enum Verdict: Sendable, Equatable {
        /// It served the request; `timePerOutputToken` is a stream's measured pace.
        case succeeded(timePerOutputToken: Double?)
        /// It failed the request (counts against its breaker).
        case failed
        /// The request ended for a reason that says nothing about the endpoint.
        case abandoned
    }

    /// Books the outcome; only the first call counts. `endpoint` served the request (nil when none
    /// did; `servedFromCache` when the cache answered, at `price`, the original's) and `claim` is its
    /// claim, ended here with `verdict`. `upstreamWait` is the time spent
    /// waiting on upstreams, the rest of the elapsed time being the gateway's own.
    func finish(
        status: Int, endpoint: Endpoint? = nil, claim: EndpointClaim? = nil, verdict: Verdict = .abandoned, usage: TokenUsage? = nil,
        estimated: Bool = false, upstreamWait: Duration = .zero, price: TokenPrice? = nil, servedFromCache: Bool = false
    ) {
        guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if let claim {
            switch verdict {
            case .succeeded(let pace): claim.succeed(timePerOutputToken: pace)
            case .failed: claim.fail()
            case .abandoned: claim.abandon()
            }
        }
        let endpointName = endpoint?.name ?? (servedFromCache ? "cache" : "none")
        let labels = labels.withLock { labels in
            defer { labels.admission = nil }
            return labels
        }
        if let (ledger, pass) = labels.admission {
            // No usage (nothing answered): nothing was used, the estimate is given back.
            ledger.finish(
                pass, promptTokens: usage?.promptTokens ?? 0, completionTokens: usage?.completionTokens ?? 0,
                price: price ?? TokenPrice(endpoint?.pricing), at: Date().timeIntervalSince1970)
        }
        let elapsed = ContinuousClock.now - arrival
        metrics.recordRequest(operation: operation, model: labels.model, endpoint: endpointName, status: status, duration: elapsed)
        if !measuredByConnection && endpoint != nil { metrics.recordOverhead(max(.zero, elapsed - upstreamWait)) }
        if let usage { metrics.recordTokens(model: labels.model, usage: usage, estimated: estimated) }
        metrics.requestEnded()
        // Built only when the line is written: the hot path pays nothing for it at higher levels.
        guard logger.logLevel <= .info else { return }
        var metadata: Logger.Metadata = [
            "request_id": "\(requestID)", "operation": "\(operation.rawValue)", "model": "\(labels.model)",
            "endpoint": "\(endpointName)", "status": "\(status)", "stream": "\(labels.stream)",
            "duration_ms": "\(elapsed.nanoseconds / 1_000_000)", "prompt_tokens": "\(usage?.promptTokens ?? 0)",
            "completion_tokens": "\(usage?.completionTokens ?? 0)",
        ]
        if let caller = labels.caller {
            metadata["caller_class"] = "\(caller.callerClass.rawValue)"
            if let name = caller.name { metadata["caller_name"] = "\(name)" }
            if let reason = caller.reason { metadata["caller_reason"] = "\(reason)" }
            if caller.callerClass == .unknown { metadata["caller_score"] = "\((caller.score * 100).rounded() / 100)" }
        }
        if !labels.verdicts.isEmpty {
            // Categories, taxonomy ids and actions; never the matched text.
            metadata["guard"] = .array(
                labels.verdicts.map {
                    "\($0.direction.rawValue):\($0.category.rawValue):\($0.owasp):\($0.atlas ?? "-"):\($0.action):\($0.signals.joined(separator: "+"))"
                })
        }
        logger.info("request", metadata: metadata)
    }

    var isFinished: Bool { finished.load(ordering: .acquiring) }

    deinit {
        if !finished.load(ordering: .acquiring) { finish(status: 499) }
    }
}
