#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import ProximaCore

/// The log's writer: one dedicated thread (never an event loop, never the cooperative pool) that
/// takes every pending record, writes them with one write and one fsync (group commit), resumes
/// their appends, queues their index rows, and signs checkpoints when due. Everything in this class
/// but `shared` is touched by that thread alone.
final class AuditLogWriter: @unchecked Sendable {
    let shared: AuditLogShared
    private let directory: String
    private let settings: AuditSettings
    private let origin: String
    private let signer: NoteSigner
    private let index: AuditIndex
    private let logger: Logger

    private var segmentFD: Int32
    private var segmentName: String
    private var segmentSize: Int
    private var checkpointsFD: Int32
    private var checkpointsSize: Int
    private let lockFD: Int32
    /// Records durable in the segments (the next seq).
    private var durableSize: Int
    private var lastLeafHash: MerkleHash?
    private var lastCheckpointSize: Int
    /// When the oldest record no checkpoint covers became durable.
    private var firstUncoveredAt: Date?
    /// After a failed checkpoint: not before this time again.
    private var checkpointRetryAt: Date?

    init(shared: AuditLogShared, recovered: AuditLogRecovery.Result, settings: AuditSettings, logger: Logger) {
        self.shared = shared
        directory = recovered.directory
        self.settings = settings
        origin = recovered.origin
        signer = recovered.signer
        index = recovered.index
        self.logger = logger
        segmentFD = recovered.segmentFD
        segmentName = recovered.segments.last!
        segmentSize = recovered.segmentSize
        checkpointsFD = recovered.checkpointsFD
        checkpointsSize = recovered.checkpointsSize
        lockFD = recovered.lockFD
        durableSize = recovered.tree.size
        // After a prune the retention record (the newest record then) is always kept, so the last
        // leaf is never in the pruned prefix.
        lastLeafHash = recovered.tree.size > 0 ? recovered.tree.leafHash(at: recovered.tree.size - 1) : nil
        lastCheckpointSize = recovered.latestCheckpoint?.size ?? 0
        firstUncoveredAt = durableSize > lastCheckpointSize ? Date() : nil
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "proxima-audit-writer"
        thread.start()
    }

    private func run() {
        let interval = settings.checkpointEverySeconds
        while true {
            let condition = shared.condition
            condition.lock()
            var dueByTime = false
            while true {
                let (closing, paused, hasWork) = shared.unlocked { state in
                    (state.closing, state.writerPaused, !state.pending.isEmpty || !state.checkpointRequests.isEmpty)
                }
                if closing || (!paused && hasWork) { break }
                if !paused, let first = firstUncoveredAt {
                    var due = first.addingTimeInterval(interval)
                    if let retry = checkpointRetryAt, retry > due { due = retry }
                    if Date() >= due {
                        dueByTime = true
                        break
                    }
                    _ = condition.wait(until: due)
                } else {
                    condition.wait()
                }
            }
            let (batch, checkpointWaiters, closing, moreWaiting) = shared.unlocked { state in
                let batch = state.pending
                state.pending.removeAll(keepingCapacity: true)
                let room = min(settings.maxPendingRecords, state.waitingForRoom.count)
                if room > 0 {
                    state.pending.append(contentsOf: state.waitingForRoom.prefix(room))
                    state.waitingForRoom.removeFirst(room)
                }
                let waiters = state.checkpointRequests
                state.checkpointRequests.removeAll()
                return (batch, waiters, state.closing, !state.pending.isEmpty)
            }
            condition.unlock()

            if !batch.isEmpty { commit(batch) }

            let now = Date()
            if let first = firstUncoveredAt, now >= first.addingTimeInterval(interval), checkpointRetryAt.map({ now >= $0 }) ?? true {
                dueByTime = true
            }
            let uncovered = durableSize > lastCheckpointSize
            let finishing = closing && !moreWaiting
            let dueByRecords = durableSize - lastCheckpointSize >= settings.checkpointEveryRecords
            if !checkpointWaiters.isEmpty || (uncovered && (dueByRecords || dueByTime || finishing)) {
                do {
                    let checkpoint = try signCheckpoint()
                    for waiter in checkpointWaiters { waiter.resume(returning: checkpoint) }
                } catch {
                    logger.error("audit: checkpoint not signed", metadata: ["error": "\(error)"])
                    checkpointRetryAt = Date().addingTimeInterval(min(interval, 1))
                    for waiter in checkpointWaiters { waiter.resume(throwing: error) }
                }
            }
            if finishing {
                finish()
                return
            }
        }
    }

