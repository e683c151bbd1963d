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
    var line: AuditLineTemplate
    var continuation: CheckedContinuation<Int, any Error>
}

/// A record's line encoded by the caller with `seq` 0 and `prev` "", and where those two values
/// sit, so that the writer thread only splices in the real ones instead of encoding JSON: the
/// encoding's CPU work runs in the appending tasks, in parallel. With sorted keys the result is
/// byte for byte the record's ``AuditRecord/encodedLine()`` with its real seq and prev.
struct AuditLineTemplate {
    var bytes: [UInt8]
    /// Where the (empty) `prev` string's content starts: just after `"prev":"`.
    var prevAt: Int
    /// Where `seq`'s `0` is.
    var seqAt: Int

    private static let prevKey = Array(#""prev":"""#.utf8)
    private static let seqKey = Array(#""seq":0"#.utf8)

    init(record: AuditRecord) throws {
        var blank = record
        blank.seq = 0
        blank.prev = ""
        bytes = try blank.encodedLine()
        // Keys are unique and a quote inside a string value is escaped, so each key occurs once.
        guard let prev = Self.find(Self.prevKey, in: bytes), let seq = Self.find(Self.seqKey, in: bytes), prev < seq else {
            throw AuditError("the record's line has no seq or prev")
        }
        prevAt = prev + Self.prevKey.count - 1
        seqAt = seq + Self.seqKey.count - 1
    }

    /// The line with the real `seq` and `prev` (hex), appended to `output`.
    func write(seq: Int, prev: String, to output: inout [UInt8]) {
        output.append(contentsOf: bytes[..<prevAt])
        output.append(contentsOf: prev.utf8)
        output.append(contentsOf: bytes[prevAt..<seqAt])
        output.append(contentsOf: String(seq).utf8)
        output.append(contentsOf: bytes[(seqAt + 1)...])
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
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
