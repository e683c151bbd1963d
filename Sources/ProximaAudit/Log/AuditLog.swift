import Logging
import ProximaCore

/// The gateway's audit log: appends records to segment files in group commits (one write and one
/// fsync for every record waiting), keeps the Merkle tree, signs checkpoints every
/// `checkpoint_every_records` records or `checkpoint_every_seconds`, indexes records for search, and
/// serves proofs. File work runs on its own thread, never on an event loop.
public final class AuditLog: Sendable {
    /// Opens (or creates) the log in `directory`: loads or creates the signing key, cuts a torn last
    /// line, rebuilds the tree from the segments and brings the index up to date.
    public static func open(
        directory: String, origin: String, settings: AuditSettings, logger: Logger
    ) async throws -> AuditLog {
        fatalError("stub: helper B")
    }

    public var origin: String { fatalError("stub: helper B") }
    /// The checkpoints' verifier key (also in `audit-key.pub`).
    public var verifierKey: String { fatalError("stub: helper B") }
    /// Records appended and durable.
    public var treeSize: Int { fatalError("stub: helper B") }

    /// Appends a record (its `seq` and `prev` are assigned here) and returns its seq once it is
    /// written and fsynced. Waits for room when `max_pending_records` are already waiting.
    public func append(_ record: AuditRecord) async throws -> Int { fatalError("stub: helper B") }

    /// The latest signed checkpoint (signed-note text), nil before the first.
    public func latestCheckpoint() -> String? { fatalError("stub: helper B") }
    /// Signs a checkpoint covering every durable record now (unless the latest already does).
    public func checkpointNow() async throws -> String { fatalError("stub: helper B") }

    /// The audit path of record `seq` against a signed checkpoint: the given tree size's when one was
    /// signed at that size, else the latest (signing a new one when the latest does not cover `seq`).
    public func inclusionProof(seq: Int, treeSize: Int?) async throws -> AuditInclusionProof { fatalError("stub: helper B") }
    /// The consistency proof between two signed tree sizes (`to` nil: the latest checkpoint).
    public func consistencyProof(from: Int, to: Int?) async throws -> AuditConsistencyProof { fatalError("stub: helper B") }

    /// Records matching the query, from the index, oldest first; each is the stored line.
    public func search(_ query: AuditQuery) async throws -> [String] { fatalError("stub: helper B") }

    /// Removes (or moves to `archive/`) every whole segment whose records are all older than
    /// `before` (Unix seconds), after appending a signed `retention` record saying what goes and the
    /// tree's frontier up to there, and a checkpoint covering it.
    public func prune(before: Double, archive: Bool, actor: String) async throws -> AuditRetentionSummary {
        fatalError("stub: helper B")
    }

    /// Writes what is pending, signs a last checkpoint and closes the files.
    public func close() async { fatalError("stub: helper B") }
}

public struct AuditInclusionProof: Codable, Sendable, Equatable {
    public var seq: Int
    public var treeSize: Int
    /// base64 of the leaf hash, of the root and of each proof hash.
    public var leafHash: String
    public var rootHash: String
    public var proof: [String]
    /// The record's line.
    public var record: String
    /// The signed checkpoint at `treeSize`.
    public var checkpoint: String

    enum CodingKeys: String, CodingKey {
        case seq, treeSize = "tree_size", leafHash = "leaf_hash", rootHash = "root_hash", proof, record, checkpoint
    }
}

public struct AuditConsistencyProof: Codable, Sendable, Equatable {
    public var from: Int
    public var to: Int
    public var proof: [String]
    /// The signed checkpoints at both sizes.
    public var fromCheckpoint: String
    public var toCheckpoint: String

    enum CodingKeys: String, CodingKey {
        case from, to, proof, fromCheckpoint = "from_checkpoint", toCheckpoint = "to_checkpoint"
    }
}

public struct AuditQuery: Sendable, Equatable {
    public var tenant: String?
    public var requestID: String?
    /// Unix seconds, inclusive / exclusive.
    public var since: Double?
    public var until: Double?
    public var kind: AuditRecord.Kind?
    public var limit: Int

    public init(
        tenant: String? = nil, requestID: String? = nil, since: Double? = nil, until: Double? = nil, kind: AuditRecord.Kind? = nil,
        limit: Int = 100
    ) {
        self.tenant = tenant
        self.requestID = requestID
        self.since = since
        self.until = until
        self.kind = kind
        self.limit = limit
    }
}

public struct AuditRetentionSummary: Codable, Sendable, Equatable {
    public var removedSegments: [String]
    /// Records `0 ... removedThrough` are gone from the files (nil: nothing was old enough).
    public var removedThrough: Int?
    /// The retention record's seq.
    public var recordSeq: Int?
    public var checkpoint: String?

    enum CodingKeys: String, CodingKey {
        case removedSegments = "removed_segments", removedThrough = "removed_through", recordSeq = "record_seq", checkpoint
    }
}

public struct AuditError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
