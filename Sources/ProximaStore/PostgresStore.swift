import Foundation
import Logging
import NIOCore
import PostgresNIO
import ProximaCore

/// The store in a PostgreSQL database, through postgres-nio's `PostgresClient` (a connection
/// pool): several gateway replicas share one database, and so share identities, admin changes
/// and counters. The client's `run()` is one task owned by the store, started by ``open(_:timeoutSeconds:maxConnections:logger:)``
/// and ended by ``close()``.
///
/// Every operation has a deadline (`timeoutSeconds`), waits for a connection included: when it
/// passes, the operation's connection is closed (a query in flight cannot be cancelled otherwise)
/// and the operation fails as `unavailable`, so a database that is gone or hung never hangs a
/// caller. Shared counters change in one transaction with the row locked (`SELECT ... FOR
/// UPDATE`), so concurrent grants from any number of replicas are serialised by the database.
public final class PostgresStore: ProximaStore, SharedCounterBackend {
    public let location: PostgresLocation
    private let client: PostgresClient
    private let running: Task<Void, Never>
    private let timeout: Duration
    private let logger: Logger

    private init(location: PostgresLocation, client: PostgresClient, timeout: Duration, logger: Logger) {
        self.location = location
        self.client = client
        self.timeout = timeout
        self.logger = logger
        running = Task { await client.run() }
    }

    deinit {
        // A store dropped without close() still ends its client's task.
        running.cancel()
    }

    /// Connects, and brings the schema up to date; fails as `unavailable` when the database cannot
    /// be reached within `timeoutSeconds`.
    public static func open(
        _ location: PostgresLocation, timeoutSeconds: Double = 5, maxConnections: Int = 8,
        logger: Logger = Logger(label: "proxima.store")
    ) async throws(StoreError) -> PostgresStore {
        let seconds = min(max(timeoutSeconds, 0.001), StoreSettings.timeoutRange.upperBound)
        let timeout = Duration.milliseconds(Int64((seconds * 1000).rounded(.up)))
        let tls: PostgresClient.Configuration.TLS
        switch location.tls {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(.makeClientConfiguration())
        case .require: tls = .require(.makeClientConfiguration())
        }
        var configuration =
            if let directory = location.socketDirectory {
                PostgresClient.Configuration(
                    unixSocketPath: "\(directory)/.s.PGSQL.\(location.port)", username: location.username,
                    password: location.password, database: location.database)
            } else {
                PostgresClient.Configuration(
                    host: location.host, port: location.port, username: location.username, password: location.password,
                    database: location.database, tls: tls)
            }
        configuration.options.connectTimeout = timeout
        configuration.options.maximumConnections = min(max(maxConnections, 1), StoreSettings.maxConnectionsRange.upperBound)
        configuration.options.minimumConnections = 0
        // The pool logs every failed connection attempt at info: while a database is down that
        // is one line per retry, so only notices and worse get through.
        var background = logger
        background.logLevel = max(logger.logLevel, .notice)
        // One connection first, outside the pool: the pool retries a failed connection until its
        // own circuit breaker trips (15 s), so its waiters would learn only that time ran out,
        // where this says "connection refused" or "password authentication failed" at once.
        do {
            try await probe(location, tls: location.tls, timeout: timeout, logger: background)
        } catch {
            throw .unavailable("cannot connect to PostgreSQL at \(location): \(reason(error, timeout: timeout))")
        }
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        let store = PostgresStore(location: location, client: client, timeout: timeout, logger: logger)
        do {
            try await store.migrate()
        } catch {
            await store.close()
            switch error {
            case .unavailable(let reason): throw .unavailable("cannot use PostgreSQL at \(location): \(reason)")
            default: throw error
            }
        }
        return store
    }

