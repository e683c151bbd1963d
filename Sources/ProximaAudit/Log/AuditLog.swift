import Foundation
import Logging
import ProximaCore

/// The gateway's audit log: appends records to segment files in group commits (one write and one
/// fsync for every record waiting), keeps the Merkle tree, signs checkpoints every
/// `checkpoint_every_records` records or `checkpoint_every_seconds`, indexes records for search, and
/// serves proofs. File work runs on its own thread, never on an event loop.
///
/// The directory's layout is ``AuditFiles``'s. While open, the log holds an exclusive `flock` on
/// `audit.lock`, so that a second gateway or `proxima audit prune` cannot write the same directory.
public final class AuditLog: Sendable {
    public let origin: String
    /// The checkpoints' verifier key (also in `audit-key.pub`).
    public let verifierKey: String
    let directory: String
    private let settings: AuditSettings
    private let shared: AuditLogShared
    private let index: AuditIndex
    private let logger: Logger

    private init(recovered: AuditLogRecovery.Result, settings: AuditSettings, logger: Logger) {
        origin = recovered.origin
        verifierKey = recovered.verifierKey
        directory = recovered.directory
        self.settings = settings
        index = recovered.index
        self.logger = logger
        shared = AuditLogShared(
            AuditLogState(
                tree: recovered.tree, prunedBase: recovered.prunedBase, segments: recovered.segments,
                checkpoints: recovered.checkpoints, latestCheckpoint: recovered.latestCheckpoint))
        AuditLogWriter(shared: shared, recovered: recovered, settings: settings, logger: logger).start()
    }

    /// Opens (or creates) the log in `directory`: loads or creates the signing key, cuts a torn last
    /// line, rebuilds the tree from the segments and brings the index up to date.
    ///
    /// Rebuilding reads and hashes every remaining record: opening costs O(size of the log), about
    /// the time to read the segments once (prune keeps it bounded). Inconsistent files (records
    /// missing under a signed checkpoint, a gap between segments, a changed key or origin) make it
    /// throw rather than overwrite anything.
    public static func open(
        directory: String, origin: String, settings: AuditSettings, logger: Logger
    ) async throws -> AuditLog {
        guard AuditOrigin.isValid(origin) else { throw AuditError("'\(origin)' is not a valid audit log origin") }
        guard settings.problems(at: "audit").isEmpty else {
            throw AuditError(settings.problems(at: "audit").map { "\($0)" }.joined(separator: "; "))
        }
        guard !directory.isEmpty else { throw AuditError("the audit log's directory is empty") }
        let directory = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let recovered = try await onOwnThread {
            try AuditLogRecovery.open(directory: directory, origin: origin, settings: settings, logger: logger)
        }
        return AuditLog(recovered: recovered, settings: settings, logger: logger)
    }

    /// Records appended and durable.
    public var treeSize: Int { shared.withLock { $0.tree.size } }

    /// What the log did since it was opened (group commits, fsyncs, checkpoints, backpressure).
    public var statistics: AuditLogStatistics {
        shared.withLock { state in
            var statistics = state.statistics
            statistics.pending = state.pending.count
            statistics.waitingForRoom = state.waitingForRoom.count
            return statistics
        }
    }

