#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import GRDB
import Logging

/// One record's row in the search index: where its line is, and the fields searched on.
struct AuditIndexRow: Sendable {
    var seq: Int
    /// Unix seconds (nil when the record's time does not parse).
    var time: Double?
    var tenant: String?
    var requestID: String?
    var kind: String
    var segment: String
    var offset: Int
    var length: Int

    init(record: AuditRecord, segment: String, offset: Int, length: Int) {
        seq = record.seq
        time = AuditTime.unixSeconds(record.time)
        tenant = record.tenant
        requestID = record.requestID
        kind = record.kind.rawValue
        self.segment = segment
        self.offset = offset
        self.length = length
    }
}

/// The search index (`index.sqlite`, GRDB in WAL mode): one row per record, written in batches after
/// each group commit on GRDB's own writer queue, so it can lag behind the segments; the log brings it
/// up to date when it opens. It is not part of what is proven: searches return the segments' lines.
final class AuditIndex: Sendable {
    private let pool: DatabasePool
    private let logger: Logger
    /// Rows queued for the background writes and not written yet, bounded by `maximumQueuedRows`.
    private let queued = QueuedRows()
    /// Beyond this many rows waiting for SQLite, `insertLater` blocks the log's writer thread (and so
    /// the appends behind it) until the index catches up: the queue never grows without bound.
    static let maximumQueuedRows = 262_144