    private static func probe(_ location: PostgresLocation, tls mode: PostgresLocation.TLSMode, timeout: Duration, logger: Logger)
        async throws
    {
        let configuration: PostgresConnection.Configuration
        if let directory = location.socketDirectory {
            configuration = PostgresConnection.Configuration(
                unixSocketPath: "\(directory)/.s.PGSQL.\(location.port)", username: location.username, password: location.password,
                database: location.database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            switch mode {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try .init(configuration: .makeClientConfiguration()))
            case .require: tls = .require(try .init(configuration: .makeClientConfiguration()))
            }
            configuration = PostgresConnection.Configuration(
                host: location.host, port: location.port, username: location.username, password: location.password,
                database: location.database, tls: tls)
        }
        try await withDeadline(timeout) {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try await connection.close()
        }
    }

    public func close() async {
        running.cancel()
        await running.value
    }

    // MARK: Migrations

    /// Any key will do, as long as it is this program's: it serialises migrations of replicas
    /// that start at once.
    private static let migrationLock: Int64 = 0x7072_6f78_696d_61

    private func migrate() async throws(StoreError) {
        try await transaction { connection, logger in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger).consume()
            try await connection.query(PostgresQuery(unsafeSQL: StoreSchema.createMigrationsTable.postgres), logger: logger).consume()
            let applied = try await Self.versions(connection, logger)
            for migration in try StoreSchema.pending(after: applied) {
                for statement in migration.postgres {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).consume()
                }
                try await connection.query(
                    "INSERT INTO store_migrations (version, name, applied_at) VALUES (\(migration.version), \(migration.name), \(Date().timeIntervalSince1970))",
                    logger: logger
                ).consume()
            }
        }
    }

    private static func versions(_ connection: PostgresConnection, _ logger: Logger) async throws -> [Int] {
        var versions: [Int] = []
        for try await version in try await connection.query("SELECT version FROM store_migrations ORDER BY version", logger: logger)
            .decode(Int.self)
        {
            versions.append(version)
        }
        return versions
    }

    public func appliedMigrations() async throws(StoreError) -> [Int] {
        try await withConnection { connection, logger in try await Self.versions(connection, logger) }
    }

    // MARK: Tenants

    public func createTenant(_ tenant: Tenant) async throws(StoreError) {
        try StoreRecords.check(tenant)
        try await transaction { connection, logger in
            let inserted = try await connection.query(
                """
                INSERT INTO tenants (id, name, models, limits, disabled, created_at, updated_at)
                VALUES (\(tenant.id), \(tenant.name), \(StoreRecords.text(tenant.models)), \(StoreRecords.text(tenant.limits)),
                        \(tenant.disabled), \(tenant.createdAt), \(tenant.createdAt))
                ON CONFLICT (id) DO NOTHING RETURNING id
                """, logger: logger
            ).collect()
            guard !inserted.isEmpty else { throw StoreError.alreadyExists("tenant '\(tenant.id)'") }
            try await Self.bumpIdentityVersion(connection, logger)
        }
    }

    public func tenant(id: String) async throws(StoreError) -> Tenant {
        try StoreRecords.checkName(id, field: "tenant")
        return try await withConnection { connection, logger in
            guard let tenant = try await Self.tenants(connection, logger, id: id).first else {
                throw StoreError.notFound("tenant '\(id)'")
            }
            return tenant
        }
    }

    public func tenants() async throws(StoreError) -> [Tenant] {
        try await withConnection { connection, logger in try await Self.tenants(connection, logger, id: nil) }
    }

    public func updateTenant(id: String, _ update: TenantUpdate) async throws(StoreError) -> Tenant {
        try StoreRecords.checkName(id, field: "tenant")
        return try await transaction { connection, logger in
            guard let current = try await Self.tenants(connection, logger, id: id, locking: true).first else {
                throw StoreError.notFound("tenant '\(id)'")
            }
            let changed = update.applied(to: current)
            try StoreRecords.check(changed)
            guard changed != current else { return current }
            try await connection.query(
                """
                UPDATE tenants SET name = \(changed.name), models = \(StoreRecords.text(changed.models)),
                    limits = \(StoreRecords.text(changed.limits)), disabled = \(changed.disabled),
                    updated_at = \(Date().timeIntervalSince1970)
                WHERE id = \(id)
                """, logger: logger
            ).consume()
            try await Self.bumpIdentityVersion(connection, logger)
            return changed
        }
    }

    // MARK: Principals

    public func createPrincipal(_ principal: Principal) async throws(StoreError) {
        try StoreRecords.check(principal)
        try await transaction { connection, logger in
            guard try await !Self.tenants(connection, logger, id: principal.tenantID).isEmpty else {
                throw StoreError.notFound("tenant '\(principal.tenantID)'")
            }
            let inserted = try await connection.query(
                """
                INSERT INTO principals (tenant_id, id, name, roles, limits, created_at, updated_at)
                VALUES (\(principal.tenantID), \(principal.id), \(principal.name), \(StoreRecords.text(roles: principal.roles)),
                        \(StoreRecords.text(principal.limits)), \(principal.createdAt), \(principal.createdAt))
                ON CONFLICT (tenant_id, id) DO NOTHING RETURNING id
                """, logger: logger
            ).collect()
            guard !inserted.isEmpty else {
                throw StoreError.alreadyExists("principal '\(principal.id)' of tenant '\(principal.tenantID)'")
            }
            try await Self.bumpIdentityVersion(connection, logger)
        }
    }

    public func principal(tenantID: String, id: String) async throws(StoreError) -> Principal {
        try StoreRecords.checkName(tenantID, field: "tenant")
        try StoreRecords.checkName(id, field: "principal")
        return try await withConnection { connection, logger in
            guard let principal = try await Self.principals(connection, logger, tenantID: tenantID, id: id).first else {
                throw StoreError.notFound("principal '\(id)' of tenant '\(tenantID)'")
            }
            return principal
        }
    }

    public func principals(tenantID: String) async throws(StoreError) -> [Principal] {
        try StoreRecords.checkName(tenantID, field: "tenant")
        return try await transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { connection, logger in
            guard try await !Self.tenants(connection, logger, id: tenantID).isEmpty else {
                throw StoreError.notFound("tenant '\(tenantID)'")
            }
            return try await Self.principals(connection, logger, tenantID: tenantID, id: nil)
        }
    }

    public func updatePrincipal(tenantID: String, id: String, _ update: PrincipalUpdate) async throws(StoreError) -> Principal {
        try StoreRecords.checkName(tenantID, field: "tenant")
        try StoreRecords.checkName(id, field: "principal")
        return try await transaction { connection, logger in
            guard let current = try await Self.principals(connection, logger, tenantID: tenantID, id: id, locking: true).first else {
                throw StoreError.notFound("principal '\(id)' of tenant '\(tenantID)'")
            }
            let changed = update.applied(to: current)
            try StoreRecords.check(changed)
            guard changed != current else { return current }
            try await connection.query(
                """
                UPDATE principals SET name = \(changed.name), roles = \(StoreRecords.text(roles: changed.roles)),
                    limits = \(StoreRecords.text(changed.limits)), updated_at = \(Date().timeIntervalSince1970)
                WHERE tenant_id = \(tenantID) AND id = \(id)
                """, logger: logger
            ).consume()
            try await Self.bumpIdentityVersion(connection, logger)
            return changed
        }
    }

    // MARK: Keys

    public func createKey(_ request: NewAPIKey, at now: Double) async throws(StoreError) -> IssuedAPIKey {
        let minted = try StoreRecords.mint(request, at: now)
        let key = minted.key
        try await transaction { connection, logger in
            guard try await !Self.principals(connection, logger, tenantID: key.tenantID, id: key.principalID).isEmpty else {
                throw StoreError.notFound("principal '\(key.principalID)' of tenant '\(key.tenantID)'")
            }
            let inserted = try await connection.query(
                """
                INSERT INTO api_keys (id, tenant_id, principal_id, name, secret_hash, models, limits, created_at, expires_at, revoked_at)
                VALUES (\(key.id), \(key.tenantID), \(key.principalID), \(key.name), \(key.secretHash), \(StoreRecords.text(key.models)),
                        \(StoreRecords.text(key.limits)), \(key.createdAt), \(key.expiresAt), NULL)
                ON CONFLICT (id) DO NOTHING RETURNING id
                """, logger: logger
            ).collect()
            // 56 random bits: a clash is a one-in-10^16 event, but it must not overwrite a key.
            guard !inserted.isEmpty else { throw StoreError.alreadyExists("key '\(key.id)'") }
            try await Self.bumpIdentityVersion(connection, logger)
        }
        return IssuedAPIKey(key: key, token: minted.token)
    }

    public func key(id: String) async throws(StoreError) -> APIKey {
        try StoreRecords.checkKeyID(id)
        return try await withConnection { connection, logger in
            guard let key = try await Self.keys(connection, logger, "WHERE id = \(id)").first else {
                throw StoreError.notFound("key '\(id)'")
            }
            return key
        }
    }

    public func keys(tenantID: String, principalID: String?) async throws(StoreError) -> [APIKey] {
        try StoreRecords.checkName(tenantID, field: "tenant")
        if let principalID { try StoreRecords.checkName(principalID, field: "principal") }
        return try await transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { connection, logger in
            guard try await !Self.tenants(connection, logger, id: tenantID).isEmpty else {
                throw StoreError.notFound("tenant '\(tenantID)'")
            }
            if let principalID {
                guard try await !Self.principals(connection, logger, tenantID: tenantID, id: principalID).isEmpty else {
                    throw StoreError.notFound("principal '\(principalID)' of tenant '\(tenantID)'")
                }
                return try await Self.keys(connection, logger, "WHERE tenant_id = \(tenantID) AND principal_id = \(principalID)")
            }
            return try await Self.keys(connection, logger, "WHERE tenant_id = \(tenantID)")
        }
    }

    public func revokeKey(id: String, at now: Double) async throws(StoreError) -> APIKey {
        try StoreRecords.checkKeyID(id)
        try StoreRecords.checkTime(now, field: "revoked_at")
        return try await transaction { connection, logger in
            guard var key = try await Self.keys(connection, logger, "WHERE id = \(id)", locking: true).first else {
                throw StoreError.notFound("key '\(id)'")
            }
            guard key.revokedAt == nil else { return key }
            try await connection.query("UPDATE api_keys SET revoked_at = \(now) WHERE id = \(id)", logger: logger).consume()
            try await Self.bumpIdentityVersion(connection, logger)
            key.revokedAt = now
            return key
        }
    }

    // MARK: The change cursor

    public func identityVersion() async throws(StoreError) -> Int64 {
        try await withConnection { connection, logger in try await Self.version(connection, logger) }
    }

    public func identitySnapshot() async throws(StoreError) -> StoredIdentities {
        // REPEATABLE READ: every statement sees the database as of the first one.
        try await transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { connection, logger in
            StoredIdentities(
                version: try await Self.version(connection, logger),
                tenants: try await Self.tenants(connection, logger, id: nil),
                principals: try await Self.principals(connection, logger, tenantID: nil, id: nil),
                keys: try await Self.keys(connection, logger, "WHERE revoked_at IS NULL"))
        }
    }

    // MARK: Admin documents

    public func putDocument(_ document: AdminDocument) async throws(StoreError) {
        try StoreRecords.check(document)
        try await withConnection { connection, logger in
            try await connection.query(
                """
                INSERT INTO admin_documents (kind, name, json, updated_at)
                VALUES (\(document.kind), \(document.name), \(document.json), \(document.updatedAt))
                ON CONFLICT (kind, name) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at
                """, logger: logger
            ).consume()
        }
    }

    public func documents(kind: String?) async throws(StoreError) -> [AdminDocument] {
        if let kind { try StoreRecords.checkName(kind, field: "kind") }
        return try await withConnection { connection, logger in
            let query: PostgresQuery =
                if let kind {
                    "SELECT kind, name, json, updated_at FROM admin_documents WHERE kind = \(kind) ORDER BY kind, name"
                } else {
                    "SELECT kind, name, json, updated_at FROM admin_documents ORDER BY kind, name"
                }
            var documents: [AdminDocument] = []
            for try await (kind, name, json, updatedAt) in try await connection.query(query, logger: logger)
                .decode((String, String, String, Double).self)
            {
                documents.append(AdminDocument(kind: kind, name: name, json: json, updatedAt: updatedAt))
            }
            return documents
        }
    }

    public func deleteDocument(kind: String, name: String) async throws(StoreError) -> Bool {
        try StoreRecords.checkName(kind, field: "kind")
        try StoreRecords.checkText(name, field: "name", maximumBytes: AdminDocument.maximumNameBytes)
        return try await withConnection { connection, logger in
            let deleted = try await connection.query(
                "DELETE FROM admin_documents WHERE kind = \(kind) AND name = \(name) RETURNING name", logger: logger
            ).collect()
            return !deleted.isEmpty
        }
    }

    // MARK: Shared counters

    /// Creates the counter full if it has no row, then locks its row, applies `change` and writes
    /// it back, in one transaction. A concurrent first use waits on the other's insert, then
    /// finds its row.
    func changeCounter<T: Sendable>(
        _ name: String, perMinute: Int, at now: Double, _ change: @escaping @Sendable (inout RateLimiter) -> T
    ) async throws(StoreError) -> T {
        try await transaction { connection, logger in
            let fresh = StoredRateCounter.fresh(perMinute: perMinute, at: now)
            try await connection.query(
                """
                INSERT INTO rate_counters (name, per_minute, level, updated_at, last_emptied_at, refunded_total)
                VALUES (\(name), \(fresh.perMinute), \(fresh.level), \(fresh.updatedAt), \(fresh.lastEmptiedAt), \(fresh.refundedTotal))
                ON CONFLICT (name) DO NOTHING
                """, logger: logger
            ).consume()
            var stored: StoredRateCounter?
            for try await (perMinute, level, updatedAt, lastEmptiedAt, refundedTotal) in try await connection.query(
                """
                SELECT per_minute, level, updated_at, last_emptied_at, refunded_total FROM rate_counters
                WHERE name = \(name) FOR UPDATE
                """, logger: logger
            ).decode((Int, Double, Double, Double, Double).self) {
                stored = StoredRateCounter(
                    perMinute: perMinute, level: level, updatedAt: updatedAt, lastEmptiedAt: lastEmptiedAt, refundedTotal: refundedTotal)
            }
            guard let stored else { throw StoreError.unavailable("the counter '\(name)' vanished during its transaction") }
            var limiter = stored.limiter(perMinute: perMinute)
            let result = change(&limiter)
            let updated = StoredRateCounter(limiter)
            try await connection.query(
                """
                UPDATE rate_counters SET per_minute = \(updated.perMinute), level = \(updated.level),
                    updated_at = \(updated.updatedAt), last_emptied_at = \(updated.lastEmptiedAt),
                    refunded_total = \(updated.refundedTotal)
                WHERE name = \(name)
                """, logger: logger
            ).consume()
            return result
        }
    }

    public func addSpend(scope: String, amount: Money, at now: Double) async throws(StoreError) -> SpendTotals {
        try StoreRecords.checkScope(scope, at: now)
        let day = UTCCalendar.window(.day, at: now).number
        let month = UTCCalendar.window(.month, at: now).number
        return try await transaction { connection, logger in
            var totals: [Int64] = []
            for (period, window) in [(BudgetPeriod.day, day), (.month, month)] {
                var total: Int64 = 0
                for try await value in try await connection.query(
                    """
                    INSERT INTO spend_counters (scope, period, window_number, nanodollars)
                    VALUES (\(scope), \(period.rawValue), \(window), \(amount.nanodollars))
                    ON CONFLICT (scope, period, window_number) DO UPDATE SET nanodollars =
                        CASE WHEN spend_counters.nanodollars > 9223372036854775807 - excluded.nanodollars
                        THEN 9223372036854775807 ELSE spend_counters.nanodollars + excluded.nanodollars END
                    RETURNING nanodollars
                    """, logger: logger
                ).decode(Int64.self) {
                    total = value
                }
                totals.append(total)
            }
            try await connection.query(
                """
                DELETE FROM spend_counters WHERE scope = \(scope) AND
                    ((period = 'day' AND window_number < \(day - StoreSchema.keptDays))
                     OR (period = 'month' AND window_number < \(month - StoreSchema.keptMonths)))
                """, logger: logger
            ).consume()
            return SpendTotals(
                day: day, month: month, spentToday: Money(nanodollars: totals[0]), spentThisMonth: Money(nanodollars: totals[1]))
        }
    }

    public func spend(scope: String, at now: Double) async throws(StoreError) -> SpendTotals {
        try StoreRecords.checkScope(scope, at: now)
        let day = UTCCalendar.window(.day, at: now).number
        let month = UTCCalendar.window(.month, at: now).number
        return try await withConnection { connection, logger in
            var spentToday: Int64 = 0
            var spentThisMonth: Int64 = 0
            for try await (period, window, nanodollars) in try await connection.query(
                """
                SELECT period, window_number, nanodollars FROM spend_counters
                WHERE scope = \(scope) AND ((period = 'day' AND window_number = \(day)) OR (period = 'month' AND window_number = \(month)))
                """, logger: logger
            ).decode((String, Int, Int64).self) {
                if period == BudgetPeriod.day.rawValue && window == day { spentToday = nanodollars }
                if period == BudgetPeriod.month.rawValue && window == month { spentThisMonth = nanodollars }
            }
            return SpendTotals(
                day: day, month: month, spentToday: Money(nanodollars: spentToday), spentThisMonth: Money(nanodollars: spentThisMonth))
        }
    }

    // MARK: Rows

    private static func bumpIdentityVersion(_ connection: PostgresConnection, _ logger: Logger) async throws {
        try await connection.query("UPDATE identity_version SET version = version + 1 WHERE id = 1", logger: logger).consume()
    }

    private static func version(_ connection: PostgresConnection, _ logger: Logger) async throws -> Int64 {
        var version: Int64 = 0
        for try await value in try await connection.query("SELECT version FROM identity_version WHERE id = 1", logger: logger)
            .decode(Int64.self)
        {
            version = value
        }
        return version
    }

    private static func tenants(_ connection: PostgresConnection, _ logger: Logger, id: String?, locking: Bool = false) async throws
        -> [Tenant]
    {
        let columns = "SELECT id, name, models, limits, disabled, created_at FROM tenants"
        let query: PostgresQuery =
            if let id {
                "\(unescaped: columns) WHERE id = \(id) \(unescaped: locking ? "FOR UPDATE" : "")"
            } else {
                "\(unescaped: columns) ORDER BY id"
            }
        var tenants: [Tenant] = []
        for try await (id, name, models, limits, disabled, createdAt) in try await connection.query(query, logger: logger)
            .decode((String, String, String?, String, Bool, Double).self)
        {
            let owner = "tenant '\(id)'"
            tenants.append(
                Tenant(
                    id: id, name: name, models: try StoreRecords.models(models, of: owner),
                    limits: try StoreRecords.limits(limits, of: owner), disabled: disabled, createdAt: createdAt))
        }
        return tenants
    }

    private static func principals(
        _ connection: PostgresConnection, _ logger: Logger, tenantID: String?, id: String?, locking: Bool = false
    ) async throws -> [Principal] {
        let columns = "SELECT tenant_id, id, name, roles, limits, created_at FROM principals"
        let query: PostgresQuery =
            switch (tenantID, id) {
            case (let tenantID?, let id?):
                "\(unescaped: columns) WHERE tenant_id = \(tenantID) AND id = \(id) \(unescaped: locking ? "FOR UPDATE" : "")"
            case (let tenantID?, nil): "\(unescaped: columns) WHERE tenant_id = \(tenantID) ORDER BY id"
            default: "\(unescaped: columns) ORDER BY tenant_id, id"
            }
        var principals: [Principal] = []
        for try await (tenantID, id, name, roles, limits, createdAt) in try await connection.query(query, logger: logger)
            .decode((String, String, String, String, String, Double).self)
        {
            let owner = "principal '\(id)' of tenant '\(tenantID)'"
            principals.append(
                Principal(
                    id: id, tenantID: tenantID, name: name, roles: try StoreRecords.roles(roles, of: owner),
                    limits: try StoreRecords.limits(limits, of: owner), createdAt: createdAt))
        }
        return principals
    }

    /// Keys matching `condition` (a `WHERE` clause with its binds), by id, or locked for a change.
    private static func keys(
        _ connection: PostgresConnection, _ logger: Logger, _ condition: PostgresQuery, locking: Bool = false
    ) async throws -> [APIKey] {
        var query: PostgresQuery =
            "SELECT id, tenant_id, principal_id, name, secret_hash, models, limits, created_at, expires_at, revoked_at FROM api_keys "
        query.sql += condition.sql + (locking ? " FOR UPDATE" : " ORDER BY id")
        query.binds = condition.binds
        var keys: [APIKey] = []
        for try await (id, tenantID, principalID, name, secretHash, models, limits, createdAt, expiresAt, revokedAt)
            in try await connection.query(query, logger: logger)
            .decode((String, String, String, String, String, String?, String, Double, Double?, Double?).self)
        {
            let owner = "key '\(id)'"
            keys.append(
                APIKey(
                    id: id, tenantID: tenantID, principalID: principalID, name: name, secretHash: secretHash,
                    models: try StoreRecords.models(models, of: owner), limits: try StoreRecords.limits(limits, of: owner),
                    createdAt: createdAt, expiresAt: expiresAt, revokedAt: revokedAt))
        }
        return keys
    }

    // MARK: Access

    /// Runs `body` on a pooled connection within the deadline.
    private func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws(StoreError) -> T {
        let client = client
        let logger = logger
        do {
            return try await Self.withDeadline(timeout) {
                try await client.withConnection { connection in
                    // A query in flight cannot be cancelled: closing its connection ends it, and the
                    // pool replaces the connection.
                    try await withTaskCancellationHandler {
                        try await body(connection, logger)
                    } onCancel: {
                        let _: EventLoopFuture<Void> = connection.close()
                    }
                }
            }
        } catch {
            throw Self.storeError(error, timeout: timeout)
        }
    }

    /// One transaction: committed when `body` returns, rolled back when it throws.
    private func transaction<T: Sendable>(
        _ begin: String = "BEGIN", _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws(StoreError) -> T {
        try await withConnection { connection, logger in
            try await connection.query(PostgresQuery(unsafeSQL: begin), logger: logger).consume()
            do {
                let value = try await body(connection, logger)
                try await connection.query("COMMIT", logger: logger).consume()
                return value
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger).consume()
                throw error
            }
        }
    }

    struct DeadlinePassed: Error {}

    /// `body`'s result, or ``DeadlinePassed`` once `timeout` has passed (`body` is then cancelled and
    /// awaited).
    static func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw DeadlinePassed() }
            return value
        }
    }

    static func storeError(_ error: any Error, timeout: Duration) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? PostgresTransactionError, let inner = error.closureError ?? error.beginError ?? error.commitError {
            return storeError(inner, timeout: timeout)
        }
        if let error = error as? PSQLError, error.code == .server, error.serverInfo?[.sqlState] == "23505" {
            return .alreadyExists("a row with that identifier (\(error.serverInfo?[.tableName] ?? "unknown table"))")
        }
        return .unavailable(reason(error, timeout: timeout))
    }

    /// What went wrong, without the query, its binds or credentials.
    static func reason(_ error: any Error, timeout: Duration) -> String {
        switch error {
        case is DeadlinePassed: return "no connection or no answer within \(timeout)"
        case is CancellationError: return "the operation was cancelled"
        case let error as PSQLError:
            switch error.code {
            case .server:
                let state = error.serverInfo?[.sqlState] ?? "?"
                let message = error.serverInfo?[.message] ?? "no message"
                return "the server refused (SQLSTATE \(state)): \(message)"
            case .connectionError:
                return error.underlying.map { String(describing: $0) } ?? "cannot connect"
            case .serverClosedConnection, .clientClosedConnection, .uncleanShutdown: return "the connection was closed"
            case .poolClosed: return "the store is closed"
            case .queryCancelled: return "the operation was cancelled"
            default: return "PostgreSQL client error \(error.code)"
            }
        default:
            return String(describing: error)
        }
    }
}

extension PostgresRowSequence {
    /// Reads and drops every row, so that errors of the statement surface here.
    func consume() async throws {
        for try await _ in self {}
    }
}
