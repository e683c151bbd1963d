import Crypto
import Foundation
import ProximaAudit
import Testing

/// Logs written by hand (20 records in segments of 8, checkpoints at 8, 16 and 20), then tampered
/// with in each way an operator with file access could: the verifier names the kind, the record and
/// its place.
@Suite struct AuditVerifierTests {
    static func clean() throws -> TestLog { try TestLog.make(records: 20, checkpointsAt: [8, 16, 20]) }

    /// The problems about records (not about checkpoints).
    static func recordProblems(_ report: AuditVerification) -> [AuditProblem] {
        report.problems.filter { [.changed, .removed, .reordered, .inserted].contains($0.kind) }
    }

    @Test func aCleanLogPasses() throws {
        let report = try Self.clean().verify()
        #expect(report.problems == [])
        #expect(report.isValid)
        #expect(report.origin == "proxima.test/audit/eu-1")
        #expect(report.records == 20)
        #expect(report.checkpointsVerified == 3)
        #expect(report.verifiedSize == 20)
        #expect(report.notes == [])
    }

    @Test func recordsAfterTheLastCheckpointAreANoteUnlessCoverageIsRequired() throws {
        var log = try Self.clean()
        try log.append(TestLog.request(seq: 20))
        let report = try log.verify()
        #expect(report.problems == [])
        #expect(report.notes == ["records 20...20 are after the last verified checkpoint"])
        let directory = try log.write()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let strict = try AuditVerifier.verify(
            directory: directory, keys: [NoteVerifier(verifierKey: log.signer.verifierKey)], options: .init(requireCoverage: true))
        #expect(strict.problems.map(\.kind) == [.inconsistent])
        #expect(strict.problems.first?.seq == 20)
    }

