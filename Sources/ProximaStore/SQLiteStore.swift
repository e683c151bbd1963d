import Foundation
import GRDB
import ProximaCore

/// The store in one SQLite file, through GRDB: the default, with nothing to install. A
/// `DatabasePool` keeps the file in WAL mode, so reads (the gateway's version polls and
/// snapshots) never wait for a write. Every write is an IMMEDIATE transaction: it takes the file's
/// write lock when it begins, so two processes on one file (a gateway and `proxima keys revoke`)
/// serialise rather than fail half-way; a lock held longer than the timeout fails as
/// `unavailable`.
public final class SQLiteStore: ProximaStore, SharedCounterBackend {
    /// The database file.
    public let path: String
    private let pool: DatabasePool

    private init(path: String, pool: DatabasePool) {
        self.path = path
        self.pool = pool
    }

    /// Opens (creating them if needed) the file and its directory, and brings the schema up to
    /// date. `timeoutSeconds` bounds how long an operation waits for another writer's lock.
    public static func open(path: String, timeoutSeconds: Double = 5) async throws(StoreError) -> SQLiteStore {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw .unavailable("cannot create the data directory \(directory): \(Self.reason(error))")
            }
        }
        var configuration = Configuration()
        configuration.label = "proxima-store"
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(max(timeoutSeconds, 0.001))
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw .unavailable("cannot open the SQLite database \(path): \(Self.reason(error))")
        }
        let store = SQLiteStore(path: path, pool: pool)
        do {
            try await store.migrate()
        } catch {
            await store.close()
            throw error
        }
        return store
    }

    public func close() async {
        try? pool.close()
    }

    // MARK: Migrations

    private func migrate() async throws(StoreError) {
        try await write { db in
            try db.execute(sql: StoreSchema.createMigrationsTable.sqlite)
            let applied = try Int.fetchAll(db, sql: "SELECT version FROM store_migrations ORDER BY version")
            for migration in try StoreSchema.pending(after: applied) {
                for statement in migration.sqlite { try db.execute(sql: statement) }
                try db.execute(
                    sql: "INSERT INTO store_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    arguments: [migration.version, migration.name, Date().timeIntervalSince1970])
            }
        }
    }

    public func appliedMigrations() async throws(StoreError) -> [Int] {
        try await read { db in try Int.fetchAll(db, sql: "SELECT version FROM store_migrations ORDER BY version") }
    }

    // MARK: Tenants

    public func createTenant(_ tenant: Tenant) async throws(StoreError) {
        try StoreRecords.check(tenant)
        try await write { db in
            guard try Self.tenant(db, id: tenant.id) == nil else { throw StoreError.alreadyExists("tenant '\(tenant.id)'") }
            try db.execute(
                sql: """
                    INSERT INTO tenants (id, name, models, limits, disabled, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    tenant.id, tenant.name, StoreRecords.text(tenant.models), StoreRecords.text(tenant.limits), tenant.disabled,
                    tenant.createdAt, tenant.createdAt,
                ])
            try Self.bumpIdentityVersion(db)
        }
    }

    public func tenant(id: String) async throws(StoreError) -> Tenant {
        try StoreRecords.checkName(id, field: "tenant")
        return try await read { db in
            guard let tenant = try Self.tenant(db, id: id) else { throw StoreError.notFound("tenant '\(id)'") }
            return tenant
        }
    }

    public func tenants() async throws(StoreError) -> [Tenant] {
        try await read { db in try Self.tenants(db) }
    }

    public func updateTenant(id: String, _ update: TenantUpdate) async throws(StoreError) -> Tenant {
        try StoreRecords.checkName(id, field: "tenant")
        return try await write { db in
            guard let current = try Self.tenant(db, id: id) else { throw StoreError.notFound("tenant '\(id)'") }
            let changed = update.applied(to: current)
            try StoreRecords.check(changed)
            guard changed != current else { return current }
            try db.execute(
                sql: "UPDATE tenants SET name = ?, models = ?, limits = ?, disabled = ?, updated_at = ? WHERE id = ?",
                arguments: [
                    changed.name, StoreRecords.text(changed.models), StoreRecords.text(changed.limits), changed.disabled,
                    Date().timeIntervalSince1970, id,
                ])
            try Self.bumpIdentityVersion(db)
            return changed
        }
    }

    // MARK: Principals

    public func createPrincipal(_ principal: Principal) async throws(StoreError) {
        try StoreRecords.check(principal)
        try await write { db in
            guard try Self.tenant(db, id: principal.tenantID) != nil else {
                throw StoreError.notFound("tenant '\(principal.tenantID)'")
            }
            guard try Self.principal(db, tenantID: principal.tenantID, id: principal.id) == nil else {
                throw StoreError.alreadyExists("principal '\(principal.id)' of tenant '\(principal.tenantID)'")
            }
            try db.execute(
                sql: """
                    INSERT INTO principals (tenant_id, id, name, roles, limits, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    principal.tenantID, principal.id, principal.name, StoreRecords.text(roles: principal.roles),
                    StoreRecords.text(principal.limits), principal.createdAt, principal.createdAt,
                ])
            try Self.bumpIdentityVersion(db)
        }
    }

    public func principal(tenantID: String, id: String) async throws(StoreError) -> Principal {
        try StoreRecords.checkName(tenantID, field: "tenant")
        try StoreRecords.checkName(id, field: "principal")
        return try await read { db in
            guard let principal = try Self.principal(db, tenantID: tenantID, id: id) else {
                throw StoreError.notFound("principal '\(id)' of tenant '\(tenantID)'")
            }
            return principal
        }
    }

    public func principals(tenantID: String) async throws(StoreError) -> [Principal] {
        try StoreRecords.checkName(tenantID, field: "tenant")
        return try await read { db in
            guard try Self.tenant(db, id: tenantID) != nil else { throw StoreError.notFound("tenant '\(tenantID)'") }
            return try Self.principals(db, tenantID: tenantID)
        }
    }

    public func updatePrincipal(tenantID: String, id: String, _ update: PrincipalUpdate) async throws(StoreError) -> Principal {
        try StoreRecords.checkName(tenantID, field: "tenant")
        try StoreRecords.checkName(id, field: "principal")
        return try await write { db in
            guard let current = try Self.principal(db, tenantID: tenantID, id: id) else {
                throw StoreError.notFound("principal '\(id)' of tenant '\(tenantID)'")
            }
            let changed = update.applied(to: current)
            try StoreRecords.check(changed)
            guard changed != current else { return current }
            try db.execute(
                sql: "UPDATE principals SET name = ?, roles = ?, limits = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                arguments: [
                    changed.name, StoreRecords.text(roles: changed.roles), StoreRecords.text(changed.limits),
                    Date().timeIntervalSince1970, tenantID, id,
                ])
            try Self.bumpIdentityVersion(db)
            return changed
        }
    }

    // MARK: Keys

    public func createKey(_ request: NewAPIKey, at now: Double) async throws(StoreError) -> IssuedAPIKey {
        let minted = try StoreRecords.mint(request, at: now)
        let key = minted.key
        try await write { db in
            guard try Self.principal(db, tenantID: key.tenantID, id: key.principalID) != nil else {
                throw StoreError.notFound("principal '\(key.principalID)' of tenant '\(key.tenantID)'")
            }
            // 56 random bits: a clash is a one-in-10^16 event, but it must not overwrite a key.
            guard try Self.key(db, id: key.id) == nil else { throw StoreError.alreadyExists("key '\(key.id)'") }
            try db.execute(
                sql: """
                    INSERT INTO api_keys (id, tenant_id, principal_id, name, secret_hash, models, limits, created_at, expires_at, revoked_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
                    """,
                arguments: [
                    key.id, key.tenantID, key.principalID, key.name, key.secretHash, StoreRecords.text(key.models),
                    StoreRecords.text(key.limits), key.createdAt, key.expiresAt,
                ])
            try Self.bumpIdentityVersion(db)
        }
        return IssuedAPIKey(key: key, token: minted.token)
    }

    public func key(id: String) async throws(StoreError) -> APIKey {
        try StoreRecords.checkKeyID(id)
        return try await read { db in
            guard let key = try Self.key(db, id: id) else { throw StoreError.notFound("key '\(id)'") }
            return key
        }
    }

    public func keys(tenantID: String, principalID: String?) async throws(StoreError) -> [APIKey] {
        try StoreRecords.checkName(tenantID, field: "tenant")
        if let principalID { try StoreRecords.checkName(principalID, field: "principal") }
        return try await read { db in
            guard try Self.tenant(db, id: tenantID) != nil else { throw StoreError.notFound("tenant '\(tenantID)'") }
            if let principalID {
                guard try Self.principal(db, tenantID: tenantID, id: principalID) != nil else {
                    throw StoreError.notFound("principal '\(principalID)' of tenant '\(tenantID)'")
                }
                return try Self.keys(db, where: "tenant_id = ? AND principal_id = ?", [tenantID, principalID])
            }
            return try Self.keys(db, where: "tenant_id = ?", [tenantID])
        }
    }

    public func revokeKey(id: String, at now: Double) async throws(StoreError) -> APIKey {
        try StoreRecords.checkKeyID(id)
        try StoreRecords.checkTime(now, field: "revoked_at")
        return try await write { db in
            guard var key = try Self.key(db, id: id) else { throw StoreError.notFound("key '\(id)'") }
            guard key.revokedAt == nil else { return key }
            try db.execute(sql: "UPDATE api_keys SET revoked_at = ? WHERE id = ?", arguments: [now, id])
            try Self.bumpIdentityVersion(db)
            key.revokedAt = now
            return key
        }
    }

    // MARK: The change cursor

    public func identityVersion() async throws(StoreError) -> Int64 {
        try await read { db in try Self.version(db) }
    }

    public func identitySnapshot() async throws(StoreError) -> StoredIdentities {
        // One read transaction: a consistent snapshot of the WAL, whatever is written meanwhile.
        try await read { db in
            StoredIdentities(
                version: try Self.version(db), tenants: try Self.tenants(db), principals: try Self.principals(db, tenantID: nil),
                keys: try Self.keys(db, where: "revoked_at IS NULL", []))
        }
    }

    // MARK: Admin documents

    public func putDocument(_ document: AdminDocument) async throws(StoreError) {
        try StoreRecords.check(document)
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO admin_documents (kind, name, json, updated_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (kind, name) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at
                    """,
                arguments: [document.kind, document.name, document.json, document.updatedAt])
        }
    }

    public func documents(kind: String?) async throws(StoreError) -> [AdminDocument] {
        if let kind { try StoreRecords.checkName(kind, field: "kind") }
        return try await read { db in
            let condition = kind == nil ? "" : "WHERE kind = ?"
            let rows = try Row.fetchAll(
                db, sql: "SELECT kind, name, json, updated_at FROM admin_documents \(condition) ORDER BY kind, name",
                arguments: StatementArguments(kind.map { [$0] } ?? []))
            return rows.map { AdminDocument(kind: $0[0], name: $0[1], json: $0[2], updatedAt: $0[3]) }
        }
    }

    public func deleteDocument(kind: String, name: String) async throws(StoreError) -> Bool {
        try StoreRecords.checkName(kind, field: "kind")
        try StoreRecords.checkText(name, field: "name", maximumBytes: AdminDocument.maximumNameBytes)
        return try await write { db in
            try db.execute(sql: "DELETE FROM admin_documents WHERE kind = ? AND name = ?", arguments: [kind, name])
            return db.changesCount > 0
        }
    }

    // MARK: Shared counters

    /// Reads the counter (a full one if it has no row yet), applies `change` and writes it back,
    /// all in one IMMEDIATE transaction.
    func changeCounter<T: Sendable>(
        _ name: String, perMinute: Int, at now: Double, _ change: @escaping @Sendable (inout RateLimiter) -> T
    ) async throws(StoreError) -> T {
        try await write { db in
            let fresh = StoredRateCounter.fresh(perMinute: perMinute, at: now)
            try db.execute(
                sql: """
                    INSERT INTO rate_counters (name, per_minute, level, updated_at, last_emptied_at, refunded_total)
                    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING
                    """,
                arguments: [name, fresh.perMinute, fresh.level, fresh.updatedAt, fresh.lastEmptiedAt, fresh.refundedTotal])
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT per_minute, level, updated_at, last_emptied_at, refunded_total FROM rate_counters WHERE name = ?",
                    arguments: [name])
            else { throw StoreError.unavailable("the counter '\(name)' vanished during its transaction") }
            let stored = StoredRateCounter(perMinute: row[0], level: row[1], updatedAt: row[2], lastEmptiedAt: row[3], refundedTotal: row[4])
            var limiter = stored.limiter(perMinute: perMinute)
            let result = change(&limiter)
            let updated = StoredRateCounter(limiter)
            try db.execute(
                sql: """
                    UPDATE rate_counters SET per_minute = ?, level = ?, updated_at = ?, last_emptied_at = ?, refunded_total = ?
                    WHERE name = ?
                    """,
                arguments: [updated.perMinute, updated.level, updated.updatedAt, updated.lastEmptiedAt, updated.refundedTotal, name])
            return result
        }
    }

    public func addSpend(scope: String, amount: Money, at now: Double) async throws(StoreError) -> SpendTotals {
        try StoreRecords.checkScope(scope, at: now)
        let day = UTCCalendar.window(.day, at: now).number
        let month = UTCCalendar.window(.month, at: now).number
        return try await write { db in
            var totals: [Int64] = []
            for (period, window) in [(BudgetPeriod.day, day), (.month, month)] {
                let total = try Int64.fetchOne(
                    db,
                    sql: """
                        INSERT INTO spend_counters (scope, period, window_number, nanodollars) VALUES (?, ?, ?, ?)
                        ON CONFLICT (scope, period, window_number) DO UPDATE SET nanodollars =
                            CASE WHEN spend_counters.nanodollars > 9223372036854775807 - excluded.nanodollars
                            THEN 9223372036854775807 ELSE spend_counters.nanodollars + excluded.nanodollars END
                        RETURNING nanodollars
                        """,
                    arguments: [scope, period.rawValue, window, amount.nanodollars])
                totals.append(total ?? 0)
            }
            try db.execute(
                sql: """
                    DELETE FROM spend_counters WHERE scope = ? AND
                        ((period = 'day' AND window_number < ?) OR (period = 'month' AND window_number < ?))
                    """,
                arguments: [scope, day - StoreSchema.keptDays, month - StoreSchema.keptMonths])
            return SpendTotals(
                day: day, month: month, spentToday: Money(nanodollars: totals[0]), spentThisMonth: Money(nanodollars: totals[1]))
        }
    }

    public func spend(scope: String, at now: Double) async throws(StoreError) -> SpendTotals {
        try StoreRecords.checkScope(scope, at: now)
        let day = UTCCalendar.window(.day, at: now).number
        let month = UTCCalendar.window(.month, at: now).number
        return try await read { db in
            func total(_ period: BudgetPeriod, _ window: Int) throws -> Int64 {
                try Int64.fetchOne(
                    db, sql: "SELECT nanodollars FROM spend_counters WHERE scope = ? AND period = ? AND window_number = ?",
                    arguments: [scope, period.rawValue, window]) ?? 0
            }
            return SpendTotals(
                day: day, month: month, spentToday: Money(nanodollars: try total(.day, day)),
                spentThisMonth: Money(nanodollars: try total(.month, month)))
        }
    }

    // MARK: Rows

    private static func bumpIdentityVersion(_ db: Database) throws {
        try db.execute(sql: "UPDATE identity_version SET version = version + 1 WHERE id = 1")
    }

    private static func version(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT version FROM identity_version WHERE id = 1") ?? 0
    }

    private static let tenantColumns = "id, name, models, limits, disabled, created_at"

    private static func tenant(_ row: Row) throws -> Tenant {
        let id: String = row[0]
        let owner = "tenant '\(id)'"
        return Tenant(
            id: id, name: row[1], models: try StoreRecords.models(row[2], of: owner), limits: try StoreRecords.limits(row[3], of: owner),
            disabled: row[4], createdAt: row[5])
    }

    private static func tenant(_ db: Database, id: String) throws -> Tenant? {
        try Row.fetchOne(db, sql: "SELECT \(tenantColumns) FROM tenants WHERE id = ?", arguments: [id]).map(tenant)
    }

    private static func tenants(_ db: Database) throws -> [Tenant] {
        try Row.fetchAll(db, sql: "SELECT \(tenantColumns) FROM tenants ORDER BY id").map(tenant)
    }

    private static let principalColumns = "tenant_id, id, name, roles, limits, created_at"

    private static func principal(_ row: Row) throws -> Principal {
        let tenantID: String = row[0]
        let id: String = row[1]
        let owner = "principal '\(id)' of tenant '\(tenantID)'"
        return Principal(
            id: id, tenantID: tenantID, name: row[2], roles: try StoreRecords.roles(row[3], of: owner),
            limits: try StoreRecords.limits(row[4], of: owner), createdAt: row[5])
    }

    private static func principal(_ db: Database, tenantID: String, id: String) throws -> Principal? {
        try Row.fetchOne(
            db, sql: "SELECT \(principalColumns) FROM principals WHERE tenant_id = ? AND id = ?", arguments: [tenantID, id]
        ).map(principal)
    }

    private static func principals(_ db: Database, tenantID: String?) throws -> [Principal] {
        if let tenantID {
            return try Row.fetchAll(
                db, sql: "SELECT \(principalColumns) FROM principals WHERE tenant_id = ? ORDER BY id", arguments: [tenantID]
            ).map(principal)
        }
        return try Row.fetchAll(db, sql: "SELECT \(principalColumns) FROM principals ORDER BY tenant_id, id").map(principal)
    }

    private static let keyColumns =
        "id, tenant_id, principal_id, name, secret_hash, models, limits, created_at, expires_at, revoked_at"

    private static func key(_ row: Row) throws -> APIKey {
        let id: String = row[0]
        let owner = "key '\(id)'"
        return APIKey(
            id: id, tenantID: row[1], principalID: row[2], name: row[3], secretHash: row[4],
            models: try StoreRecords.models(row[5], of: owner), limits: try StoreRecords.limits(row[6], of: owner),
            createdAt: row[7], expiresAt: row[8], revokedAt: row[9])
    }

    private static func key(_ db: Database, id: String) throws -> APIKey? {
        try Row.fetchOne(db, sql: "SELECT \(keyColumns) FROM api_keys WHERE id = ?", arguments: [id]).map(key)
    }

    private static func keys(_ db: Database, where condition: String, _ arguments: [String]) throws -> [APIKey] {
        try Row.fetchAll(
            db, sql: "SELECT \(keyColumns) FROM api_keys WHERE \(condition) ORDER BY id", arguments: StatementArguments(arguments)
        ).map(key)
    }

    // MARK: Access

    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        do {
            return try await pool.read(body)
        } catch {
            throw Self.storeError(error)
        }
    }

    /// One IMMEDIATE transaction: committed when `body` returns, rolled back when it throws.
    private func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        do {
            return try await pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                guard let result else { throw StoreError.unavailable("a transaction ended without a result") }
                return result
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    static func storeError(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        if error is CancellationError { return .unavailable("the operation was cancelled") }
        return .unavailable(reason(error))
    }

    /// What went wrong, without the SQL or its arguments.
    static func reason(_ error: any Error) -> String {
        guard let error = error as? DatabaseError else { return String(describing: error) }
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED: return "the database is locked by another writer (SQLite error \(error.resultCode.rawValue))"
        default: return "SQLite error \(error.resultCode.rawValue): \(error.message ?? "no message")"
        }
    }
}
