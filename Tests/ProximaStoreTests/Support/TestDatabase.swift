import Foundation
import GRDB
import Logging
import PostgresNIO
import ProximaCore
import Testing

@testable import ProximaStore

/// The two implementations every behaviour test runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

/// An empty database of one backend, made for one test: a SQLite file in a new temporary
/// directory, or a new database on the shared PostgreSQL server. Stores opened on it share it,
/// as replicas (or a restarted gateway) would.
struct TestDatabase: Sendable {
    let backend: Backend
    let sqlitePath: String
    let location: PostgresLocation?

    static func make(_ backend: Backend) async throws -> TestDatabase {
        switch backend {
        case .sqlite:
            var template = Array("/tmp/proxima-store-test.XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw TestPostgres.Failure(message: "mkdtemp failed") }
            return TestDatabase(backend: .sqlite, sqlitePath: String(cString: made) + "/proxima.sqlite", location: nil)
        case .postgres:
            let server = try await TestPostgres.shared()
            let name = "test_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            let administration = try PostgresLocation(url: server.url)
            try await execute("CREATE DATABASE \(name)", at: administration)
            return TestDatabase(backend: .postgres, sqlitePath: "", location: try PostgresLocation(url: server.url(database: name)))
        }
    }

    /// A store on this database, as a gateway replica (or a restarted gateway) would open it.
    func open(timeoutSeconds: Double = 5) async throws -> any ProximaStore {
        switch backend {
        case .sqlite: return try await SQLiteStore.open(path: sqlitePath, timeoutSeconds: timeoutSeconds)
        case .postgres: return try await PostgresStore.open(location!, timeoutSeconds: timeoutSeconds, maxConnections: 4)
        }
    }

    /// Runs SQL beside the store, as another program would.
    func execute(_ sql: String) async throws {
        switch backend {
        case .sqlite:
            let queue = try DatabaseQueue(path: sqlitePath)
            try await queue.write { db in try db.execute(sql: sql) }
            try queue.close()
        case .postgres:
            try await Self.execute(sql, at: location!)
        }
    }

    /// Removes a SQLite database's directory (PostgreSQL databases go with their server).
    func remove() {
        if backend == .sqlite { try? FileManager.default.removeItem(atPath: (sqlitePath as NSString).deletingLastPathComponent) }
    }

    static func execute(_ sql: String, at location: PostgresLocation) async throws {
        let configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: .disable)
        let connection = try await PostgresConnection.connect(
            configuration: configuration, id: 1, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "test")).consume()
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}

/// Runs `body` with a store on a new database of `backend`, and closes it afterwards.
func withStore(_ backend: Backend, _ body: (any ProximaStore, TestDatabase) async throws -> Void) async throws {
    let database = try await TestDatabase.make(backend)
    let store = try await database.open()
    do {
        try await body(store, database)
    } catch {
        await store.close()
        database.remove()
        throw error
    }
    await store.close()
    database.remove()
}

/// The error `body` throws, or nil when it throws none. (Closures do not take a typed `throws`
/// from their context yet, so this takes any error and records one that is not a ``StoreError``.)
func storeError(_ body: () async throws -> Void) async -> StoreError? {
    do {
        try await body()
        return nil
    } catch let error as StoreError {
        return error
    } catch {
        Issue.record("not a StoreError: \(error)")
        return nil
    }
}

extension StoreError {
    /// The case alone, to compare without the text.
    var kind: String {
        switch self {
        case .notFound: "notFound"
        case .alreadyExists: "alreadyExists"
        case .invalid(let field, _): "invalid(\(field))"
        case .unavailable: "unavailable"
        }
    }
}
