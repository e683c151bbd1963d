import Foundation
import ProximaCore

/// What `proxima audit verify` found wrong in a log.
public struct AuditProblem: Sendable, Equatable, Encodable, CustomStringConvertible {
    public enum Kind: String, Sendable, Encodable {
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

    enum CodingKeys: String, CodingKey {
        case kind, seq, location, detail
    }

    public var description: String {
        "\(kind.rawValue)\(seq.map { " record \($0)" } ?? "")\(location.map { " at \($0)" } ?? ""): \(detail)"
    }
}

/// The verifier's report on one log directory (as JSON: snake_case keys, `valid` added).
public struct AuditVerification: Sendable, Encodable {
    public var origin: String?
    public var records: Int
    public var checkpointsVerified: Int
    /// The largest tree size a verified checkpoint covers.
    public var verifiedSize: Int
    public var problems: [AuditProblem]
    /// The directory verified.
    public var directory: String?
    /// What is not wrong but worth saying: a torn last line no checkpoint covers (a crash mid-write,
    /// cut off when the log is opened again), records after the last checkpoint.
    public var notes: [String]

    public init(
        origin: String?, records: Int, checkpointsVerified: Int, verifiedSize: Int, problems: [AuditProblem], directory: String? = nil,
        notes: [String] = []
    ) {
        self.origin = origin
        self.records = records
        self.checkpointsVerified = checkpointsVerified
        self.verifiedSize = verifiedSize
        self.problems = problems
        self.directory = directory
        self.notes = notes
    }

    public var isValid: Bool { problems.isEmpty }

    enum CodingKeys: String, CodingKey {
        case directory, origin, valid, records, checkpointsVerified = "checkpoints_verified", verifiedSize = "verified_size", problems, notes
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(directory, forKey: .directory)
        try container.encode(origin, forKey: .origin)
        try container.encode(isValid, forKey: .valid)
        try container.encode(records, forKey: .records)
        try container.encode(checkpointsVerified, forKey: .checkpointsVerified)
        try container.encode(verifiedSize, forKey: .verifiedSize)
        try container.encode(problems, forKey: .problems)
        try container.encode(notes, forKey: .notes)
    }
}

/// Recomputes a log from its files and checks it against its signed checkpoints (offline: nothing
/// but the files and the public keys).
///
/// What is checked, in order:
/// 1. The segments, in the order of the first seq in their names: every whole line is a leaf (its
///    exact bytes); a last line without its newline is torn and not counted (as the log does when
///    it opens), which is a problem only when a checkpoint covers it.
/// 2. The chain: each record's `seq` follows the previous one and its `prev` is the hex of the
///    previous line's leaf hash (`""` for seq 0). A break says exactly what happened: a record whose
///    successor names another hash was `changed`; a gap in the seqs is `removed` records; a record
///    found later (or earlier) than its place is `reordered`; a second record with a seq already
///    seen, that nothing links to, is `inserted`.
/// 3. The checkpoints (`checkpoints.log`): each is opened with the key named after the log's origin
///    (the first checkpoint's origin, which must be the same in all); its root must equal the
///    recomputed root at its size; successive checkpoints must only grow, and a consistency proof
///    between their sizes must verify against both signed roots. A root that differs while the
///    chain shows nothing means the records between the last good checkpoint and this one were
///    rewritten consistently (seq and prev included): that range is reported.
///
/// Retention: when the first segment does not start at seq 0, the records before it were pruned.
/// The log appends a `retention` record (`removed_through`, `frontier`) before it deletes segments,
/// so that record is somewhere in the remaining files (normally near the end). The verifier uses
/// the LAST retention record whose `removed_through + 1` equals the first remaining seq: its
/// frontier (the perfect-subtree roots of the pruned prefix) continues the tree, so every checkpoint
/// at or beyond that size is checked as usual, and a kept checkpoint exactly at that size must
/// equal the frontier's root. Checkpoints inside the pruned prefix are checked for their signature
/// only. No such retention record: the missing prefix is reported as `removed` and the roots
/// cannot be checked. A retention record whose prefix is still in the files (the segments not yet
/// deleted) has its frontier checked against the recomputed tree. The retention record used must be
/// covered by a verified checkpoint (the log signs one before deleting anything): an unsigned one,
/// which anyone with the files could append, leaves the pruned records `removed`.
public enum AuditVerifier {
    /// Verifies the log in `directory` with the given verifier keys (one per replica; the log's
    /// origin picks its key).
    public static func verify(directory: String, keys: [NoteVerifier], options: Options = Options()) throws -> AuditVerification {
        var run = Run(directory: directory, keys: keys, options: options)
        try run.verify()
        return AuditVerification(
            origin: run.origin, records: run.lines.count, checkpointsVerified: run.checkpointsVerified, verifiedSize: run.verifiedSize,
            problems: run.problems, directory: directory, notes: run.notes)
    }

