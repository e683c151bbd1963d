/// The tamper-evident audit trail (docs/governance.md): one record per request and per admin action
/// in an append-only Merkle log of segment files, with signed checkpoints.
public struct AuditSettings: Codable, Sendable, Equatable {
    /// Off unless enabled.
    public var enabled: Bool
    /// The log's directory; `nil`: `audit` in the configuration's `data_dir`.
    public var directory: String?
    /// The log's unique name, the first line of every checkpoint (for example
    /// `audit.example.com/proxima/eu-1`); `nil`: `proxima/<host name>`. Each replica needs its own.
    public var origin: String?
    /// The Ed25519 private key (a file holding the 32-byte seed in base64); `nil`: `audit-key` in the
    /// log's directory, created (mode 0600) on first start.
    public var keyFile: String?
    /// A checkpoint is signed after this many new records...
    public var checkpointEveryRecords: Int
    /// ...or this long after the first record it does not cover yet, whichever comes first.
    public var checkpointEverySeconds: Double
    /// A segment file is closed and a new one started beyond this size.
    public var segmentMaxBytes: Int
    /// Records waiting to be written at most; beyond it requests wait for room (backpressure), they
    /// are never dropped.
    public var maxPendingRecords: Int
    /// Tenants whose records also carry the prompt and answer text (after the guards' redaction).
    /// Everyone else's records carry only their SHA-256.
    public var textTenants: [String]
    /// Age (days) beyond which `proxima audit prune` removes whole segments when not told otherwise.
    public var retentionDays: Double?

    public init(
        enabled: Bool = false, directory: String? = nil, origin: String? = nil, keyFile: String? = nil,
        checkpointEveryRecords: Int = 1_000, checkpointEverySeconds: Double = 10, segmentMaxBytes: Int = 64 * 1024 * 1024,
        maxPendingRecords: Int = 65_536, textTenants: [String] = [], retentionDays: Double? = nil
    ) {
        self.enabled = enabled
        self.directory = directory
        self.origin = origin
        self.keyFile = keyFile
        self.checkpointEveryRecords = checkpointEveryRecords
        self.checkpointEverySeconds = checkpointEverySeconds
        self.segmentMaxBytes = segmentMaxBytes
        self.maxPendingRecords = maxPendingRecords
        self.textTenants = textTenants
        self.retentionDays = retentionDays
    }

    public static let defaultDirectoryName = "audit"
    public static let checkpointRecordsRange = 1...10_000_000
    public static let checkpointSecondsRange = 0.01...86_400.0
    public static let segmentBytesRange = 4_096...(1 << 40)
    public static let pendingRange = 1...10_000_000

    /// The log's directory for a configuration whose data directory is `dataDirectory`.
    public func logDirectory(dataDirectory: String) -> String {
        if let directory { return directory }
        let base = dataDirectory.hasSuffix("/") ? String(dataDirectory.dropLast()) : dataDirectory
        return base.isEmpty ? Self.defaultDirectoryName : base + "/" + Self.defaultDirectoryName
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, directory, origin, keyFile = "key_file", checkpointEveryRecords = "checkpoint_every_records"
        case checkpointEverySeconds = "checkpoint_every_seconds", segmentMaxBytes = "segment_max_bytes"
        case maxPendingRecords = "max_pending_records", textTenants = "text_tenants", retentionDays = "retention_days"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AuditSettings()
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
        directory = try c.decodeIfPresent(String.self, forKey: .directory)
        origin = try c.decodeIfPresent(String.self, forKey: .origin)
        keyFile = try c.decodeIfPresent(String.self, forKey: .keyFile)
        checkpointEveryRecords = try c.decodeIfPresent(Int.self, forKey: .checkpointEveryRecords) ?? d.checkpointEveryRecords
        checkpointEverySeconds = try c.decodeIfPresent(Double.self, forKey: .checkpointEverySeconds) ?? d.checkpointEverySeconds
        segmentMaxBytes = try c.decodeIfPresent(Int.self, forKey: .segmentMaxBytes) ?? d.segmentMaxBytes
        maxPendingRecords = try c.decodeIfPresent(Int.self, forKey: .maxPendingRecords) ?? d.maxPendingRecords
        textTenants = try c.decodeIfPresent([String].self, forKey: .textTenants) ?? []
        retentionDays = try c.decodeIfPresent(Double.self, forKey: .retentionDays)
    }

    public func problems(at keyPath: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        if let problem = ConfigurationBounds.problem(checkpointEveryRecords, in: Self.checkpointRecordsRange) {
            problems.append(.init("\(keyPath).checkpoint_every_records", problem))
        }
        if let problem = ConfigurationBounds.problem(checkpointEverySeconds, in: Self.checkpointSecondsRange, unit: "seconds") {
            problems.append(.init("\(keyPath).checkpoint_every_seconds", problem))
        }
        if let problem = ConfigurationBounds.problem(segmentMaxBytes, in: Self.segmentBytesRange) {
            problems.append(.init("\(keyPath).segment_max_bytes", problem))
        }
        if let problem = ConfigurationBounds.problem(maxPendingRecords, in: Self.pendingRange) {
            problems.append(.init("\(keyPath).max_pending_records", problem))
        }
        if let origin, !AuditOrigin.isValid(origin) {
            problems.append(.init("\(keyPath).origin", "must be 1 to 255 printable ASCII characters without spaces, '+' or '—'"))
        }
        if let retentionDays, !(retentionDays > 0 && retentionDays.isFinite) {
            problems.append(.init("\(keyPath).retention_days", "must be a positive number of days"))
        }
        for tenant in textTenants where !IdentityName.isValid(tenant) {
            problems.append(.init("\(keyPath).text_tenants", "'\(tenant)' is not a tenant id"))
        }
        return problems
    }
}

/// A log origin (also the checkpoint key's name): printable ASCII, no spaces or `+`, which the
/// signed-note format reserves.
public enum AuditOrigin {
    public static func isValid(_ origin: String) -> Bool {
        let bytes = Array(origin.utf8)
        return (1...255).contains(bytes.count) && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "+") }
    }
}
