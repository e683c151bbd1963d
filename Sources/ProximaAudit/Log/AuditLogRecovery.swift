#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Crypto
import Foundation
import Logging
import ProximaCore

/// Opening a log directory: the lock, the key, the segments (a torn last line cut off, an
/// interrupted prune finished), the tree rebuilt from every remaining record, the checkpoints
/// checked against it, and the index brought up to date. Anything inconsistent (records missing
/// under a checkpoint, a gap between segments, a checkpoint that does not match the records) stops
/// the opening with an error: nothing is overwritten.
///
/// Opening reads every segment once and hashes every record: the start costs O(size of the log)
/// (roughly the time to read the files and SHA-256 them), which prune keeps bounded.
enum AuditLogRecovery {
    struct Result: Sendable {
        var directory: String
        var origin: String
        var signer: NoteSigner
        var verifierKey: String
        var index: AuditIndex
        var tree: MerkleTree
        var prunedBase: (size: Int, frontier: [MerkleHash])
        var segments: [String]
        var segmentFD: Int32
        var segmentSize: Int
        var checkpointsFD: Int32
        var checkpointsSize: Int
        var checkpoints: [Int: String]
        var latestCheckpoint: SignedCheckpoint?
        var lockFD: Int32
    }

    /// The retention record's `detail` when the segments were moved to `archive/` / deleted.
    static let archivedDetail = "archive"
    static let deletedDetail = "delete"
    /// Bytes that only a retention record's line holds (inside a JSON string a quote is escaped).
    private static let retentionMarker = Array(#""kind":"retention""#.utf8)

    private struct ScannedSegment {
        var name: String
        var firstSeq: Int
        var leaves: [MerkleHash]
        var size: Int
    }

    static func open(directory: String, origin: String, settings: AuditSettings, logger: Logger) throws -> Result {
        try AuditFileIO.makeDirectory(directory)
        let lockFD = try AuditFileIO.lockExclusively(directory + "/" + AuditFiles.lock)
        do {
            return try open(directory: directory, origin: origin, settings: settings, logger: logger, lockFD: lockFD)
        } catch {
            close(lockFD)
            throw error
        }
    }

    private static func open(directory: String, origin: String, settings: AuditSettings, logger: Logger, lockFD: Int32) throws -> Result {
        let signer = try NoteSigner(name: origin, privateKey: try AuditKeyStore.load(directory: directory, keyFile: settings.keyFile))
        let verifierKey = signer.verifierKey
        try AuditKeyStore.publish(verifierKey: verifierKey, directory: directory)
        let verifier = try NoteVerifier(verifierKey: verifierKey)

        // Segments, oldest first.
        let names = try AuditFileIO.listDirectory(directory)
            .compactMap { name in AuditFiles.firstSeq(ofSegment: name).map { (name, $0) } }
            .sorted { $0.1 < $1.1 }
        var scanned: [ScannedSegment] = []
        var retentionRecords: [AuditRecord] = []
        for (position, (name, firstSeq)) in names.enumerated() {
            scanned.append(
                try scan(
                    directory: directory, name: name, firstSeq: firstSeq, isLast: position == names.count - 1, logger: logger,
                    retentionRecords: &retentionRecords))
        }

        // A prune that stopped between its retention record and the last removal is finished now.
        if let latest = retentionRecords.max(by: { $0.seq < $1.seq }), let removed = latest.removedSegments {
            let leftovers = scanned.prefix { removed.contains($0.name) }
            if scanned.contains(where: { removed.contains($0.name) }) && leftovers.count == scanned.count {
                throw AuditError("retention record \(latest.seq) removed every segment, its own included: the log directory is inconsistent")
            }
            if !leftovers.isEmpty {
                logger.warning("audit: finishing an interrupted prune", metadata: ["segments": "\(leftovers.map(\.name))"])
                try removeSegments(
                    leftovers.map(\.name), directory: directory, archive: latest.detail == archivedDetail)
                scanned.removeFirst(leftovers.count)
            }
        }

        // No segment yet: start the first one.
        if scanned.isEmpty {
            let name = AuditFiles.segmentName(firstSeq: 0)
            let fd = try AuditFileIO.open(directory + "/" + name, O_WRONLY | O_CREAT | O_EXCL, mode: 0o640)
            close(fd)
            try AuditFileIO.syncDirectory(directory)
            scanned.append(ScannedSegment(name: name, firstSeq: 0, leaves: [], size: 0))
        }

        // Contiguity, then the tree: from the start, or from the frontier the latest prune left.
        var expected = scanned[0].firstSeq
        for segment in scanned {
            guard segment.firstSeq == expected else {
                throw AuditError(
                    "\(segment.name) starts at record \(segment.firstSeq) but the segments before it end at record \(expected - 1): records are missing; refusing to start (run `proxima audit verify`)")
            }
            expected += segment.leaves.count
        }
        let firstSeq = scanned[0].firstSeq
        var tree = MerkleTree()
        var prunedBase: (size: Int, frontier: [MerkleHash]) = (0, [])
        if firstSeq > 0 {
            guard let retention = retentionRecords.last(where: { $0.removedThrough.map { $0 &+ 1 } == firstSeq }) else {
                throw AuditError(
                    "the segments start at record \(firstSeq) but no retention record says records 0...\(firstSeq - 1) were pruned: segments are missing; refusing to start")
            }
            let frontier = try (retention.frontier ?? []).map { text -> MerkleHash in
                guard let hash = Data(base64Encoded: text), hash.count == 32 else {
                    throw AuditError("retention record \(retention.seq) holds a malformed frontier hash")
                }
                return Array(hash)
            }
            tree = try MerkleTree(prunedSize: firstSeq, frontier: frontier)
            prunedBase = (firstSeq, frontier)
            guard scanned.contains(where: { !$0.leaves.isEmpty }) else {
                throw AuditError("no record remains after the pruned prefix (the retention record itself is missing)")
            }
        }
        for segment in scanned {
            for leaf in segment.leaves { tree.append(leafHash: leaf) }
        }

        // Checkpoints: each must be this log's, and match the records.
        let checkpointsPath = directory + "/" + AuditFiles.checkpoints
        var checkpoints: [Int: String] = [:]
        var latest: SignedCheckpoint?
        var checkpointBytes = try AuditFileIO.readAll(checkpointsPath) ?? []
        if let last = checkpointBytes.last, last != 0x0A {
            let cut = checkpointBytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            logger.warning("audit: cutting a torn last line off checkpoints.log", metadata: ["bytes": "\(checkpointBytes.count - cut)"])
            try cutFile(checkpointsPath, to: cut)
            checkpointBytes.removeSubrange(cut...)
        }
        var lineNumber = 0
        for line in checkpointBytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
            lineNumber += 1
            let location = "\(AuditFiles.checkpoints):\(lineNumber)"
            let checkpoint: Checkpoint
            let note: String
            do {
                note = try JSONDecoder().decode(String.self, from: Data(line))
                checkpoint = try Checkpoint.parse(body: try verifier.open(note))
            } catch {
                throw AuditError(
                    "\(location) is not a checkpoint signed by this log's key as '\(origin)' (\(error)): was the origin or the key changed? Refusing to start")
            }
            guard checkpoint.origin == origin else {
                throw AuditError("\(location) is for the log '\(checkpoint.origin)', not '\(origin)'; refusing to start")
            }
            guard checkpoint.size <= tree.size else {
                throw AuditError(
                    "\(location) was signed over \(checkpoint.size) records but the segments hold only \(tree.size): records are missing; refusing to start (run `proxima audit verify`)")
            }
            if checkpoint.size >= firstSeq, try tree.root(size: checkpoint.size) != checkpoint.rootHash {
                throw AuditError(
                    "\(location): the records' root at size \(checkpoint.size) is not the signed one: records were changed; refusing to start (run `proxima audit verify`)")
            }
            checkpoints[checkpoint.size] = note
            if latest.map({ checkpoint.size >= $0.size }) ?? true { latest = SignedCheckpoint(size: checkpoint.size, note: note) }
        }

        // The index: drop rows that are not in the segments, then add the ones missing.
        let index = try AuditIndex(path: directory + "/" + AuditFiles.index, logger: logger)
        try index.keepOnly(from: firstSeq, to: tree.size)
        let extent = try index.extent()
        var indexFrom = firstSeq
        if let minimum = extent.min, let maximum = extent.max {
            if minimum == firstSeq && maximum - minimum + 1 == extent.count {
                indexFrom = maximum + 1
            } else {
                logger.warning("audit: the index has gaps; rebuilding it from the segments")
                try index.deleteAll()
            }
        }
        if indexFrom < tree.size {
            try rebuildIndex(index, from: indexFrom, segments: scanned, directory: directory)
        }

        let active = scanned[scanned.count - 1]
        let segmentFD = try AuditFileIO.open(directory + "/" + active.name, O_WRONLY)
        let checkpointsFD: Int32
        do {
            let existed = AuditFileIO.exists(checkpointsPath)
            checkpointsFD = try AuditFileIO.open(checkpointsPath, O_WRONLY | O_CREAT, mode: 0o640)
            if !existed { try AuditFileIO.syncDirectory(directory) }
        } catch {
            close(segmentFD)
            throw error
        }
        return Result(
            directory: directory, origin: origin, signer: signer, verifierKey: verifierKey, index: index, tree: tree,
            prunedBase: prunedBase, segments: scanned.map(\.name), segmentFD: segmentFD, segmentSize: active.size,
            checkpointsFD: checkpointsFD, checkpointsSize: checkpointBytes.count, checkpoints: checkpoints, latestCheckpoint: latest,
            lockFD: lockFD)
    }