    /// Verifies a set of logs (one per replica, each with its own origin and key): one report per
    /// directory, in order. A directory that cannot be read gets a report with that problem.
    public static func verify(directories: [String], keys: [NoteVerifier], options: Options = Options()) -> [AuditVerification] {
        directories.map { directory in
            do {
                return try verify(directory: directory, keys: keys, options: options)
            } catch {
                return AuditVerification(
                    origin: nil, records: 0, checkpointsVerified: 0, verifiedSize: 0,
                    problems: [AuditProblem(kind: .malformed, location: directory, detail: "cannot read the log: \(error)")],
                    directory: directory)
            }
        }
    }
}

extension AuditVerifier {
    /// Lower-case hex, as `prev` holds a leaf hash (one string per record: no formatter per byte).
    static func hex(_ bytes: [UInt8]) -> String { Hex.lowercase(bytes) }

    /// What the files alone cannot prove: the last checkpoint line can be deleted without a trace in
    /// the directory, so an auditor who kept a checkpoint (from an earlier run, the admin API or
    /// another replica) passes it here, or asks that every record be covered.
    public struct Options: Sendable {
        /// Signed checkpoints known from elsewhere: each must be in `checkpoints.log` (else
        /// `removed`) and match the records like the file's own.
        public var knownCheckpoints: [String]
        /// Records after the last verified checkpoint are a problem (`inconsistent`), not a note:
        /// for a log that was closed (closing signs a checkpoint covering every record).
        public var requireCoverage: Bool

        public init(knownCheckpoints: [String] = [], requireCoverage: Bool = false) {
            self.knownCheckpoints = knownCheckpoints
            self.requireCoverage = requireCoverage
        }
    }

    /// One line of a segment, as read.
    struct Line {
        var location: String
        var hash: MerkleHash
        /// Nil when the line is not a record.
        var record: Fields?
    }

    /// What the checks need of a record (the rest is dropped once the line decodes, so a large log
    /// costs a few dozen bytes per record).
    struct Fields {
        var seq: Int
        var prev: String
        var kind: AuditRecord.Kind
        var removedThrough: Int?
        var frontier: [String]?

        /// Seqs beyond this are not a log's (and would overflow the arithmetic on them).
        static let maxSeq = 1 << 52

        init?(line: some Collection<UInt8>) {
            guard let record = try? AuditRecord.decode(line: line), (0...Self.maxSeq).contains(record.seq),
                record.removedThrough.map({ (0...Self.maxSeq).contains($0) }) ?? true
            else { return nil }
            seq = record.seq
            prev = record.prev
            kind = record.kind
            removedThrough = record.removedThrough
            frontier = record.kind == .retention ? record.frontier : nil
        }
    }

    struct SignedCheckpoint {
        var location: String
        var checkpoint: Checkpoint
    }

    struct Run {
        let directory: String
        let keys: [NoteVerifier]
        let options: Options
        var lines: [Line] = []
        /// The seq of the first line in the files.
        var firstSeq = 0
        /// A torn last line: its location.
        var torn: String?
        var problems: [AuditProblem] = []
        var notes: [String] = []
        var origin: String?
        /// The retention record the tree continues from (its seq and place).
        var retention: (seq: Int, location: String)?
        var checkpointsVerified = 0
        var verifiedSize = 0

        init(directory: String, keys: [NoteVerifier], options: Options) {
            self.directory = directory
            self.keys = keys
            self.options = options
        }

        mutating func verify() throws {
            try readSegments()
            checkChain()
            let tree = buildTree()
            let checkpoints = readCheckpoints()
            checkCheckpoints(checkpoints, tree: tree)
            checkKnown(checkpoints, tree: tree)
        }