    /// One group commit: assigns seq and prev, writes every line with one write and one fsync, then
    /// resumes the appends. On a failed write or fsync the segment is cut back to where it was and
    /// the appends throw.
    private func commit(_ batch: [PendingAppend]) {
        if segmentSize >= settings.segmentMaxBytes {
            do {
                try rollOver()
            } catch {
                fail(batch.map(\.continuation), AuditError("audit record not written: a new segment could not be started: \(error)"))
                return
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(batch.count * 768)
        var accepted: [(continuation: CheckedContinuation<Int, any Error>, leaf: MerkleHash, row: AuditIndexRow)] = []
        accepted.reserveCapacity(batch.count)
        var previous = lastLeafHash
        var seq = durableSize
        for pending in batch {
            var record = pending.record
            record.seq = seq
            let start = bytes.count
            pending.line.write(seq: seq, prev: previous.map(Self.hex) ?? "", to: &bytes)
            let leaf = bytes.withUnsafeBufferPointer { MerkleHashing.leaf(UnsafeBufferPointer(rebasing: $0[start...])) }
            accepted.append(
                (pending.continuation, leaf, AuditIndexRow(record: record, segment: segmentName, offset: segmentSize + start, length: bytes.count - start)))
            bytes.append(0x0A)
            previous = leaf
            seq += 1
        }
        if accepted.isEmpty { return }
        let path = directory + "/" + segmentName
        let simulateFailure = shared.withLock { state in
            guard state.failingCommits > 0 else { return false }
            state.failingCommits -= 1
            return true
        }
        do {
            try AuditFileIO.write(segmentFD, bytes, at: segmentSize, path: path)
            if simulateFailure { throw AuditError("fsync \(path): simulated failure") }
            try AuditFileIO.sync(segmentFD, path: path)
        } catch {
            var failure = AuditError("audit record not written: \(error)")
            var broken: AuditError?
            do {
                try AuditFileIO.truncate(segmentFD, to: segmentSize, path: path)
                try AuditFileIO.sync(segmentFD, path: path)
            } catch let cutError {
                broken = AuditError("the audit log cannot continue: \(path) could not be cut back after a failed write (\(cutError))")
                failure = broken!
                logger.critical("audit: segment not cut back after a failed write", metadata: ["error": "\(cutError)"])
            }
            logger.error("audit: group commit failed", metadata: ["error": "\(error)", "records": "\(accepted.count)"])
            shared.withLock { state in
                state.statistics.failedCommits += 1
                if let broken { state.failure = broken }
            }
            fail(accepted.map(\.continuation), failure)
            return
        }
        segmentSize += bytes.count
        durableSize = seq
        lastLeafHash = previous
        if firstUncoveredAt == nil { firstUncoveredAt = Date() }
        shared.withLock { state in
            for entry in accepted { state.tree.append(leafHash: entry.leaf) }
            state.statistics.records += accepted.count
            state.statistics.groupCommits += 1
            state.statistics.fsyncs += 1
            state.statistics.largestBatch = max(state.statistics.largestBatch, accepted.count)
        }
        // Queued before the appends resume (queuing is cheap; the rows are written on GRDB's queue),
        // so that a search after an append, which waits for the queued rows, finds its record.
        index.insertLater(accepted.map(\.row))
        for entry in accepted { entry.continuation.resume(returning: entry.row.seq) }
    }

    private func fail(_ continuations: [CheckedContinuation<Int, any Error>], _ error: AuditError) {
        for continuation in continuations { continuation.resume(throwing: error) }
    }

    /// Starts a new segment named after its first record, and makes its creation durable.
    private func rollOver() throws {
        let name = AuditFiles.segmentName(firstSeq: durableSize)
        let fd = try AuditFileIO.open(directory + "/" + name, O_WRONLY | O_CREAT | O_EXCL, mode: 0o640)
        do {
            try AuditFileIO.syncDirectory(directory)
        } catch {
            close(fd)
            unlink(directory + "/" + name)
            throw error
        }
        close(segmentFD)
        segmentFD = fd
        segmentName = name
        segmentSize = 0
        shared.withLock { state in state.segments.append(name) }
    }

    /// Signs a checkpoint over every durable record (or returns the latest when it already covers
    /// them), appends it to `checkpoints.log` and fsyncs it.
    private func signCheckpoint() throws -> SignedCheckpoint {
        let size = durableSize
        let (latest, root) = try shared.withLock { state in (state.latestCheckpoint, try state.tree.root(size: size)) }
        if let latest, latest.size == size { return latest }
        let note = try signer.sign(Checkpoint(origin: origin, size: size, rootHash: root).body)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let line = Array(try encoder.encode(note)) + [0x0A]
        let path = directory + "/" + AuditFiles.checkpoints
        do {
            try AuditFileIO.write(checkpointsFD, line, at: checkpointsSize, path: path)
            try AuditFileIO.sync(checkpointsFD, path: path)
        } catch {
            try? AuditFileIO.truncate(checkpointsFD, to: checkpointsSize, path: path)
            throw error
        }
        checkpointsSize += line.count
        lastCheckpointSize = size
        firstUncoveredAt = nil
        checkpointRetryAt = nil
        let checkpoint = SignedCheckpoint(size: size, note: note)
        shared.withLock { state in
            state.checkpoints[size] = note
            state.latestCheckpoint = checkpoint
            state.statistics.checkpoints += 1
            state.statistics.fsyncs += 1
        }
        return checkpoint
    }

    /// Closes the files once everything is written and the last checkpoint signed, waits for the
    /// index rows, releases `audit.lock` and resumes `close()`.
    private func finish() {
        close(segmentFD)
        close(checkpointsFD)
        index.waitForWrites()
        close(lockFD)
        let (waiters, requests) = shared.withLock { state in
            state.closed = true
            let waiters = state.closeWaiters
            state.closeWaiters.removeAll()
            let requests = state.checkpointRequests
            state.checkpointRequests.removeAll()
            return (waiters, requests)
        }
        for request in requests { request.resume(throwing: AuditError("the audit log is closed")) }
        for waiter in waiters { waiter.resume() }
    }

    static func hex(_ bytes: [UInt8]) -> String { Hex.lowercase(bytes) }
}