    /// Reads one segment: cuts a torn last line (only the last segment may have one), hashes every
    /// line, checks the first and last lines' seq, and collects retention records.
    private static func scan(
        directory: String, name: String, firstSeq: Int, isLast: Bool, logger: Logger, retentionRecords: inout [AuditRecord]
    ) throws -> ScannedSegment {
        let path = directory + "/" + name
        var bytes = try AuditFileIO.readAll(path) ?? []
        if let last = bytes.last, last != 0x0A {
            let cut = bytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            guard isLast else {
                throw AuditError("\(name) ends in a torn line but it is not the last segment: the log was damaged; refusing to start (run `proxima audit verify`)")
            }
            logger.warning("audit: cutting a torn last line (a write cut short)", metadata: ["segment": "\(name)", "bytes": "\(bytes.count - cut)"])
            try cutFile(path, to: cut)
            bytes.removeSubrange(cut...)
        }
        var leaves: [MerkleHash] = []
        var start = 0
        var firstLine: Range<Int>?
        var lastLine: Range<Int>?
        try bytes.withUnsafeBufferPointer { buffer in
            while start < buffer.count {
                var end = start
                while buffer[end] != 0x0A { end += 1 }
                let line = UnsafeBufferPointer(rebasing: buffer[start..<end])
                guard !line.isEmpty else { throw AuditError("\(name):\(leaves.count + 1) is an empty line: refusing to start") }
                leaves.append(MerkleHashing.leaf(line))
                if firstLine == nil { firstLine = start..<end }
                lastLine = start..<end
                if contains(line, retentionMarker) {
                    let record = try decode(line, name: name, number: leaves.count)
                    guard record.kind == .retention, record.seq == firstSeq + leaves.count - 1 else {
                        throw AuditError("\(name):\(leaves.count) holds record \(record.seq) where record \(firstSeq + leaves.count - 1) belongs")
                    }
                    retentionRecords.append(record)
                }
                start = end + 1
            }
        }
        for (range, seq) in [(firstLine, firstSeq), (lastLine, firstSeq + leaves.count - 1)] {
            guard let range else { continue }
            let record = try decode(bytes[range], name: name, number: seq - firstSeq + 1)
            guard record.seq == seq else {
                throw AuditError("\(name):\(seq - firstSeq + 1) holds record \(record.seq) where record \(seq) belongs: refusing to start (run `proxima audit verify`)")
            }
        }
        return ScannedSegment(name: name, firstSeq: firstSeq, leaves: leaves, size: bytes.count)
    }