        /// Checkpoints the auditor kept: each must still be in the file.
        mutating func checkKnown(_ checkpoints: [SignedCheckpoint], tree: MerkleTree?) {
            for (index, note) in options.knownCheckpoints.enumerated() {
                let location = "known checkpoint \(index + 1)"
                let name = origin ?? (try? SignedNote(parsing: Array(note.utf8))).flatMap { try? Checkpoint.parse(body: $0.body).origin }
                guard let verifier = keys.first(where: { $0.name == name }) else {
                    problems.append(AuditProblem(kind: .badSignature, location: location, detail: "no verifier key for this log's origin"))
                    continue
                }
                let known: Checkpoint
                do {
                    known = try Checkpoint.parse(body: try verifier.open(note))
                } catch {
                    problems.append(AuditProblem(kind: .badSignature, location: location, detail: "\(error)"))
                    continue
                }
                if checkpoints.contains(where: { $0.checkpoint.size == known.size && $0.checkpoint.rootHash == known.rootHash }) { continue }
                problems.append(
                    AuditProblem(
                        kind: .removed, location: AuditFiles.checkpoints,
                        detail: "the \(location) (\(known.size) records) is not in \(AuditFiles.checkpoints)"))
                let available = firstSeq + lines.count
                if known.size > available {
                    problems.append(
                        AuditProblem(
                            kind: .removed, seq: available, location: lines.last?.location,
                            detail: "records \(available)...\(known.size - 1) are missing: the \(location) covers \(known.size) records"))
                } else if known.size >= firstSeq, let tree, let root = try? tree.root(size: known.size), root != known.rootHash {
                    problems.append(
                        AuditProblem(
                            kind: .inconsistent, location: location, detail: "the root for \(known.size) records differs from the recomputed one"))
                }
            }
        }

        // MARK: segments

        mutating func readSegments() throws {
            let names = try FileManager.default.contentsOfDirectory(atPath: directory)
                .compactMap { name in AuditFiles.firstSeq(ofSegment: name).map { (name, $0) } }
                .sorted { $0.1 < $1.1 }
            firstSeq = names.first?.1 ?? 0
            for (fileIndex, (name, _)) in names.enumerated() {
                let data = try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(name))
                let bytes = [UInt8](data)
                var pieces = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
                let last = pieces.removeLast()  // after the final newline: empty unless the line is torn
                if !last.isEmpty {
                    let location = "\(name):\(pieces.count + 1)"
                    if fileIndex == names.count - 1 {
                        torn = location
                    } else {
                        problems.append(AuditProblem(kind: .malformed, location: location, detail: "a segment other than the last ends in a torn line"))
                    }
                }
                for (index, piece) in pieces.enumerated() {
                    let record = Fields(line: piece)
                    lines.append(Line(location: "\(name):\(index + 1)", hash: MerkleHashing.leaf(piece), record: record))
                }
            }
        }

        // MARK: the chain of seq and prev

