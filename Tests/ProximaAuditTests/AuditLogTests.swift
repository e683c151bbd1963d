import Foundation
import Logging
import ProximaCore
import Testing

@testable import ProximaAudit

/// The audit log's storage against real files in a temporary directory, with real fsyncs.
@Suite struct AuditLogTests {
    static let origin = "audit.test/proxima"

    static func settings(
        everyRecords: Int = 1_000_000, everySeconds: Double = 86_400, segmentBytes: Int = 1 << 20, maxPending: Int = 65_536
    ) -> AuditSettings {
        AuditSettings(
            enabled: true, checkpointEveryRecords: everyRecords, checkpointEverySeconds: everySeconds, segmentMaxBytes: segmentBytes,
            maxPendingRecords: maxPending)
    }

    static func temporaryDirectory() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("proxima-audit-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func open(_ directory: String, _ settings: AuditSettings = settings()) async throws -> AuditLog {
        try await AuditLog.open(directory: directory, origin: origin, settings: settings, logger: Logger(label: "audit-test"))
    }

    static func record(tenant: String = "acme", requestID: String? = nil, time: String = "2026-12-07T08:00:00.000Z", detail: String? = nil)
        -> AuditRecord
    {
        var record = AuditRecord(kind: .request, time: time)
        record.tenant = tenant
        record.requestID = requestID
        record.status = 200
        record.detail = detail
        return record
    }

    /// Every record line of the directory's segments, oldest first.
    static func lines(_ directory: String) throws -> [[UInt8]] {
        try segmentNames(directory).flatMap { name -> [[UInt8]] in
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
            return bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map(Array.init)
        }
    }

    static func segmentNames(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { AuditFiles.firstSeq(ofSegment: $0) != nil }.sorted()
    }

    static func checkpoint(_ note: String, key: String) throws -> Checkpoint {
        try Checkpoint.parse(body: try NoteVerifier(verifierKey: key).open(note))
    }

    static func waitUntil(_ condition: () throws -> Bool) async throws {
        for _ in 0..<1000 {
            if try condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("condition not met within 10 s")
    }

    @Test func appendsReturnIncreasingSeqsAndTheLinesOnDiskChainThem() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory)
        var seqs: [Int] = []
        for number in 0..<5 { seqs.append(try await log.append(Self.record(requestID: "r\(number)"))) }
        #expect(seqs == [0, 1, 2, 3, 4])
        #expect(log.treeSize == 5)
        // Durable before append returned: the lines are on disk while the log is still open.
        let lines = try Self.lines(directory)
        #expect(lines.count == 5)
        var previous = ""
        for (number, line) in lines.enumerated() {
            let record = try AuditRecord.decode(line: line)
            #expect(record.seq == number)
            #expect(record.prev == previous)
            #expect(record.requestID == "r\(number)")
            var expected = Self.record(requestID: "r\(number)")
            expected.seq = number
            expected.prev = previous
            #expect(try expected.encodedLine() == line)
            previous = AuditLogWriter.hex(MerkleHashing.leaf(line))
        }
        await log.close()
        await #expect(throws: AuditError.self) { _ = try await log.append(Self.record()) }
        #expect(FileManager.default.fileExists(atPath: directory + "/" + AuditFiles.publicKey))
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/" + AuditFiles.privateKey)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test func recordsWhoseTextLooksLikeSeqOrPrevAreWrittenExactly() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory)
        _ = try await log.append(Self.record())
        let tricky = Self.record(tenant: "acme", requestID: #""prev":"","seq":0"#, detail: #"{"prev":"","seq":0}"#)
        #expect(try await log.append(tricky) == 1)
        let line = try Self.lines(directory)[1]
        var expected = tricky
        expected.seq = 1
        expected.prev = AuditLogWriter.hex(MerkleHashing.leaf(try Self.lines(directory)[0]))
        #expect(try expected.encodedLine() == line)
        #expect(try AuditRecord.decode(line: line) == expected)
        var unencodable = Self.record()
        unencodable.costUSD = .nan
        await #expect(throws: AuditError.self) { _ = try await log.append(unencodable) }
        #expect(try await log.append(Self.record()) == 2)
        await log.close()
    }

