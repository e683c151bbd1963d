import Foundation

/// What the log reports about its own work: enough to see group commit at work (records per fsync)
/// and backpressure (appends that waited for room).
public struct AuditLogStatistics: Sendable, Equatable {
    /// Records written and fsynced since the log was opened.
    public var records = 0
    /// Group commits: one write and one fsync each, for every record waiting at the time.
    public var groupCommits = 0
    /// fsync calls on segment and checkpoint files (directory fsyncs not counted).
    public var fsyncs = 0
    /// The most records written by one group commit.
    public var largestBatch = 0
    /// Checkpoints signed since the log was opened.
    public var checkpoints = 0
    /// Group commits that failed (their appends threw; the segment was cut back).
    public var failedCommits = 0
    /// Appends that found `max_pending_records` waiting and had to wait for room.
    public var appendsThatWaitedForRoom = 0
    /// Records waiting for the next group commit now.
    public var pending = 0
    /// Appends waiting for room in the pending queue now.
    public var waitingForRoom = 0

    public init() {}
}

/// A checkpoint the log signed: its tree size and the signed note.
struct SignedCheckpoint: Sendable, Equatable {
    var size: Int
    var note: String
}

struct PendingAppend {
    var record: AuditRecord
    var continuation: CheckedContinuation<Int, any Error>
}

/// The log's state shared by callers and the writer thread, always under `condition`'s lock; the
/// writer thread waits on `condition` for work.
struct AuditLogState {
    /// Records taken by the next group commit (at most `max_pending_records`).
    var pending: [PendingAppend] = []
    /// Appends that found `pending` full, in arrival order; moved into `pending` as room frees up.
    var waitingForRoom: [PendingAppend] = []
    var checkpointRequests: [CheckedContinuation<SignedCheckpoint, any Error>] = []
    /// The tree over every durable record.
    var tree: MerkleTree
    /// The size and frontier the tree started from when the oldest records were pruned.
    var prunedBase: (size: Int, frontier: [MerkleHash])
    /// Segment file names, oldest first; the last is the one being written.
    var segments: [String]
    var checkpoints: [Int: String]
    var latestCheckpoint: SignedCheckpoint?
    var statistics = AuditLogStatistics()
    /// Set when the files could not be brought back to a consistent state after a failed write:
    /// every later append throws it.
    var failure: AuditError?
    var closing = false
    var closed = false
    var closeWaiters: [CheckedContinuation<Void, Never>] = []
    var pruning = false
    /// Tests: the writer takes no work while paused.
    var writerPaused = false
    /// Tests: this many next group commits fail after writing their bytes (as if fsync failed).
    var failingCommits = 0
}

/// `AuditLogState` behind an `NSCondition`.
final class AuditLogShared: @unchecked Sendable {
    let condition = NSCondition()
    private var state: AuditLogState

    init(_ state: AuditLogState) { self.state = state }

    func withLock<T>(_ body: (inout AuditLogState) throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body(&state)
    }

    /// For the writer thread, which holds the lock while it waits on the condition.
    func unlocked<T>(_ body: (inout AuditLogState) throws -> T) rethrows -> T { try body(&state) }
}