        mutating func checkChain() {
            var expected = firstSeq
            var previousHash: MerkleHash?  // nil: unknown (the first line after a pruned prefix)
            var previousLine: Int?
            var handled = Set<Int>()
            var deferred: [Int: Int] = [:]  // seq -> line index, records met before their place
            var changedReported = Set<Int>()
            var index = 0
            // Where each seq occurs, for finding a record further on without scanning.
            var occurrences: [Int: [Int]] = [:]
            for (i, line) in lines.enumerated() {
                if let seq = line.record?.seq { occurrences[seq, default: []].append(i) }
            }

            func hex(_ hash: MerkleHash) -> String { AuditVerifier.hex(hash) }

            /// Takes line `i` as record `expected`, checking its prev.
            func accept(_ i: Int) {
                let line = lines[i]
                if let record = line.record {
                    if expected == 0 {
                        if record.prev != "" {
                            problems.append(AuditProblem(kind: .changed, seq: 0, location: line.location, detail: "the first record's prev is not empty"))
                        }
                    } else if let previousHash, record.prev != hex(previousHash), let previousLine {
                        let seq = expected - 1
                        if !changedReported.contains(seq) {
                            changedReported.insert(seq)
                            problems.append(
                                AuditProblem(
                                    kind: .changed, seq: seq, location: lines[previousLine].location,
                                    detail: "record \(seq + 1) names another hash for it (its bytes were changed)"))
                        }
                    }
                }
                previousHash = line.hash
                previousLine = i
                expected += 1
                // A record met before its place, now due.
                while let waiting = deferred.removeValue(forKey: expected) {
                    accept(waiting)
                }
            }

            while index < lines.count {
                defer { index += 1 }
                if handled.contains(index) { continue }
                let line = lines[index]
                guard let record = line.record else {
                    changedReported.insert(expected)
                    problems.append(AuditProblem(kind: .changed, seq: expected, location: line.location, detail: "the line is not a record"))
                    handled.insert(index)
                    accept(index)
                    continue
                }
                let seq = record.seq
                if seq == expected {
                    accept(index)
                    continue
                }
                if seq > expected {
                    // Is the expected record further on?
                    let later = occurrences[expected]?.first { $0 > index && !handled.contains($0) }
                    if let later {
                        if later == index + 1 {
                            // The next line is the expected one: this record came too early.
                            problems.append(
                                AuditProblem(
                                    kind: .reordered, seq: seq, location: line.location,
                                    detail: "record \(seq) comes before record \(expected)"))
                            deferred[seq] = index
                        } else {
                            // The expected record was moved later: take it now, then this line again.
                            problems.append(
                                AuditProblem(
                                    kind: .reordered, seq: expected, location: lines[later].location,
                                    detail: "record \(expected) comes after record \(seq)"))
                            handled.insert(later)
                            accept(later)
                            index -= 1
                        }
                        continue
                    }
                    problems.append(
                        AuditProblem(
                            kind: .removed, seq: expected, location: line.location,
                            detail: seq - expected == 1
                                ? "record \(expected) is missing (before this line)"
                                : "records \(expected)...\(seq - 1) are missing (before this line)"))
                    expected = seq
                    previousHash = nil  // its prev names a record that is gone
                    accept(index)
                    continue
                }
                // seq < expected: a seq already taken.
                if deferred[seq] == index { continue }
                // A forged record placed before the real one takes its place in the walk; the next
                // line links to the real one.
                if seq == expected - 1, let lastLine = previousLine, index + 1 < lines.count,
                    let nextPrev = lines[index + 1].record?.prev, nextPrev == hex(line.hash), nextPrev != hex(lines[lastLine].hash)
                {
                    problems.append(
                        AuditProblem(
                            kind: .inserted, seq: seq, location: lines[lastLine].location,
                            detail: "a second record \(seq) that no later record links to"))
                    previousHash = line.hash
                    previousLine = index
                    continue
                }
                problems.append(
                    AuditProblem(
                        kind: .inserted, seq: seq, location: line.location,
                        detail: "record \(seq) appears again; this copy is not the one the log linked"))
            }
            // Records met before their place whose place never came: they fit nowhere in the chain.
            for (seq, i) in deferred.sorted(by: { $0.key < $1.key }) {
                let location = lines[i].location
                problems.removeAll { $0.kind == .reordered && $0.seq == seq && $0.location == location }
                problems.append(
                    AuditProblem(
                        kind: .inserted, seq: seq, location: location, detail: "record \(seq) fits nowhere: the records end at \(expected - 1)"))
            }
        }

        // MARK: the tree

        /// The tree over the lines in file order, continued from a retention record's frontier when
        /// the files start after seq 0; nil when they do and no retention record accounts for it.
        mutating func buildTree() -> MerkleTree? {
            var tree = MerkleTree()
            let retention = lines.enumerated().filter { $0.element.record?.kind == .retention }
            if firstSeq > 0 {
                guard let (index, line) = retention.last(where: { $0.element.record?.removedThrough == firstSeq - 1 }) else {
                    problems.append(
                        AuditProblem(
                            kind: .removed, seq: 0, location: lines.first?.location,
                            detail: "records 0...\(firstSeq - 1) are not in the files and no retention record accounts for them"))
                    return nil
                }
                let frontier = (line.record?.frontier ?? []).map { Data(base64Encoded: $0).map(Array.init) ?? [] }
                self.retention = (firstSeq + index, line.location)
                do {
                    tree = try MerkleTree(prunedSize: firstSeq, frontier: frontier)
                } catch {
                    problems.append(
                        AuditProblem(
                            kind: .malformed, seq: firstSeq + index, location: line.location,
                            detail: "the retention record's frontier does not describe \(firstSeq) records: \(error)"))
                    return nil
                }
            }
            for line in lines { tree.append(leafHash: line.hash) }
            // Retention records whose prefix is still here: their frontier must be the recomputed one.
            for (index, line) in retention {
                guard let through = line.record?.removedThrough, through + 1 >= firstSeq, through + 1 <= tree.size,
                    let frontier = line.record?.frontier
                else { continue }
                let recomputed = (try? tree.frontier(size: through + 1))?.map { Data($0).base64EncodedString() }
                if recomputed != frontier {
                    problems.append(
                        AuditProblem(
                            kind: .inconsistent, seq: firstSeq + index, location: line.location,
                            detail: "the retention record's frontier is not the tree of records 0...\(through)"))
                }
            }
            return tree
        }

