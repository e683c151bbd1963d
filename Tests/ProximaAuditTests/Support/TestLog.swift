import Crypto
import Foundation
import ProximaAudit

/// A log directory written by hand for the verifier's tests: records chained by seq and prev, split
/// into segments, and signed checkpoints at chosen sizes, held in memory so a test can tamper with
/// them before writing the files.
struct TestLog {
    var origin: String
    var signer: NoteSigner
    /// Segment first seq (from its name) and its lines, each without its newline.
    var segments: [(firstSeq: Int, lines: [[UInt8]])] = []
    /// The signed notes of `checkpoints.log`, in order.
    var checkpoints: [String] = []
    /// The tree over every record appended (before tampering).
    var tree = MerkleTree()
    var segmentRecords: Int
    /// The last record's leaf hash, for the next record's prev.
    private var lastHash: MerkleHash?

    init(origin: String = "proxima.test/audit/eu-1", segmentRecords: Int = 8) throws {
        self.origin = origin
        self.signer = try NoteSigner(name: origin, privateKey: Curve25519.Signing.PrivateKey())
        self.segmentRecords = segmentRecords
    }

    /// A log of `records` request records with a checkpoint after each size in `checkpointsAt`.
    static func make(records: Int, checkpointsAt: [Int], origin: String = "proxima.test/audit/eu-1") throws -> TestLog {
        var log = try TestLog(origin: origin)
        for seq in 0..<records {
            try log.append(Self.request(seq: seq))
            if checkpointsAt.contains(seq + 1) { try log.checkpoint() }
        }
        return log
    }

    static func request(seq: Int) -> AuditRecord {
        var record = AuditRecord(kind: .request, time: "2026-12-07T08:00:\(String(format: "%02d", seq % 60)).000Z")
        record.requestID = "req-\(seq)"
        record.tenant = "acme"
        record.model = "llama-3.1-8b"
        record.status = 200
        return record
    }

    static func hex(_ hash: MerkleHash) -> String { hash.map { String(format: "%02x", $0) }.joined() }

    var size: Int { tree.size }

    /// Appends a record as the log would: seq and prev assigned, a new segment every
    /// `segmentRecords` records.
    mutating func append(_ record: AuditRecord) throws {
        var record = record
        record.seq = tree.size
        record.prev = lastHash.map(Self.hex) ?? ""
        let line = try record.encodedLine()
        if segments.isEmpty || segments[segments.count - 1].lines.count >= segmentRecords {
            segments.append((tree.size, []))
        }
        segments[segments.count - 1].lines.append(line)
        let hash = MerkleHashing.leaf(line)
        tree.append(leafHash: hash)
        lastHash = hash
    }

    /// Signs a checkpoint at the current size (or another signer's, or a given root).
    mutating func checkpoint(by other: NoteSigner? = nil, root: MerkleHash? = nil, size: Int? = nil) throws {
        let size = size ?? tree.size
        let body = Checkpoint(origin: origin, size: size, rootHash: try root ?? tree.root(size: size)).body
        checkpoints.append(try (other ?? signer).sign(body))
    }

    /// Where record `seq` is now: segment and line index.
    func position(of seq: Int) -> (segment: Int, line: Int)? {
        for (segmentIndex, segment) in segments.enumerated() {
            for (lineIndex, line) in segment.lines.enumerated() where (try? AuditRecord.decode(line: line))?.seq == seq {
                return (segmentIndex, lineIndex)
            }
        }
        return nil
    }

    func line(_ seq: Int) -> [UInt8] {
        let at = position(of: seq)!
        return segments[at.segment].lines[at.line]
    }

    mutating func replace(_ seq: Int, with line: [UInt8]) {
        let at = position(of: seq)!
        segments[at.segment].lines[at.line] = line
    }

    mutating func remove(_ seq: Int) {
        let at = position(of: seq)!
        segments[at.segment].lines.remove(at: at.line)
    }

    mutating func insert(_ line: [UInt8], after seq: Int) {
        let at = position(of: seq)!
        segments[at.segment].lines.insert(line, at: at.line + 1)
    }

    /// Writes the files into a new temporary directory; `tornTail` bytes are cut from the end of the
    /// last segment (its newline first).
    func write(tornTail: Int = 0) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("audit-verify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (index, segment) in segments.enumerated() {
            var bytes = segment.lines.flatMap { $0 + [UInt8(ascii: "\n")] }
            if index == segments.count - 1 { bytes.removeLast(min(tornTail, bytes.count)) }
            try Data(bytes).write(to: directory.appendingPathComponent(AuditFiles.segmentName(firstSeq: segment.firstSeq)))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let lines = try checkpoints.map { String(decoding: try encoder.encode($0), as: UTF8.self) + "\n" }.joined()
        try Data(lines.utf8).write(to: directory.appendingPathComponent(AuditFiles.checkpoints))
        return directory.path
    }

    func verify(tornTail: Int = 0, keys: [NoteVerifier]? = nil) throws -> AuditVerification {
        let directory = try write(tornTail: tornTail)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try AuditVerifier.verify(directory: directory, keys: keys ?? [NoteVerifier(verifierKey: signer.verifierKey)])
    }
}
