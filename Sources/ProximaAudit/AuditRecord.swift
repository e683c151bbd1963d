import Foundation

/// One entry of the audit log: a request the gateway answered (or refused), an admin action, or a
/// retention step. Stored as one line of JSON (keys sorted) in a segment file; the line's bytes,
/// without its newline, are the Merkle leaf's entry (docs/governance.md).
///
/// `seq` (the leaf index, from 0) and `prev` (the previous record's leaf hash, hex) are assigned by
/// the log when the record is appended; they let the verifier say exactly which record was changed,
/// removed, reordered or inserted, on top of what the signed roots prove.
public struct AuditRecord: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case request, admin, retention
    }

    public var seq: Int
    public var prev: String
    public var kind: Kind
    /// RFC 3339 UTC with milliseconds.
    public var time: String

    // MARK: request records
    public var requestID: String?
    public var tenant: String?
    public var principal: String?
    public var key: String?
    public var callerClass: String?
    public var model: String?
    public var servedModel: String?
    public var policy: String?
    public var route: AuditRoute?
    /// The residency rule that applied (canonical form), if any.
    public var residency: String?
    public var guards: [AuditGuardVerdict]?
    /// `hit`, `semantic_hit`, `miss`, `bypass`, `off`.
    public var cache: String?
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var costUSD: Double?
    /// The HTTP status the caller got.
    public var status: Int?
    /// `complete`, or `incomplete` (the caller went away or the upstream failed mid-answer).
    public var outcome: String?
    /// SHA-256 (hex) of the request body as received and of the answer as sent.
    public var promptSHA256: String?
    public var answerSHA256: String?
    /// The text, only for tenants that opted in (`audit.text_tenants`), after the guards' redaction.
    public var promptText: String?
    public var answerText: String?
    public var durationMS: Double?

    // MARK: admin records
    /// `key.created`, `key.revoked`, `endpoint.drained`, `endpoint.undrained`, `config.reloaded`, ...
    public var action: String?
    /// Who did it (principal id or `admin-token`).
    public var actor: String?
    public var target: String?
    public var detail: String?

    // MARK: retention records
    /// Records `0 ... removedThrough` were removed from the files.
    public var removedThrough: Int?
    public var removedSegments: [String]?
    /// The Merkle tree of records `0 ... removedThrough`, as the roots of its perfect subtrees from
    /// left to right (base64), so that the tree can be recomputed without them.
    public var frontier: [String]?

    public init(kind: Kind, time: String, seq: Int = 0, prev: String = "") {
        self.seq = seq
        self.prev = prev
        self.kind = kind
        self.time = time
    }

    enum CodingKeys: String, CodingKey {
        case seq, prev, kind, time
        case requestID = "request_id", tenant, principal, key, callerClass = "caller_class", model
        case servedModel = "served_model", policy, route, residency, guards, cache
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", costUSD = "cost_usd", status, outcome
        case promptSHA256 = "prompt_sha256", answerSHA256 = "answer_sha256", promptText = "prompt_text"
        case answerText = "answer_text", durationMS = "duration_ms"
        case action, actor, target, detail
        case removedThrough = "removed_through", removedSegments = "removed_segments", frontier
    }
}

/// Where a request went.
public struct AuditRoute: Codable, Sendable, Equatable {
    public var endpoint: String?
    public var site: String?
    public var jurisdiction: String?
    public var provider: String?
    /// Endpoints tried (retries and hedges included).
    public var attempts: Int?
    public var excluded: [AuditExclusion]?

    public init(
        endpoint: String? = nil, site: String? = nil, jurisdiction: String? = nil, provider: String? = nil, attempts: Int? = nil,
        excluded: [AuditExclusion]? = nil
    ) {
        self.endpoint = endpoint
        self.site = site
        self.jurisdiction = jurisdiction
        self.provider = provider
        self.attempts = attempts
        self.excluded = excluded
    }
}

public struct AuditExclusion: Codable, Sendable, Equatable {
    public var endpoint: String
    public var kind: String
    public var reason: String

    public init(endpoint: String, kind: String, reason: String) {
        self.endpoint = endpoint
        self.kind = kind
        self.reason = reason
    }
}

public struct AuditGuardVerdict: Codable, Sendable, Equatable {
    public var category: String
    public var owasp: String
    public var atlas: String
    public var action: String
    public var stage: String

    public init(category: String, owasp: String, atlas: String, action: String, stage: String) {
        self.category = category
        self.owasp = owasp
        self.atlas = atlas
        self.action = action
        self.stage = stage
    }
}

extension AuditRecord {
    /// The record's line (without the newline): JSON with sorted keys, no escaped slashes (see
    /// ``AuditLineEncoder``). The same record always encodes to the same bytes.
    public func encodedLine() throws -> [UInt8] {
        try AuditLineEncoder.encode(self)
    }

    /// Parses one line of a segment file.
    public static func decode(line: some Collection<UInt8>) throws -> AuditRecord {
        try JSONDecoder().decode(AuditRecord.self, from: Data(line))
    }
}
