import Crypto
import Foundation
import Logging
import NIOCore
import ProximaAudit
import ProximaCore

/// The gateway's side of the audit log (docs/governance.md): turns what the account stage knows
/// about a request into an ``AuditRecord`` and waits until the log has it on disk. A request's
/// answer is not finished (its last byte is held back) until its record is durable; when the log
/// cannot take it, the caller gets 503 `audit_unavailable` rather than an answer nobody recorded.
final class AuditTrail: Sendable {
    let log: AuditLog
    let textTenants: Set<String>
    let metrics: GatewayMetrics
    let logger: Logger

    init(log: AuditLog, settings: AuditSettings, metrics: GatewayMetrics, logger: Logger) {
        self.log = log
        self.textTenants = Set(settings.textTenants)
        self.metrics = metrics
        self.logger = logger
    }

    /// Appends `record` and returns once it is durable.
    func write(_ record: AuditRecord) async throws(GatewayError) {
        let started = ContinuousClock.now
        do {
            _ = try await log.append(record)
        } catch {
            metrics.recordAuditWrite(outcome: "failed", duration: ContinuousClock.now - started)
            logger.error("audit record not written", metadata: ["request_id": "\(record.requestID ?? "-")", "error": "\(error)"])
            throw GatewayError.auditUnavailable
        }
        metrics.recordAuditWrite(outcome: "written", duration: ContinuousClock.now - started)
    }

    /// Appends `record` without anyone waiting: the record of a request whose caller is gone.
    func submit(_ record: AuditRecord) {
        let log = self.log
        let metrics = self.metrics
        Task {
            do {
                _ = try await log.append(record)
                metrics.recordAuditWrite(outcome: "written", duration: .zero)
            } catch {
                metrics.recordAuditWrite(outcome: "failed", duration: .zero)
            }
        }
    }

    /// An admin action's record (key created or revoked, endpoint drained, configuration reloaded),
    /// durable before the action is answered.
    func admin(action: String, actor: String, target: String?, detail: String? = nil) async throws(GatewayError) {
        var record = AuditRecord(kind: .admin, time: Self.timestamp(Date()))
        record.action = action
        record.actor = actor
        record.target = target
        record.detail = detail
        try await write(record)
    }

    // MARK: formats

    /// RFC 3339 UTC with milliseconds, without Foundation's formatters on the hot path.
    static func timestamp(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let seconds = milliseconds / 1000
        let date = UTCCalendar.date(dayNumber: Int(seconds / 86_400))
        let (y, m, d) = (date.year, date.month, date.day)
        let daySeconds = Int(seconds % 86_400)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }
        let ms = Int(milliseconds % 1000)
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : String(ms)
        return "\(y)-\(two(m))-\(two(d))T\(two(daySeconds / 3600)):\(two(daySeconds / 60 % 60)):\(two(daySeconds % 60)).\(msText)Z"
    }

    /// SHA-256 of a buffer's readable bytes, hex.
    static func sha256(_ buffer: ByteBuffer) -> String {
        buffer.withUnsafeReadableBytes { hex(SHA256.hash(data: $0)) }
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String { Hex.lowercase(digest) }

    /// A body as text for a tenant that opted in, up to 1 MiB (longer text is cut and marked).
    static func text(_ buffer: ByteBuffer) -> String {
        let limit = 1 << 20
        if buffer.readableBytes <= limit { return String(buffer: buffer) }
        return String(decoding: buffer.readableBytesView.prefix(limit), as: UTF8.self) + "…[cut]"
    }
}

/// What the account stage collects for a request's record as it passes the stages.
struct AuditDraft: Sendable {
    var tenant: String?
    var principal: String?
    var key: String?
    var policy: String?
    var residency: String?
    var cache: String?
    var excluded: [AuditExclusion] = []
    var promptSHA256: String?
    var promptText: String?
    var wantsText = false
}

/// Where a request's answer stands when its record is written.
struct AuditAnswer: Sendable {
    var sha256: String?
    var text: String?

    init(sha256: String? = nil, text: String? = nil) {
        self.sha256 = sha256
        self.text = text
    }

    /// The answer as sent: its hash, and its text when the tenant opted in.
    init(body: ByteBuffer, keepText: Bool) {
        self.sha256 = AuditTrail.sha256(body)
        self.text = keepText ? AuditTrail.text(body) : nil
    }
}

/// The SHA-256 of a streamed answer, fed event by event.
struct StreamDigest: Sendable {
    private var hasher = SHA256()
    private var kept: ByteBuffer?

    init(keepText: Bool) {
        kept = keepText ? ByteBuffer() : nil
    }

    mutating func add(_ event: ByteBuffer) {
        event.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        if kept != nil, kept!.readableBytes < 1 << 20 {
            var copy = event
            kept!.writeBuffer(&copy)
        }
    }

    func answer() -> AuditAnswer {
        AuditAnswer(sha256: AuditTrail.hex(hasher.finalize()), text: kept.map { AuditTrail.text($0) })
    }
}