    private static func decode(_ line: some Collection<UInt8>, name: String, number: Int) throws -> AuditRecord {
        do {
            return try AuditRecord.decode(line: line)
        } catch {
            throw AuditError("\(name):\(number) is not a record (\(error)): refusing to start (run `proxima audit verify`)")
        }
    }

    private static func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count, let first = needle.first else { return false }
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == first {
                var matched = 1
                while matched < needle.count && haystack[index + matched] == needle[matched] { matched += 1 }
                if matched == needle.count { return true }
            }
            index += 1
        }
        return false
    }

    private static func cutFile(_ path: String, to size: Int) throws {
        let fd = try AuditFileIO.open(path, O_WRONLY)
        defer { close(fd) }
        try AuditFileIO.truncate(fd, to: size, path: path)
        try AuditFileIO.sync(fd, path: path)
    }

    /// Adds the index rows of records `from...` read from the segments, in batches.
    private static func rebuildIndex(_ index: AuditIndex, from: Int, segments: [ScannedSegment], directory: String) throws {
        var rows: [AuditIndexRow] = []
        for segment in segments where segment.firstSeq + segment.leaves.count > from {
            let bytes = try AuditFileIO.readAll(directory + "/" + segment.name) ?? []
            var seq = segment.firstSeq
            var start = 0
            for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
                defer {
                    seq += 1
                    start += line.count + 1
                }
                guard seq >= from else { continue }
                let record = try decode(line, name: segment.name, number: seq - segment.firstSeq + 1)
                rows.append(AuditIndexRow(record: record, segment: segment.name, offset: start, length: line.count))
                if rows.count >= 4096 {
                    try index.insert(rows)
                    rows.removeAll(keepingCapacity: true)
                }
            }
        }
        if !rows.isEmpty { try index.insert(rows) }
    }

    /// Deletes segments, or moves them to `archive/`, and makes that durable.
    static func removeSegments(_ names: [String], directory: String, archive: Bool) throws {
        if archive {
            let archiveDirectory = directory + "/" + AuditFiles.archive
            try AuditFileIO.makeDirectory(archiveDirectory)
            try AuditFileIO.syncDirectory(directory)
            for name in names {
                guard rename(directory + "/" + name, archiveDirectory + "/" + name) == 0 else {
                    throw AuditFileIO.failure("rename", directory + "/" + name)
                }
            }
            try AuditFileIO.syncDirectory(archiveDirectory)
        } else {
            for name in names {
                guard unlink(directory + "/" + name) == 0 || errno == ENOENT else { throw AuditFileIO.failure("unlink", directory + "/" + name) }
            }
        }
        try AuditFileIO.syncDirectory(directory)
    }
}

extension AuditFiles {
    /// The lock a log's writer holds (`flock`, exclusive): the gateway while it runs, `proxima audit
    /// prune` while it works, so that the two never write the same directory at once.
    public static let lock = "audit.lock"
}
