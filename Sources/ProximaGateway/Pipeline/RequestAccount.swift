import Foundation
import Logging
import NIOCore
import ProximaAudit
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
        var audit = AuditDraft()
        var fleet: Fleet?
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
    /// Where the request's record goes (nil: auditing is off).
    let audit: AuditTrail?
    /// Whether the request's record has been handed to the log.
    private let recorded = Atomic<Bool>(false)

    init(
        requestID: String, operation: InferenceOperation, arrival: ContinuousClock.Instant, measuredByConnection: Bool,
        metrics: GatewayMetrics, logger: Logger, audit: AuditTrail? = nil
    ) {
        self.requestID = requestID
        self.operation = operation
        self.arrival = arrival
        self.measuredByConnection = measuredByConnection
        self.metrics = metrics
        self.logger = logger
        self.audit = audit
        metrics.requestStarted()
    }

    // MARK: the audit record

    /// Whether the request's answer text goes into its record (the tenant opted in).
    var keepsAnswerText: Bool { audit != nil && labels.withLock { $0.audit.wantsText } }

    /// Who called, for the record.
    func describe(identity: CallerIdentity) {
        guard let audit else { return }
        labels.withLock {
            $0.audit.tenant = identity.tenantID
            $0.audit.principal = identity.principalID
            $0.audit.key = identity.keyID
            $0.audit.wantsText = audit.textTenants.contains(identity.tenantID)
        }
    }

    /// The request body as received (hashed) and the residency rule it is routed under.
    func describe(received: ByteBuffer, residency: ResidencyRule?) {
        guard audit != nil else { return }
        let digest = AuditTrail.sha256(received)
        labels.withLock {
            $0.audit.promptSHA256 = digest
            $0.audit.residency = residency?.canonicalKey
        }
    }

    /// The request body as sent upstream after the guards, kept as text only for tenants that
    /// opted in.
    func describe(sent: ByteBuffer) {
        guard audit != nil else { return }
        labels.withLock {
            if $0.audit.wantsText { $0.audit.promptText = AuditTrail.text(sent) }
        }
    }

    /// The cache's outcome for the request.
    func describe(cache outcome: String) {
        guard audit != nil else { return }
        labels.withLock { $0.audit.cache = outcome }
    }

    /// The routing decision: policy and every exclusion with its reason.
    func describe(route decision: RouteDecision, fleet: Fleet) {
        guard audit != nil else { return }
        let excluded = decision.exclusions.map {
            AuditExclusion(endpoint: fleet.endpoints[$0.endpoint].name, kind: $0.kind.rawValue, reason: $0.reason)
        }
        labels.withLock {
            $0.audit.policy = decision.policy
            $0.audit.excluded = excluded
            $0.fleet = fleet
        }
    }

    /// Books the outcome like ``finish(status:endpoint:claim:verdict:usage:estimated:upstreamWait:price:servedFromCache:)``,
    /// after the request's audit record is durable: call it before the answer's last byte goes out.
    /// When the log cannot take the record, the request is booked as 503 and `audit_unavailable` is
    /// thrown: the caller must get that instead of the answer.
    func conclude(
        status: Int, endpoint: Endpoint? = nil, claim: EndpointClaim? = nil, verdict: Verdict = .abandoned, usage: TokenUsage? = nil,
        estimated: Bool = false, upstreamWait: Duration = .zero, price: TokenPrice? = nil, servedFromCache: Bool = false,
        answer: AuditAnswer? = nil
    ) async throws(GatewayError) {
        do {
            try await record(status: status, endpoint: endpoint, usage: usage, price: price, servedFromCache: servedFromCache, answer: answer)
        } catch {
            finish(
                status: 503, endpoint: endpoint, claim: claim, verdict: verdict, usage: usage, estimated: estimated,
                upstreamWait: upstreamWait, price: price, servedFromCache: servedFromCache)
            throw error
        }
        finish(
            status: status, endpoint: endpoint, claim: claim, verdict: verdict, usage: usage, estimated: estimated, upstreamWait: upstreamWait,
            price: price, servedFromCache: servedFromCache)
    }

    /// Writes the request's audit record and waits until it is durable (once; later calls and
    /// `finish` then write nothing). For a stream, called before its last event goes out, while the
    /// account is finished only after the stream ends.
    func record(
        status: Int, endpoint: Endpoint? = nil, usage: TokenUsage? = nil, price: TokenPrice? = nil, servedFromCache: Bool = false,
        answer: AuditAnswer? = nil
    ) async throws(GatewayError) {
        guard let audit, !isFinished, !recorded.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try await audit.write(
            makeRecord(
                status: status, endpoint: endpoint, usage: usage, price: price, servedFromCache: servedFromCache, outcome: "complete",
                answer: answer))
    }

    private func makeRecord(
        status: Int, endpoint: Endpoint?, usage: TokenUsage?, price: TokenPrice?, servedFromCache: Bool, outcome: String,
        answer: AuditAnswer?
    ) -> AuditRecord {
        let labels = labels.withLock { $0 }
        var record = AuditRecord(kind: .request, time: AuditTrail.timestamp(Date()))
        let draft = labels.audit
        record.requestID = requestID
        record.tenant = draft.tenant
        record.principal = draft.principal
        record.key = draft.key
        record.callerClass = labels.caller?.callerClass.rawValue
        record.model = labels.model
        record.policy = draft.policy
        record.residency = draft.residency
        record.cache = servedFromCache ? (draft.cache ?? "hit") : draft.cache
        if let endpoint {
            let site = labels.fleet?.sites[endpoint.siteName]
            record.route = AuditRoute(
                endpoint: endpoint.name, site: endpoint.siteName, jurisdiction: site?.jurisdiction, provider: site?.provider,
                excluded: draft.excluded.isEmpty ? nil : draft.excluded)
        } else if !draft.excluded.isEmpty {
            record.route = AuditRoute(excluded: draft.excluded)
        }
        if !labels.verdicts.isEmpty {
            record.guards = labels.verdicts.map {
                AuditGuardVerdict(
                    category: $0.category.rawValue, owasp: $0.owasp, atlas: $0.atlas ?? "", action: $0.action, stage: $0.direction.rawValue)
            }
        }
        if let usage {
            record.promptTokens = usage.promptTokens
            record.completionTokens = usage.completionTokens
            let cost = (price ?? TokenPrice(endpoint?.pricing)).spend(promptTokens: usage.promptTokens, completionTokens: usage.completionTokens)
            record.costUSD = Double(cost.nanodollars) / 1e9
        }
        record.status = status
        record.outcome = outcome
        record.promptSHA256 = draft.promptSHA256
        record.promptText = draft.promptText
        record.answerSHA256 = answer?.sha256
        record.answerText = answer?.text
        record.durationMS = Double((ContinuousClock.now - arrival).nanoseconds / 1000) / 1000
        return record
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
        if let audit, !recorded.exchange(true, ordering: .acquiringAndReleasing) {
            // Nobody waits for this one: the caller left, or the request ended where no answer
            // was sent. Its record says so.
            audit.submit(
                makeRecord(
                    status: status, endpoint: endpoint, usage: usage, price: price, servedFromCache: servedFromCache,
                    outcome: status == 499 ? "incomplete" : "complete", answer: nil))
        }
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