    /// Appends a record (its `seq` and `prev` are assigned here) and returns its seq once it is
    /// written and fsynced. Waits for room when `max_pending_records` are already waiting.
    ///
    /// The record is written even when the calling task is cancelled meanwhile: an answered request
    /// is never missing from the log. Throws when the write or fsync failed (nothing of the record
    /// stays in the segment) or the log is closed.
    public func append(_ record: AuditRecord) async throws -> Int {
        let line: AuditLineTemplate
        do {
            line = try AuditLineTemplate(record: record)
        } catch {
            throw AuditError("audit record not written: it cannot be encoded: \(error)")
        }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
            let rejection: AuditError? = shared.withLock { state in
                if let failure = state.failure { return failure }
                if state.closing { return AuditError("the audit log is closed") }
                let pending = PendingAppend(record: record, line: line, continuation: continuation)
                if state.pending.count < settings.maxPendingRecords && state.waitingForRoom.isEmpty {
                    state.pending.append(pending)
                    shared.condition.signal()
                } else {
                    state.waitingForRoom.append(pending)
                    state.statistics.appendsThatWaitedForRoom += 1
                }
                return nil
            }
            if let rejection { continuation.resume(throwing: rejection) }
        }
    }

    /// The latest signed checkpoint (signed-note text), nil before the first.
    public func latestCheckpoint() -> String? { shared.withLock { $0.latestCheckpoint?.note } }

    /// Signs a checkpoint covering every durable record now (unless the latest already does).
    public func checkpointNow() async throws -> String { try await signedCheckpoint().note }

    func signedCheckpoint() async throws -> SignedCheckpoint {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<SignedCheckpoint, any Error>) in
            let rejected = shared.withLock { state in
                if state.closing { return true }
                state.checkpointRequests.append(continuation)
                shared.condition.signal()
                return false
            }
            if rejected { continuation.resume(throwing: AuditError("the audit log is closed")) }
        }
    }

    /// The audit path of record `seq` against a signed checkpoint: the given tree size's when one was
    /// signed at that size, else the latest (signing a new one when the latest does not cover `seq`).
    public func inclusionProof(seq: Int, treeSize: Int?) async throws -> AuditInclusionProof {
        let (durable, firstKept, requested, latest) = shared.withLock { state in
            (state.tree.size, state.segments.first.flatMap(AuditFiles.firstSeq(ofSegment:)) ?? 0,
             treeSize.flatMap { state.checkpoints[$0].map { note in SignedCheckpoint(size: treeSize!, note: note) } },
             state.latestCheckpoint)
        }
        guard seq >= 0, seq < durable else { throw AuditError("no record \(seq): the log holds records up to \(durable - 1)") }
        guard seq >= firstKept else { throw AuditError("record \(seq) was removed by retention (records before \(firstKept) are gone)") }
        var checkpoint: SignedCheckpoint
        if let requested, requested.size > seq {
            checkpoint = requested
        } else if let latest, latest.size > seq {
            checkpoint = latest
        } else {
            checkpoint = try await signedCheckpoint()
        }
        let tree = shared.withLock { $0.tree }
        let proof = try tree.inclusionProof(index: seq, size: checkpoint.size)
        guard let leaf = tree.leafHash(at: seq) else { throw AuditError("record \(seq) has no leaf hash") }
        let root = try tree.root(size: checkpoint.size)
        let line = try await self.line(seq: seq)
        return AuditInclusionProof(
            seq: seq, treeSize: checkpoint.size, leafHash: Self.base64(leaf), rootHash: Self.base64(root),
            proof: proof.map(Self.base64), record: line, checkpoint: checkpoint.note)
    }

    /// The consistency proof between two signed tree sizes (`to` nil: the latest checkpoint).
    public func consistencyProof(from: Int, to: Int?) async throws -> AuditConsistencyProof {
        let (fromNote, toCheckpoint, tree) = shared.withLock { state in
            (state.checkpoints[from], to.map { size in state.checkpoints[size].map { SignedCheckpoint(size: size, note: $0) } } ?? state.latestCheckpoint, state.tree)
        }
        guard let fromNote else { throw AuditError("no checkpoint was signed at tree size \(from)") }
        guard let toCheckpoint else {
            throw AuditError(to.map { "no checkpoint was signed at tree size \($0)" } ?? "no checkpoint was signed yet")
        }
        guard from <= toCheckpoint.size else { throw AuditError("tree size \(from) is larger than \(toCheckpoint.size)") }
        let proof: [MerkleHash]
        do {
            proof = try tree.consistencyProof(from: from, to: toCheckpoint.size)
        } catch {
            throw AuditError("no consistency proof from \(from) to \(toCheckpoint.size): \(error) (records before the first kept one were pruned)")
        }
        return AuditConsistencyProof(
            from: from, to: toCheckpoint.size, proof: proof.map(Self.base64), fromCheckpoint: fromNote, toCheckpoint: toCheckpoint.note)
    }

    /// Records matching the query, from the index, oldest first; each is the stored line. Waits for
    /// the index rows already queued, so every record appended before the call is found.
    public func search(_ query: AuditQuery) async throws -> [String] {
        try await index.flush()
        return try await index.search(query, directory: directory)
    }

    /// Searches a log directory's index without opening the log, so while a gateway holds it
    /// (`proxima audit search`). The index may lag the segments by the last group commits.
    public static func search(directory: String, query: AuditQuery) throws -> [String] {
        try AuditIndex.search(directory: directory, query: query)
    }

    /// The stored line of record `seq`, found through the index (waiting for the rows still queued
    /// when it is not there yet).
    func line(seq: Int) async throws -> String {
        if let line = try await index.line(seq: seq, directory: directory) { return line }
        try await index.flush()
        if let line = try await index.line(seq: seq, directory: directory) { return line }
        throw AuditError("record \(seq) is not in the index")
    }

    /// Removes (or moves to `archive/`) every whole segment whose records are all older than
    /// `before` (Unix seconds), after appending a signed `retention` record saying what goes and the
    /// tree's frontier up to there, and a checkpoint covering it.
    ///
    /// The retention record is the last thing written before the removal: when the log opens after a
    /// prune, the tree restarts from the frontier of the newest retention record whose
    /// `removed_through` ends just before the first remaining record, and a prune cut short by a
    /// crash is finished then.
    public func prune(before: Double, archive: Bool, actor: String) async throws -> AuditRetentionSummary {
        guard before.isFinite else { throw AuditError("the prune's cutoff time is not a number") }
        let segments: [String] = try shared.withLock { state in
            if state.closing { throw AuditError("the audit log is closed") }
            if state.pruning { throw AuditError("a prune is already running") }
            state.pruning = true
            return state.segments
        }
        defer { shared.withLock { $0.pruning = false } }
        try await index.flush()
        // Whole segments, oldest first, never the one being written; stop at the first that holds
        // a record as recent as `before`.
        var removed: [String] = []
        for name in segments.dropLast() {
            guard let latest = try await index.latestTime(segment: name), latest < before else { break }
            removed.append(name)
        }
        guard !removed.isEmpty, let nextFirst = AuditFiles.firstSeq(ofSegment: segments[removed.count]) else {
            return AuditRetentionSummary(removedSegments: [], removedThrough: nil, recordSeq: nil, checkpoint: nil)
        }
        let removedThrough = nextFirst - 1
        let (tree, base) = shared.withLock { ($0.tree, $0.prunedBase) }
        guard removedThrough >= base.size else { throw AuditError("records up to \(removedThrough) were already pruned") }
        var prefix = try MerkleTree(prunedSize: base.size, frontier: base.frontier)
        for seq in base.size...removedThrough {
            guard let leaf = tree.leafHash(at: seq) else { throw AuditError("no leaf hash for record \(seq)") }
            prefix.append(leafHash: leaf)
        }
        var record = AuditRecord(kind: .retention, time: AuditTime.format(Date()))
        record.actor = actor
        record.removedThrough = removedThrough
        record.removedSegments = removed
        record.frontier = prefix.frontier.map(Self.base64)
        record.detail = archive ? AuditLogRecovery.archivedDetail : AuditLogRecovery.deletedDetail
        let seq = try await append(record)
        let checkpoint = try await signedCheckpoint()
        let directory = directory
        let names = removed
        try await onOwnThread { try AuditLogRecovery.removeSegments(names, directory: directory, archive: archive) }
        shared.withLock { state in state.segments.removeFirst(removed.count) }
        try await index.delete(through: removedThrough)
        logger.notice(
            "audit: pruned", metadata: ["segments": "\(removed)", "removed_through": "\(removedThrough)", "actor": "\(actor)"])
        return AuditRetentionSummary(removedSegments: removed, removedThrough: removedThrough, recordSeq: seq, checkpoint: checkpoint.note)
    }

    /// Writes what is pending, signs a last checkpoint and closes the files.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let closed = shared.withLock { state in
                if state.closed { return true }
                state.closing = true
                state.closeWaiters.append(continuation)
                shared.condition.signal()
                return false
            }
            if closed { continuation.resume() }
        }
    }

    // MARK: tests

    /// Tests: stops (or restarts) the writer taking work, to fill the pending queue at will.
    func pauseWriter(_ paused: Bool) {
        shared.withLock { state in
            state.writerPaused = paused
            shared.condition.signal()
        }
    }

    /// Tests: the next `count` group commits fail after writing their bytes, as if fsync failed.
    func failNextCommits(_ count: Int) {
        shared.withLock { $0.failingCommits = count }
    }

    static func base64(_ hash: MerkleHash) -> String { Data(hash).base64EncodedString() }
}

/// Runs blocking file work on a thread of its own (opening a log reads every segment), not on the
/// cooperative pool.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.name = "proxima-audit-files"
        thread.start()
    }
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