    @Test func aChangedByteInTheMiddleIsThatRecord() throws {
        var log = try Self.clean()
        var line = log.line(10)
        let text = String(decoding: line, as: UTF8.self)
        line = Array(text.replacingOccurrences(of: "\"acme\"", with: "\"acmf\"").utf8)
        #expect(line != log.line(10))
        log.replace(10, with: line)
        let report = try log.verify()
        #expect(Self.recordProblems(report) == [
            AuditProblem(
                kind: .changed, seq: 10, location: "segment-000000000008.log:3", detail: "record 11 names another hash for it (its bytes were changed)")
        ])
        // The checkpoints covering it no longer match; the one before still does.
        #expect(report.problems.filter { $0.kind == .inconsistent }.count == 2)
        #expect(report.verifiedSize == 8)
    }

    @Test func aChangedByteThatBreaksTheJSONIsThatRecord() throws {
        var log = try Self.clean()
        var line = log.line(5)
        line[0] = UInt8(ascii: "[")
        log.replace(5, with: line)
        let report = try log.verify()
        #expect(Self.recordProblems(report).map { [$0.kind.rawValue, "\($0.seq ?? -1)", $0.location ?? ""] } == [["changed", "5", "segment-000000000000.log:6"]])
    }

    @Test func aRemovedRecordIsNamed() throws {
        var log = try Self.clean()
        log.remove(10)
        let report = try log.verify()
        let problems = Self.recordProblems(report)
        #expect(problems.map(\.kind) == [.removed])
        #expect(problems.first?.seq == 10)
        #expect(problems.first?.location == "segment-000000000008.log:3")
    }

    @Test func swappedRecordsAreReordered() throws {
        var log = try Self.clean()
        let ten = log.position(of: 10)!
        let eleven = log.position(of: 11)!
        log.segments[ten.segment].lines.swapAt(ten.line, eleven.line)
        let report = try log.verify()
        let problems = Self.recordProblems(report)
        #expect(problems.map(\.kind) == [.reordered])
        #expect(problems.first?.seq == 11)
        #expect(problems.first?.location == "segment-000000000008.log:3")
    }

    @Test func aRecordMovedFarLaterIsReorderedOnce() throws {
        var log = try Self.clean()
        let three = log.line(3)
        log.remove(3)
        log.insert(three, after: 13)
        let problems = Self.recordProblems(try log.verify())
        #expect(problems.map(\.kind) == [.reordered])
        #expect(problems.first?.seq == 3)
        #expect(problems.first?.location == "segment-000000000008.log:7")
    }

    /// A forged record with a plausible seq and prev (the next seq, the real predecessor's hash),
    /// placed before or after the real record with that seq.
    @Test func aForgedRecordIsInserted() throws {
        for before in [true, false] {
            var log = try Self.clean()
            var forged = TestLog.request(seq: 11)
            forged.seq = 11
            forged.tenant = "mallory"
            forged.prev = TestLog.hex(MerkleHashing.leaf(log.line(10)))
            log.insert(try forged.encodedLine(), after: before ? 10 : 11)
            let report = try log.verify()
            let problems = Self.recordProblems(report)
            #expect(problems.map(\.kind) == [.inserted], "\(report.problems)")
            #expect(problems.first?.seq == 11)
            #expect(problems.first?.location == (before ? "segment-000000000008.log:4" : "segment-000000000008.log:5"))
        }
    }

    @Test func aForgedRecordWithASeqBeyondTheLogIsInserted() throws {
        var log = try Self.clean()
        var forged = TestLog.request(seq: 1000)
        forged.seq = 1000
        forged.prev = TestLog.hex(MerkleHashing.leaf(log.line(10)))
        log.insert(try forged.encodedLine(), after: 10)
        let problems = Self.recordProblems(try log.verify())
        #expect(problems.map(\.kind) == [.inserted])
        #expect(problems.first?.seq == 1000)
        #expect(problems.first?.location == "segment-000000000008.log:4")
    }

    @Test func aTruncatedLastRecordIsFound() throws {
        // Cut short mid-line: the torn line is the record the last checkpoint covers.
        let log = try Self.clean()
        let torn = try log.verify(tornTail: 7)
        #expect(Self.recordProblems(torn).map(\.kind) == [.changed])
        #expect(Self.recordProblems(torn).first?.seq == 19)
        #expect(Self.recordProblems(torn).first?.location == "segment-000000000016.log:4")
        // The whole line gone.
        var removed = log
        removed.remove(19)
        let report = try removed.verify()
        #expect(Self.recordProblems(report).map(\.kind) == [.removed])
        #expect(Self.recordProblems(report).first?.seq == 19)
        #expect(report.verifiedSize == 16)
    }

    @Test func aTornLineNoCheckpointCoversIsANote() throws {
        var log = try Self.clean()
        try log.append(TestLog.request(seq: 20))
        let report = try log.verify(tornTail: 3)
        #expect(report.problems == [])
        #expect(report.records == 20)
        #expect(report.notes.contains { $0.hasPrefix("segment-000000000016.log:5: a torn last line") })
    }

    @Test func theLastRecordChangedIsFoundByTheCheckpoint() throws {
        var log = try Self.clean()
        let line = Array(String(decoding: log.line(19), as: UTF8.self).replacingOccurrences(of: "\"acme\"", with: "\"acmx\"").utf8)
        log.replace(19, with: line)
        let report = try log.verify()
        #expect(Self.recordProblems(report).map(\.kind) == [.changed])
        #expect(Self.recordProblems(report).first?.seq == 19)
        #expect(Self.recordProblems(report).first?.location == "segment-000000000016.log:4")
        #expect(report.verifiedSize == 16)
    }

    @Test func aCheckpointWithAChangedRootHasABadSignature() throws {
        var log = try Self.clean()
        let note = log.checkpoints[1]
        let body = try SignedNote(parsing: Array(note.utf8)).body
        var checkpoint = try Checkpoint.parse(body: body)
        checkpoint.rootHash[0] ^= 1
        log.checkpoints[1] = note.replacingOccurrences(of: body, with: checkpoint.body)
        let report = try log.verify()
        #expect(report.problems.map(\.kind) == [.badSignature])
        #expect(report.problems.first?.location == "checkpoints.log:2")
        #expect(report.checkpointsVerified == 2)
    }

    @Test func aCheckpointSignedWithTheRightKeyButAWrongRootIsInconsistent() throws {
        var log = try Self.clean()
        try log.checkpoint(root: Array(repeating: 3, count: 32), size: 12)
        let report = try log.verify()
        #expect(report.problems.map(\.kind) == [.inconsistent, .inconsistent], "\(report.problems)")
        #expect(report.problems.contains { $0.location == "checkpoints.log:4" && $0.detail.contains("shrank") })
    }

    @Test func aCheckpointForgedWithAnotherKeyIsRefused() throws {
        var log = try Self.clean()
        let forger = try NoteSigner(name: log.origin, privateKey: Curve25519.Signing.PrivateKey())
        try log.checkpoint(by: forger)
        let report = try log.verify()
        #expect(report.problems.map(\.kind) == [.badSignature])
        #expect(report.problems.first?.location == "checkpoints.log:4")
        // Without the log's key at all.
        let other = try NoteSigner(name: "other.example", privateKey: Curve25519.Signing.PrivateKey())
        let unkeyed = try Self.clean().verify(keys: [NoteVerifier(verifierKey: other.verifierKey)])
        #expect(unkeyed.problems.count == 3)
        #expect(unkeyed.problems.allSatisfy { $0.kind == .badSignature })
        #expect(unkeyed.verifiedSize == 0)
    }

    /// The last checkpoint line deleted leaves no trace in the directory: a checkpoint the auditor
    /// kept shows it, and so does asking that a closed log's records all be covered.
    @Test func aDeletedLastCheckpointIsFoundWithAKnownCheckpoint() throws {
        var log = try Self.clean()
        let last = log.checkpoints.removeLast()
        let report = try log.verify()
        #expect(report.problems == [])
        #expect(report.verifiedSize == 16)
        let directory = try log.write()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keys = [try NoteVerifier(verifierKey: log.signer.verifierKey)]
        let known = try AuditVerifier.verify(directory: directory, keys: keys, options: .init(knownCheckpoints: [last]))
        #expect(known.problems.map(\.kind) == [.removed])
        #expect(known.problems.first?.location == "checkpoints.log")
        let covered = try AuditVerifier.verify(directory: directory, keys: keys, options: .init(requireCoverage: true))
        #expect(covered.problems.map(\.kind) == [.inconsistent])
        #expect(covered.problems.first?.seq == 16)
    }

    /// Record 10 removed and every later seq and prev rewritten to match: the chain is whole again,
    /// but the signed root at 16 is not, and the range since the last good checkpoint is named.
    @Test func aConsistentRewriteIsInconsistentWithTheCheckpoint() throws {
        let original = try Self.clean()
        var rewritten = try TestLog(origin: original.origin)
        rewritten.signer = original.signer
        for seq in 0..<20 where seq != 10 {
            var record = try AuditRecord.decode(line: original.line(seq))
            record.seq = 0
            try rewritten.append(record)
        }
        rewritten.checkpoints = original.checkpoints
        let report = try rewritten.verify()
        #expect(report.problems.filter { $0.kind != .inconsistent }.map(\.kind) == [.removed])  // the files end before checkpoint 20
        let inconsistent = report.problems.filter { $0.kind == .inconsistent }
        #expect(inconsistent.count == 1)
        #expect(inconsistent.first?.seq == 8)
        #expect(inconsistent.first?.location == "checkpoints.log:2")
        #expect(inconsistent.first?.detail.contains("records 8...15") == true)
        #expect(report.verifiedSize == 8)
    }

    /// Segment 0 pruned after a retention record (appended at the end, with the frontier of
    /// records 0...7) and a checkpoint covering it: the tree continues from the frontier, the kept
    /// checkpoint at 8 matches the frontier's root.
    @Test func aPrunedLogContinuesFromItsRetentionRecord() throws {
        var log = try TestLog.make(records: 20, checkpointsAt: [8, 16, 20])
        var retention = AuditRecord(kind: .retention, time: "2026-12-07T09:00:00.000Z")
        retention.removedThrough = 7
        retention.removedSegments = [AuditFiles.segmentName(firstSeq: 0)]
        retention.frontier = try log.tree.frontier(size: 8).map { Data($0).base64EncodedString() }
        try log.append(retention)
        try log.checkpoint()
        log.segments.removeFirst()
        let report = try log.verify()
        #expect(report.problems == [], "\(report.problems)")
        #expect(report.records == 13)
        #expect(report.checkpointsVerified == 4)
        #expect(report.verifiedSize == 21)

        // A frontier forged for the kept records: the checkpoint at 8 and the later ones disagree.
        var forged = log
        var bad = retention
        bad.seq = 20
        bad.prev = TestLog.hex(MerkleHashing.leaf(log.line(19)))
        bad.frontier = [Data(Array(repeating: 1, count: 32)).base64EncodedString()]
        forged.replace(20, with: try bad.encodedLine())
        let forgedReport = try forged.verify()
        #expect(forgedReport.problems.contains { $0.kind == .inconsistent && $0.location == "checkpoints.log:1" }, "\(forgedReport.problems)")
        #expect(forgedReport.verifiedSize == 0)

        // Pruned on the word of a retention record no checkpoint signed (appended by whoever
        // deleted the segment, with the genuine frontier).
        var unsigned = log
        unsigned.checkpoints.removeLast()
        let unsignedReport = try unsigned.verify()
        #expect(unsignedReport.problems.map(\.kind) == [.removed])
        #expect(unsignedReport.problems.first?.seq == 0)
        #expect(unsignedReport.problems.first?.location == "segment-000000000016.log:5")

        // Pruned without a retention record.
        var unexplained = try TestLog.make(records: 20, checkpointsAt: [8, 16, 20])
        unexplained.segments.removeFirst()
        let missing = try unexplained.verify()
        #expect(missing.problems.map(\.kind) == [.removed])
        #expect(missing.problems.first?.seq == 0)
    }

    /// One report per replica, each checked with the key named after its own origin.
    @Test func aSetOfReplicasIsVerifiedEachWithItsKey() throws {
        let eu = try TestLog.make(records: 12, checkpointsAt: [12], origin: "proxima.test/audit/eu-1")
        var us = try TestLog.make(records: 9, checkpointsAt: [4, 9], origin: "proxima.test/audit/us-1")
        let keys = try [eu, us].map { try NoteVerifier(verifierKey: $0.signer.verifierKey) }
        let clean = try [eu, us].map { try $0.write() }
        let reports = AuditVerifier.verify(directories: clean + ["/nonexistent/audit"], keys: keys)
        #expect(reports.map(\.origin) == ["proxima.test/audit/eu-1", "proxima.test/audit/us-1", nil])
        #expect(reports.map(\.verifiedSize) == [12, 9, 0])
        #expect(reports[0].isValid && reports[1].isValid && !reports[2].isValid)
        us.remove(2)
        let tampered = try us.write()
        let again = AuditVerifier.verify(directories: [clean[0], tampered], keys: keys)
        #expect(again[0].isValid)
        #expect(Self.recordProblems(again[1]).map(\.seq) == [2])
        for directory in clean + [tampered] { try? FileManager.default.removeItem(atPath: directory) }
    }
}