    @Test func concurrentAppendsLandExactlyOnceInSeqOrder() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory)
        let count = 400
        let results = try await withThrowingTaskGroup(of: (String, Int).self) { group in
            for number in 0..<count {
                group.addTask { ("r\(number)", try await log.append(Self.record(requestID: "r\(number)"))) }
            }
            var results: [String: Int] = [:]
            for try await (id, seq) in group { results[id] = seq }
            return results
        }
        #expect(results.values.sorted() == Array(0..<count))
        let lines = try Self.lines(directory)
        #expect(lines.count == count)
        for (number, line) in lines.enumerated() {
            let record = try AuditRecord.decode(line: line)
            #expect(record.seq == number)
            #expect(results[record.requestID ?? ""] == number)
        }
        let statistics = log.statistics
        #expect(statistics.records == count)
        #expect(statistics.fsyncs == statistics.groupCommits)
        await log.close()
    }

    @Test func oneGroupCommitWritesEveryWaitingRecordWithOneFsync() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory)
        log.pauseWriter(true)
        let count = 200
        try await withThrowingTaskGroup(of: Int.self) { group in
            for number in 0..<count { group.addTask { try await log.append(Self.record(requestID: "r\(number)")) } }
            try await Self.waitUntil { log.statistics.pending == count }
            log.pauseWriter(false)
            var seqs: [Int] = []
            for try await seq in group { seqs.append(seq) }
            #expect(seqs.sorted() == Array(0..<count))
        }
        let statistics = log.statistics
        #expect(statistics.groupCommits == 1)
        #expect(statistics.fsyncs == 1)
        #expect(statistics.largestBatch == count)
        await log.close()
    }

    @Test func aFullPendingQueueMakesCallersWaitNotFail() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory, Self.settings(maxPending: 4))
        log.pauseWriter(true)
        try await withThrowingTaskGroup(of: Int.self) { group in
            for number in 0..<10 { group.addTask { try await log.append(Self.record(requestID: "r\(number)")) } }
            try await Self.waitUntil { log.statistics.pending + log.statistics.waitingForRoom == 10 }
            #expect(log.statistics.pending == 4)
            #expect(log.statistics.waitingForRoom == 6)
            #expect(log.treeSize == 0)
            log.pauseWriter(false)
            var seqs: [Int] = []
            for try await seq in group { seqs.append(seq) }
            #expect(seqs.sorted() == Array(0..<10))
        }
        let statistics = log.statistics
        #expect(statistics.appendsThatWaitedForRoom == 6)
        #expect(statistics.largestBatch <= 4)
        #expect(try Self.lines(directory).count == 10)
        await log.close()
    }

    @Test func aFailedFsyncThrowsAndLeavesNoPartOfTheRecord() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory)
        _ = try await log.append(Self.record(requestID: "kept"))
        let before = try Self.lines(directory)
        log.failNextCommits(1)
        await #expect(throws: AuditError.self) { try await log.append(Self.record(requestID: "lost")) }
        #expect(try Self.lines(directory) == before)
        let segment = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + Self.segmentNames(directory)[0]))
        #expect(segment.last == 0x0A)
        #expect(try await log.append(Self.record(requestID: "next")) == 1)
        #expect(log.statistics.failedCommits == 1)
        await log.close()
        let reopened = try await Self.open(directory)
        #expect(reopened.treeSize == 2)
        await reopened.close()
    }

    @Test func checkpointsAreSignedEveryNRecordsOverDurableRecords() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory, Self.settings(everyRecords: 10))
        for number in 0..<25 { _ = try await log.append(Self.record(requestID: "r\(number)")) }
        let latest = try #require(log.latestCheckpoint())
        #expect(try Self.checkpoint(latest, key: log.verifierKey).size == 20)
        let stored = try String(contentsOfFile: directory + "/" + AuditFiles.checkpoints, encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(String.self, from: Data($0.utf8)) }
        #expect(stored.count == 2)
        let lines = try Self.lines(directory)
        for (note, size) in zip(stored, [10, 20]) {
            let checkpoint = try Self.checkpoint(note, key: log.verifierKey)
            #expect(checkpoint.origin == Self.origin)
            #expect(checkpoint.size == size)
            var tree = MerkleTree()
            for line in lines.prefix(size) { tree.append(leafHash: MerkleHashing.leaf(line)) }
            #expect(checkpoint.rootHash == tree.root)
        }
        await log.close()
        // close() signs a last checkpoint over the 25 records.
        let reopened = try await Self.open(directory)
        #expect(try Self.checkpoint(try #require(reopened.latestCheckpoint()), key: reopened.verifierKey).size == 25)
        #expect(try await Self.checkpoint(reopened.checkpointNow(), key: reopened.verifierKey).size == 25)
        await reopened.close()
    }

    @Test func aCheckpointIsSignedSecondsAfterTheFirstUncoveredRecord() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory, Self.settings(everySeconds: 0.2))
        #expect(log.latestCheckpoint() == nil)
        _ = try await log.append(Self.record())
        try await Self.waitUntil { log.latestCheckpoint() != nil }
        #expect(try Self.checkpoint(try #require(log.latestCheckpoint()), key: log.verifierKey).size == 1)
        await log.close()
    }

    @Test func segmentsRollOverAndReopeningContinuesTheTree() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let settings = Self.settings(segmentBytes: 4096)
        let padding = String(repeating: "x", count: 300)
        let log = try await Self.open(directory, settings)
        for number in 0..<40 { _ = try await log.append(Self.record(requestID: "r\(number)", detail: padding)) }
        await log.close()
        let names = try Self.segmentNames(directory)
        #expect(names.count >= 3)
        var expectedFirst = 0
        for name in names {
            #expect(AuditFiles.firstSeq(ofSegment: name) == expectedFirst)
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
            let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast()
            #expect(try AuditRecord.decode(line: try #require(lines.first)).seq == expectedFirst)
            expectedFirst += lines.count
        }
        #expect(expectedFirst == 40)

        let reopened = try await Self.open(directory, settings)
        #expect(reopened.treeSize == 40)
        for number in 40..<50 { #expect(try await reopened.append(Self.record(requestID: "r\(number)", detail: padding)) == number) }
        let note = try await reopened.checkpointNow()
        await reopened.close()
        let lines = try Self.lines(directory)
        #expect(lines.count == 50)
        var tree = MerkleTree()
        for line in lines { tree.append(leafHash: MerkleHashing.leaf(line)) }
        let checkpoint = try Self.checkpoint(note, key: reopened.verifierKey)
        #expect(checkpoint.size == 50)
        #expect(checkpoint.rootHash == tree.root)
        #expect(try AuditRecord.decode(line: lines[40]).prev == AuditLogWriter.hex(MerkleHashing.leaf(lines[39])))
    }

    @Test func aTornLastLineIsCutWhenTheLogOpens() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory)
        for _ in 0..<3 { _ = try await log.append(Self.record()) }
        await log.close()
        let path = directory + "/" + (try Self.segmentNames(directory).last!)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"kind":"request","prev":"ab","se"#.utf8))
        try handle.close()
        let reopened = try await Self.open(directory)
        #expect(reopened.treeSize == 3)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.last == 0x0A)
        #expect(try await reopened.append(Self.record()) == 3)
        #expect(try Self.lines(directory).count == 4)
        await reopened.close()
    }

    @Test func openingRefusesACheckpointLargerThanTheRecords() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory)
        for _ in 0..<5 { _ = try await log.append(Self.record()) }
        await log.close()
        // Drop the last two whole lines: the checkpoint signed at close covers 5 records.
        let path = directory + "/" + (try Self.segmentNames(directory)[0])
        let lines = try Self.lines(directory)
        try Data(lines.prefix(3).flatMap { $0 + [0x0A] }).write(to: URL(fileURLWithPath: path))
        await #expect(throws: AuditError.self) { _ = try await Self.open(directory) }
        // Nothing was overwritten, and the lock was released.
        #expect(try Self.lines(directory).count == 3)
        #expect(try String(contentsOfFile: directory + "/" + AuditFiles.checkpoints, encoding: .utf8).split(separator: "\n").count == 1)
    }

    @Test func aSecondWriterOfTheSameDirectoryIsRefused() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory)
        await #expect(throws: AuditError.self) { _ = try await Self.open(directory) }
        await log.close()
        let again = try await Self.open(directory)
        await again.close()
    }

    @Test func searchFindsRecordsByTenantRequestIDAndTimeFromTheIndex() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory, Self.settings(segmentBytes: 4096))
        for number in 0..<30 {
            let time = AuditTime.format(Date(timeIntervalSince1970: 1_800_000_000 + Double(number) * 60))
            _ = try await log.append(Self.record(tenant: number % 3 == 0 ? "alpha" : "beta", requestID: "r\(number)", time: time))
        }
        let alpha = try await log.search(AuditQuery(tenant: "alpha"))
        #expect(alpha.count == 10)
        #expect(try alpha.map { try AuditRecord.decode(line: Array($0.utf8)).seq } == Array(stride(from: 0, to: 30, by: 3)))
        let lines = try Self.lines(directory)
        #expect(alpha.first == String(decoding: lines[0], as: UTF8.self))
        let one = try await log.search(AuditQuery(requestID: "r17"))
        #expect(one == [String(decoding: lines[17], as: UTF8.self)])
        let window = try await log.search(AuditQuery(tenant: "beta", since: 1_800_000_000 + 600, until: 1_800_000_000 + 1200))
        #expect(try window.map { try AuditRecord.decode(line: Array($0.utf8)).seq } == [10, 11, 13, 14, 16, 17, 19])
        #expect(try await log.search(AuditQuery(limit: 4)).count == 4)
        // Offline, from the index alone (as `proxima audit search` does next to a running gateway).
        try await Self.waitUntil { try AuditLog.search(directory: directory, query: AuditQuery(tenant: "alpha")) == alpha }
        await log.close()
    }

    @Test func theIndexIsRebuiltFromTheSegmentsWhenItIsMissing() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory)
        for number in 0..<12 { _ = try await log.append(Self.record(requestID: "r\(number)")) }
        await log.close()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: directory + "/" + AuditFiles.index + suffix) }
        let reopened = try await Self.open(directory)
        #expect(try await reopened.search(AuditQuery(requestID: "r11")).count == 1)
        #expect(try await reopened.search(AuditQuery()).count == 12)
        await reopened.close()
    }

    @Test func proofsVerifyAgainstSignedCheckpoints() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try await Self.open(directory)
        for number in 0..<20 { _ = try await log.append(Self.record(requestID: "r\(number)")) }
        let first = try Self.checkpoint(try await log.checkpointNow(), key: log.verifierKey)
        #expect(first.size == 20)
        let inclusion = try await log.inclusionProof(seq: 7, treeSize: nil)
        #expect(inclusion.treeSize == 20)
        #expect(inclusion.record == String(decoding: try Self.lines(directory)[7], as: UTF8.self))
        let leaf = MerkleHashing.leaf(Array(inclusion.record.utf8))
        #expect(Data(leaf).base64EncodedString() == inclusion.leafHash)
        let proof = inclusion.proof.map { Array(Data(base64Encoded: $0)!) }
        #expect(MerkleProof.verifyInclusion(leafHash: leaf, index: 7, size: 20, proof: proof, root: first.rootHash))
        #expect(try Self.checkpoint(inclusion.checkpoint, key: log.verifierKey) == first)

        for number in 20..<31 { _ = try await log.append(Self.record(requestID: "r\(number)")) }
        // Record 25 is not covered by the latest checkpoint: one is signed for the proof.
        let later = try await log.inclusionProof(seq: 25, treeSize: nil)
        #expect(later.treeSize == 31)
        let second = try Self.checkpoint(later.checkpoint, key: log.verifierKey)
        #expect(
            MerkleProof.verifyInclusion(
                leafHash: MerkleHashing.leaf(Array(later.record.utf8)), index: 25, size: 31,
                proof: later.proof.map { Array(Data(base64Encoded: $0)!) }, root: second.rootHash))
        // Against the older signed size when asked.
        #expect(try await log.inclusionProof(seq: 7, treeSize: 20).treeSize == 20)

        let consistency = try await log.consistencyProof(from: 20, to: nil)
        #expect(consistency.to == 31)
        #expect(
            MerkleProof.verifyConsistency(
                from: 20, to: 31, root1: first.rootHash, root2: second.rootHash,
                proof: consistency.proof.map { Array(Data(base64Encoded: $0)!) }))
        await #expect(throws: AuditError.self) { _ = try await log.consistencyProof(from: 13, to: nil) }
        await #expect(throws: AuditError.self) { _ = try await log.inclusionProof(seq: 31, treeSize: nil) }
        await log.close()
    }

    @Test(arguments: [false, true]) func pruneRemovesOldSegmentsLeavesASignedRecordAndReopens(archive: Bool) async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let settings = Self.settings(segmentBytes: 4096)
        let padding = String(repeating: "x", count: 300)
        let log = try await Self.open(directory, settings)
        let old = AuditTime.format(Date(timeIntervalSince1970: 1_600_000_000))
        for number in 0..<40 { _ = try await log.append(Self.record(tenant: "old", requestID: "r\(number)", time: old, detail: padding)) }
        for number in 40..<50 {
            _ = try await log.append(Self.record(tenant: "new", requestID: "r\(number)", time: AuditTime.format(Date()), detail: padding))
        }
        let before = try Self.segmentNames(directory)
        let linesBefore = try Self.lines(directory)
        let summary = try await log.prune(before: 1_700_000_000, archive: archive, actor: "ops")
        #expect(!summary.removedSegments.isEmpty)
        let removedThrough = try #require(summary.removedThrough)
        #expect(summary.removedSegments == Array(before.prefix(summary.removedSegments.count)))
        #expect(AuditFiles.firstSeq(ofSegment: before[summary.removedSegments.count]) == removedThrough + 1)
        let remaining = try Self.segmentNames(directory)
        // Every later segment stays (plus a new one if the retention record rolled over).
        #expect(Array(remaining.prefix(before.count - summary.removedSegments.count)) == Array(before.dropFirst(summary.removedSegments.count)))
        for name in summary.removedSegments {
            #expect(!FileManager.default.fileExists(atPath: directory + "/" + name))
            #expect(FileManager.default.fileExists(atPath: directory + "/" + AuditFiles.archive + "/" + name) == archive)
        }
        // The retention record, durable and covered by a signed checkpoint.
        let recordSeq = try #require(summary.recordSeq)
        #expect(recordSeq == 50)
        let retention = try AuditRecord.decode(line: Array(try #require(try await log.search(AuditQuery(kind: .retention)).first).utf8))
        #expect(retention.actor == "ops")
        #expect(retention.removedThrough == removedThrough)
        #expect(retention.removedSegments == summary.removedSegments)
        var prefix = MerkleTree()
        for line in linesBefore.prefix(removedThrough + 1) { prefix.append(leafHash: MerkleHashing.leaf(line)) }
        #expect(retention.frontier == prefix.frontier.map { Data($0).base64EncodedString() })
        #expect(try Self.checkpoint(try #require(summary.checkpoint), key: log.verifierKey).size == 51)
        // The index forgot the removed records.
        let oldRows = try await log.search(AuditQuery(tenant: "old"))
        #expect(try oldRows.allSatisfy { try AuditRecord.decode(line: Array($0.utf8)).seq > removedThrough })
        let rootBefore = try Self.checkpoint(try #require(summary.checkpoint), key: log.verifierKey).rootHash
        await log.close()

        // Reopening restarts the tree from the retention record's frontier.
        let reopened = try await Self.open(directory, settings)
        #expect(reopened.treeSize == 51)
        let seq = try await reopened.append(Self.record(tenant: "new", requestID: "after"))
        #expect(seq == 51)
        let proof = try await reopened.inclusionProof(seq: seq, treeSize: nil)
        let checkpoint = try Self.checkpoint(proof.checkpoint, key: reopened.verifierKey)
        #expect(
            MerkleProof.verifyInclusion(
                leafHash: MerkleHashing.leaf(Array(proof.record.utf8)), index: seq, size: checkpoint.size,
                proof: proof.proof.map { Array(Data(base64Encoded: $0)!) }, root: checkpoint.rootHash))
        let consistency = try await reopened.consistencyProof(from: 51, to: checkpoint.size)
        #expect(
            MerkleProof.verifyConsistency(
                from: 51, to: checkpoint.size, root1: rootBefore, root2: checkpoint.rootHash,
                proof: consistency.proof.map { Array(Data(base64Encoded: $0)!) }))
        await #expect(throws: AuditError.self) { _ = try await reopened.inclusionProof(seq: 0, treeSize: nil) }
        #expect(try await reopened.prune(before: 1_700_000_000, archive: archive, actor: "ops").removedThrough == nil)
        await reopened.close()
    }

    @Test func anInterruptedPruneIsFinishedWhenTheLogOpens() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let settings = Self.settings(segmentBytes: 4096)
        let padding = String(repeating: "x", count: 300)
        let log = try await Self.open(directory, settings)
        let old = AuditTime.format(Date(timeIntervalSince1970: 1_600_000_000))
        for _ in 0..<40 { _ = try await log.append(Self.record(time: old, detail: padding)) }
        _ = try await log.append(Self.record(time: AuditTime.format(Date()), detail: padding))
        let before = try Self.segmentNames(directory)
        let lines = try Self.lines(directory)
        let summary = try await log.prune(before: 1_700_000_000, archive: false, actor: "ops")
        await log.close()
        #expect(summary.removedSegments.count >= 2)
        // Put the last removed segment back, as if the crash came before its removal.
        let restored = try #require(summary.removedSegments.last)
        let restoredIndex = try #require(before.firstIndex(of: restored))
        let first = AuditFiles.firstSeq(ofSegment: restored)!
        let next = AuditFiles.firstSeq(ofSegment: before[restoredIndex + 1])!
        try Data(lines[first..<next].flatMap { $0 + [0x0A] }).write(to: URL(fileURLWithPath: directory + "/" + restored))
        let reopened = try await Self.open(directory, settings)
        #expect(!FileManager.default.fileExists(atPath: directory + "/" + restored))
        #expect(reopened.treeSize == 42)
        await reopened.close()
    }

    @Test func recordTimesFormatAndParse() {
        let date = Date(timeIntervalSince1970: 1_796_630_400.123)
        #expect(AuditTime.format(date) == "2026-12-07T08:00:00.123Z")
        #expect(AuditTime.unixSeconds("2026-12-07T08:00:00.123Z").map { ($0 * 1000).rounded() } == 1_796_630_400_123)
        #expect(AuditTime.unixSeconds("2026-12-07T09:00:00+01:00") == 1_796_630_400)
        #expect(AuditTime.unixSeconds("2026-12-07 08:00:00Z") == nil)
        #expect(AuditTime.unixSeconds("2026-13-07T08:00:00Z") == nil)
    }
}