        // MARK: checkpoints

        mutating func readCheckpoints() -> [SignedCheckpoint] {
            let path = URL(fileURLWithPath: directory).appendingPathComponent(AuditFiles.checkpoints)
            guard let data = try? Data(contentsOf: path) else { return [] }
            var result: [SignedCheckpoint] = []
            var pieces = [UInt8](data).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            if pieces.last?.isEmpty == true { pieces.removeLast() }
            var verifier: NoteVerifier?
            for (index, piece) in pieces.enumerated() {
                let location = "\(AuditFiles.checkpoints):\(index + 1)"
                guard let note = try? JSONDecoder().decode(String.self, from: Data(piece)) else {
                    problems.append(AuditProblem(kind: .malformed, location: location, detail: "not a JSON string holding a signed note"))
                    continue
                }
                let unverified: Checkpoint
                do {
                    unverified = try Checkpoint.parse(body: try SignedNote(parsing: Array(note.utf8)).body)
                } catch {
                    problems.append(AuditProblem(kind: .malformed, location: location, detail: "not a signed checkpoint: \(error)"))
                    continue
                }
                if origin == nil {
                    origin = unverified.origin
                    verifier = keys.first { $0.name == unverified.origin }
                }
                guard unverified.origin == origin else {
                    problems.append(
                        AuditProblem(
                            kind: .badSignature, location: location,
                            detail: "a checkpoint of another log (\(unverified.origin), this log is \(origin ?? ""))"))
                    continue
                }
                guard let verifier else {
                    problems.append(AuditProblem(kind: .badSignature, location: location, detail: "no verifier key named \(unverified.origin)"))
                    continue
                }
                do {
                    let body = try verifier.open(note)
                    result.append(SignedCheckpoint(location: location, checkpoint: try Checkpoint.parse(body: body)))
                } catch {
                    problems.append(AuditProblem(kind: .badSignature, location: location, detail: "\(error)"))
                }
            }
            return result
        }

