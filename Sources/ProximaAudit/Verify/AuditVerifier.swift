/// What `proxima audit verify` found wrong in a log.
public struct AuditProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// A record's bytes differ from what was logged.
        case changed
        /// A record is missing.
        case removed
        /// Records are out of order.
        case reordered
        /// A record that was never logged is present.
        case inserted
        /// A line that is not a record, a torn line, an unreadable file.
        case malformed
        /// A checkpoint whose signature does not verify, or by an unknown key.
        case badSignature = "bad_signature"
        /// A checkpoint whose root does not match the records, or two checkpoints that are not
        /// consistent.
        case inconsistent
    }

    public var kind: Kind
    /// The record's seq, when the problem is about one record.
    public var seq: Int?
    /// Where: `segment-000000000000.log:17` (line numbers from 1), or `checkpoints.log:3`.
    public var location: String?
    public var detail: String

    public init(kind: Kind, seq: Int? = nil, location: String? = nil, detail: String) {
        self.kind = kind
        self.seq = seq
        self.location = location
        self.detail = detail
    }

    public var description: String {
        "\(kind.rawValue)\(seq.map { " record \($0)" } ?? "")\(location.map { " at \($0)" } ?? ""): \(detail)"
    }
}

/// The verifier's report on one log directory.
public struct AuditVerification: Sendable {
    public var origin: String?
    public var records: Int
    public var checkpointsVerified: Int
    /// The largest tree size a verified checkpoint covers.
    public var verifiedSize: Int
    public var problems: [AuditProblem]

    public init(origin: String?, records: Int, checkpointsVerified: Int, verifiedSize: Int, problems: [AuditProblem]) {
        self.origin = origin
        self.records = records
        self.checkpointsVerified = checkpointsVerified
        self.verifiedSize = verifiedSize
        self.problems = problems
    }

    public var isValid: Bool { problems.isEmpty }
}

/// Recomputes a log from its files and checks it against its signed checkpoints (offline: nothing
/// but the files and the public keys).
public enum AuditVerifier {
    /// Verifies the log in `directory` with the given verifier keys (one per replica; the log's
    /// origin picks its key).
    public static func verify(directory: String, keys: [NoteVerifier]) throws -> AuditVerification {
        fatalError("stub: helper A")
    }
}