    init(path: String, logger: Logger) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        pool = try DatabasePool(path: path, configuration: configuration)
        self.logger = logger
        try pool.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS records (
                        seq INTEGER PRIMARY KEY, time REAL, tenant TEXT, request_id TEXT, kind TEXT NOT NULL,
                        segment TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL);
                    CREATE INDEX IF NOT EXISTS records_tenant_time ON records (tenant, time);
                    CREATE INDEX IF NOT EXISTS records_request_id ON records (request_id);
                    CREATE INDEX IF NOT EXISTS records_time ON records (time);
                    CREATE INDEX IF NOT EXISTS records_segment ON records (segment);
                    """)
        }
    }

    /// The lowest and highest seq indexed and the number of rows.
    func extent() throws -> (min: Int?, max: Int?, count: Int) {
        try pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT MIN(seq), MAX(seq), COUNT(*) FROM records")
            return (row?[0], row?[1], row?[2] ?? 0)
        }
    }

    func insert(_ rows: [AuditIndexRow]) throws {
        try pool.write { db in try Self.insert(rows, into: db) }
    }

    /// Inserts in the background (after a group commit); a failure is logged, and repaired when the
    /// log next opens.
    func insertLater(_ rows: [AuditIndexRow]) {
        let logger = logger
        let queued = queued
        queued.add(rows.count, limit: Self.maximumQueuedRows)
        pool.asyncWrite({ db in try Self.insert(rows, into: db) }) { _, result in
            queued.remove(rows.count)
            if case .failure(let error) = result {
                logger.error("audit index: rows not written (rebuilt from the segments at the next start)", metadata: ["error": "\(error)"])
            }
        }
    }

    private static func insert(_ rows: [AuditIndexRow], into db: Database) throws {
        let statement = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO records (seq, time, tenant, request_id, kind, segment, offset, length) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        for row in rows {
            try statement.execute(arguments: [row.seq, row.time, row.tenant, row.requestID, row.kind, row.segment, row.offset, row.length])
        }
    }

    /// Waits until every row queued so far is written.
    func flush() async throws {
        try await pool.write { _ in }
    }

    /// The same, from a thread that may block (the writer, when the log closes).
    func waitForWrites() {
        do {
            try pool.write { _ in }
        } catch {
            logger.error("audit index: not flushed", metadata: ["error": "\(error)"])
        }
    }

    func deleteAll() throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM records") }
    }

    /// Drops rows outside `first ..< end` (records pruned, or beyond the segments).
    func keepOnly(from first: Int, to end: Int) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM records WHERE seq < ? OR seq >= ?", arguments: [first, end]) }
    }

    func delete(through seq: Int) async throws {
        try await pool.write { db in try db.execute(sql: "DELETE FROM records WHERE seq <= ?", arguments: [seq]) }
    }

    /// The latest record time in `segment` (nil when it has no indexed row with a time).
    func latestTime(segment: String) async throws -> Double? {
        try await pool.read { db in
            try Double.fetchOne(db, sql: "SELECT MAX(time) FROM records WHERE segment = ?", arguments: [segment])
        }
    }

    /// The stored line of record `seq`, read from its segment at the offset its row gives; nil when
    /// the row is not (yet) there.
    func line(seq: Int, directory: String) async throws -> String? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT segment, offset, length FROM records WHERE seq = ?", arguments: [seq]) else {
                return nil
            }
            let segment: String = row[0]
            guard AuditFiles.firstSeq(ofSegment: segment) != nil else { throw AuditError("index row \(seq) names no segment") }
            let path = directory + "/" + segment
            let fd = try AuditFileIO.open(path, O_RDONLY)
            defer { close(fd) }
            let length: Int = row[2]
            let bytes = try AuditFileIO.read(fd, offset: row[1], count: length, path: path)
            guard bytes.count == length else { throw AuditError("the index points past the end of \(segment) for record \(seq)") }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// The lines of the records matching `query`, oldest first: rows from the index, then each line
    /// read from its segment at the row's offset (never a scan of the log).
    func search(_ query: AuditQuery, directory: String) async throws -> [String] {
        try await pool.read { db in try Self.search(query, directory: directory, db: db) }
    }

    static func search(_ query: AuditQuery, directory: String, db: Database) throws -> [String] {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let tenant = query.tenant {
            conditions.append("tenant = ?")
            arguments += [tenant]
        }
        if let requestID = query.requestID {
            conditions.append("request_id = ?")
            arguments += [requestID]
        }
        if let since = query.since {
            conditions.append("time >= ?")
            arguments += [since]
        }
        if let until = query.until {
            conditions.append("time < ?")
            arguments += [until]
        }
        if let kind = query.kind {
            conditions.append("kind = ?")
            arguments += [kind.rawValue]
        }
        let limit = min(max(query.limit, 0), AuditQuery.maximumLimit)
        if limit == 0 { return [] }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let rows = try Row.fetchAll(
            db, sql: "SELECT seq, segment, offset, length FROM records \(filter) ORDER BY seq LIMIT \(limit)", arguments: arguments)
        var lines: [String] = []
        lines.reserveCapacity(rows.count)
        var openFiles: [String: Int32] = [:]
        defer { for fd in openFiles.values { close(fd) } }
        for row in rows {
            let seq: Int = row[0]
            let segment: String = row[1]
            guard AuditFiles.firstSeq(ofSegment: segment) != nil else { throw AuditError("index row \(seq) names no segment") }
            let path = directory + "/" + segment
            let fd: Int32
            if let open = openFiles[segment] {
                fd = open
            } else {
                fd = try AuditFileIO.open(path, O_RDONLY)
                openFiles[segment] = fd
            }
            let length: Int = row[3]
            let bytes = try AuditFileIO.read(fd, offset: row[2], count: length, path: path)
            guard bytes.count == length else {
                throw AuditError("the index points past the end of \(segment) for record \(seq); reopen the log to rebuild the index")
            }
            lines.append(String(decoding: bytes, as: UTF8.self))
        }
        return lines
    }

    /// Searches a log directory's index without opening the log (a running gateway may hold it):
    /// `proxima audit search`.
    static func search(directory: String, query: AuditQuery) throws -> [String] {
        let path = directory + "/" + AuditFiles.index
        guard AuditFileIO.exists(path) else { throw AuditError("no audit index at \(path)") }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        return try queue.read { db in try search(query, directory: directory, db: db) }
    }
}

/// A count of rows waiting for SQLite, with a wait for room.
private final class QueuedRows: @unchecked Sendable {
    private let condition = NSCondition()
    private var count = 0

    /// Waits (blocking the calling thread, the log's writer) while more than `limit` rows wait.
    func add(_ rows: Int, limit: Int) {
        condition.lock()
        while count > 0 && count + rows > limit { condition.wait() }
        count += rows
        condition.unlock()
    }

    func remove(_ rows: Int) {
        condition.lock()
        count -= rows
        condition.broadcast()
        condition.unlock()
    }
}

extension AuditQuery {
    /// The most records one search returns.
    public static let maximumLimit = 10_000
}