        mutating func checkCheckpoints(_ checkpoints: [SignedCheckpoint], tree: MerkleTree?) {
            let available = firstSeq + lines.count
            // The seq after the last record the files hold: beyond `available` when records in the
            // middle are gone (already reported by the chain).
            let claimedEnd = max(available, (lines.compactMap { $0.record?.seq }.max() ?? -1) + 1)
            var lastGood: SignedCheckpoint?
            var previous: SignedCheckpoint?
            var missingReported = false
            for signed in checkpoints {
                let checkpoint = signed.checkpoint
                defer { previous = signed }
                // The tree only grows.
                if let previous {
                    let before = previous.checkpoint
                    if checkpoint.size < before.size {
                        problems.append(
                            AuditProblem(
                                kind: .inconsistent, location: signed.location,
                                detail: "the tree shrank from \(before.size) (at \(previous.location)) to \(checkpoint.size)"))
                    } else if checkpoint.size == before.size, checkpoint.rootHash != before.rootHash {
                        problems.append(
                            AuditProblem(
                                kind: .inconsistent, location: signed.location,
                                detail: "two different roots for \(checkpoint.size) records (also \(previous.location))"))
                    }
                }
                if checkpoint.size < firstSeq {
                    // Inside the pruned prefix: only the signature can be checked.
                    checkpointsVerified += 1
                    continue
                }
                if checkpoint.size > available, checkpoint.size <= claimedEnd {
                    problems.append(
                        AuditProblem(
                            kind: .inconsistent, location: signed.location,
                            detail: "covers \(checkpoint.size) records, the files hold \(available) (see the records above)"))
                    continue
                }
                if checkpoint.size > available {
                    // The files end before what was signed.
                    if !missingReported {
                        missingReported = true
                        if let torn {
                            problems.append(
                                AuditProblem(
                                    kind: .changed, seq: claimedEnd, location: torn,
                                    detail: "record \(claimedEnd) is cut short, but \(signed.location) covers it"))
                        } else {
                            problems.append(
                                AuditProblem(
                                    kind: .removed, seq: claimedEnd, location: lines.last?.location,
                                    detail: checkpoint.size - claimedEnd == 1
                                        ? "record \(claimedEnd) is missing: \(signed.location) covers \(checkpoint.size) records"
                                        : "records \(claimedEnd)...\(checkpoint.size - 1) are missing: \(signed.location) covers \(checkpoint.size) records"))
                        }
                    }
                    continue
                }
                guard let tree, let root = try? tree.root(size: checkpoint.size) else { continue }
                if root != checkpoint.rootHash {
                    reportMismatch(signed, lastGood: lastGood)
                    continue
                }
                // Consistent with the last good checkpoint, by proof against both signed roots.
                if let lastGood, lastGood.checkpoint.size <= checkpoint.size, lastGood.checkpoint.size >= firstSeq {
                    let proof = (try? tree.consistencyProof(from: lastGood.checkpoint.size, to: checkpoint.size)) ?? []
                    if !MerkleProof.verifyConsistency(
                        from: lastGood.checkpoint.size, to: checkpoint.size, root1: lastGood.checkpoint.rootHash, root2: checkpoint.rootHash,
                        proof: proof)
                    {
                        problems.append(
                            AuditProblem(
                                kind: .inconsistent, location: signed.location,
                                detail: "not consistent with \(lastGood.location) (\(lastGood.checkpoint.size) records)"))
                        continue
                    }
                }
                checkpointsVerified += 1
                verifiedSize = max(verifiedSize, checkpoint.size)
                lastGood = signed
            }
            // The retention record vouches for the pruned records only once a checkpoint signed it
            // (the log signs one before it deletes segments); anyone can append an unsigned one.
            if let retention, retention.seq >= verifiedSize {
                problems.append(
                    AuditProblem(
                        kind: .removed, seq: 0, location: retention.location,
                        detail: "records 0...\(firstSeq - 1) are gone on the word of retention record \(retention.seq), which no verified checkpoint covers"))
            }
            if let torn, verifiedSize <= available, !problems.contains(where: { $0.location == torn }) {
                notes.append("\(torn): a torn last line no checkpoint covers (a write cut short; the log cuts it when it opens)")
            }
            if tree != nil, available > verifiedSize {
                if options.requireCoverage {
                    problems.append(
                        AuditProblem(
                            kind: .inconsistent, seq: verifiedSize, location: AuditFiles.checkpoints,
                            detail: "records \(verifiedSize)...\(available - 1) are covered by no verified checkpoint"))
                } else {
                    notes.append("records \(verifiedSize)...\(available - 1) are after the last verified checkpoint")
                }
            }
        }

        /// A checkpoint whose root differs from the recomputed one.
        mutating func reportMismatch(_ signed: SignedCheckpoint, lastGood: SignedCheckpoint?) {
            let size = signed.checkpoint.size
            let from = max(lastGood?.checkpoint.size ?? 0, firstSeq)
            let explained = problems.contains { problem in
                guard let seq = problem.seq else { return false }
                return [.changed, .removed, .reordered, .inserted].contains(problem.kind) && seq < size && seq >= from - 1
            }
            if explained {
                problems.append(
                    AuditProblem(
                        kind: .inconsistent, location: signed.location,
                        detail: "the root for \(size) records differs from the recomputed one (see the records above)"))
            } else if size == firstSeq + lines.count, size - 1 >= from {
                // Only the last record can change without its successor saying so.
                problems.append(
                    AuditProblem(
                        kind: .changed, seq: size - 1, location: lines.last?.location,
                        detail: "the last record does not match \(signed.location) (or records \(from)...\(size - 1) were rewritten)"))
            } else {
                problems.append(
                    AuditProblem(
                        kind: .inconsistent, seq: from, location: signed.location,
                        detail: "records \(from)...\(size - 1) are not the ones \(signed.location) signed (rewritten with consistent seq and prev)"))
            }
        }
    }
}
