import ProximaCore

/// The store's tables, as numbered migrations written for both databases side by side so that
/// they hold the same logical schema. A database records each migration applied in
/// `store_migrations`; opening a store applies the missing ones in order, in one transaction, and
/// refuses a database that has migrations this build does not know (a newer Proxima wrote it).
///
/// Migrations are only ever added at the end; a released one never changes.
enum StoreSchema {
    struct Migration: Sendable {
        var version: Int
        var name: String
        var sqlite: [String]
        var postgres: [String]
    }

    static let migrationsTable = "store_migrations"

    static let createMigrationsTable = (
        sqlite: """
            CREATE TABLE IF NOT EXISTS store_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)
            """,
        postgres: """
            CREATE TABLE IF NOT EXISTS store_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)
            """
    )

    static let migrations: [Migration] = [
        Migration(
            version: 1, name: "identities, admin documents and shared counters",
            sqlite: [
                // One row: the identity version, bumped in the transaction of every identity write.
                "CREATE TABLE identity_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
                "INSERT INTO identity_version (id, version) VALUES (1, 0)",
                """
                CREATE TABLE tenants (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, models TEXT, limits TEXT NOT NULL,
                    disabled INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL)
                """,
                """
                CREATE TABLE principals (
                    tenant_id TEXT NOT NULL REFERENCES tenants (id), id TEXT NOT NULL, name TEXT NOT NULL,
                    roles TEXT NOT NULL, limits TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
                    PRIMARY KEY (tenant_id, id))
                """,
                """
                CREATE TABLE api_keys (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, principal_id TEXT NOT NULL, name TEXT NOT NULL,
                    secret_hash TEXT NOT NULL, models TEXT, limits TEXT NOT NULL, created_at REAL NOT NULL,
                    expires_at REAL, revoked_at REAL,
                    FOREIGN KEY (tenant_id, principal_id) REFERENCES principals (tenant_id, id))
                """,
                "CREATE INDEX api_keys_by_principal ON api_keys (tenant_id, principal_id)",
                """
                CREATE TABLE admin_documents (
                    kind TEXT NOT NULL, name TEXT NOT NULL, json TEXT NOT NULL, updated_at REAL NOT NULL,
                    PRIMARY KEY (kind, name))
                """,
                """
                CREATE TABLE rate_counters (
                    name TEXT PRIMARY KEY, per_minute INTEGER NOT NULL, level REAL NOT NULL, updated_at REAL NOT NULL,
                    last_emptied_at REAL NOT NULL, refunded_total REAL NOT NULL)
                """,
                """
                CREATE TABLE spend_counters (
                    scope TEXT NOT NULL, period TEXT NOT NULL, window_number INTEGER NOT NULL,
                    nanodollars INTEGER NOT NULL, PRIMARY KEY (scope, period, window_number))
                """,
            ],
            postgres: [
                "CREATE TABLE identity_version (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)",
                "INSERT INTO identity_version (id, version) VALUES (1, 0)",
                """
                CREATE TABLE tenants (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, models TEXT, limits TEXT NOT NULL,
                    disabled BOOLEAN NOT NULL DEFAULT FALSE, created_at DOUBLE PRECISION NOT NULL,
                    updated_at DOUBLE PRECISION NOT NULL)
                """,
                """
                CREATE TABLE principals (
                    tenant_id TEXT NOT NULL REFERENCES tenants (id), id TEXT NOT NULL, name TEXT NOT NULL,
                    roles TEXT NOT NULL, limits TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
                    updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant_id, id))
                """,
                """
                CREATE TABLE api_keys (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, principal_id TEXT NOT NULL, name TEXT NOT NULL,
                    secret_hash TEXT NOT NULL, models TEXT, limits TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
                    expires_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION,
                    FOREIGN KEY (tenant_id, principal_id) REFERENCES principals (tenant_id, id))
                """,
                "CREATE INDEX api_keys_by_principal ON api_keys (tenant_id, principal_id)",
                """
                CREATE TABLE admin_documents (
                    kind TEXT NOT NULL, name TEXT NOT NULL, json TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                    PRIMARY KEY (kind, name))
                """,
                """
                CREATE TABLE rate_counters (
                    name TEXT PRIMARY KEY, per_minute BIGINT NOT NULL, level DOUBLE PRECISION NOT NULL,
                    updated_at DOUBLE PRECISION NOT NULL, last_emptied_at DOUBLE PRECISION NOT NULL,
                    refunded_total DOUBLE PRECISION NOT NULL)
                """,
                """
                CREATE TABLE spend_counters (
                    scope TEXT NOT NULL, period TEXT NOT NULL, window_number BIGINT NOT NULL,
                    nanodollars BIGINT NOT NULL, PRIMARY KEY (scope, period, window_number))
                """,
            ])
    ]

    static var latestVersion: Int { migrations.last?.version ?? 0 }

    /// The migrations to apply to a database that has `applied`, or why it cannot be used.
    static func pending(after applied: [Int]) throws(StoreError) -> [Migration] {
        if let newest = applied.max(), newest > latestVersion {
            throw .unavailable(
                "the database has schema version \(newest), newer than this build of Proxima knows (\(latestVersion)); "
                    + "run a newer Proxima against it")
        }
        let done = Set(applied)
        return migrations.filter { !done.contains($0.version) }
    }

    // MARK: Spend windows

    /// Spend rows older than this many windows are deleted when the scope next spends.
    static let keptDays = 62
    static let keptMonths = 25

    /// Largest amount a spend counter holds; sums saturate there, as ``Money`` does.
    static let maximumNanodollars = Int64.max
}

/// The stored state of a shared ``RateLimiter``: one row of `rate_counters`.
struct StoredRateCounter: Sendable, Equatable {
    var perMinute: Int
    var level: Double
    var updatedAt: Double
    var lastEmptiedAt: Double
    var refundedTotal: Double

    init(perMinute: Int, level: Double, updatedAt: Double, lastEmptiedAt: Double, refundedTotal: Double) {
        self.perMinute = perMinute
        self.level = level
        self.updatedAt = updatedAt
        self.lastEmptiedAt = lastEmptiedAt
        self.refundedTotal = refundedTotal
    }

    init(_ limiter: RateLimiter) {
        self.init(
            perMinute: limiter.perMinute, level: limiter.level, updatedAt: limiter.updatedAt, lastEmptiedAt: limiter.lastEmptiedAt,
            refundedTotal: limiter.refundedTotal)
    }

    /// A full bucket: how a counter starts.
    static func fresh(perMinute: Int, at now: Double) -> StoredRateCounter {
        StoredRateCounter(RateLimiter(perMinute: perMinute, at: now))
    }

    /// The limiter this row holds, under the limit `perMinute` (the caller's current one).
    func limiter(perMinute: Int) -> RateLimiter {
        RateLimiter(perMinute: perMinute, level: level, updatedAt: updatedAt, lastEmptiedAt: lastEmptiedAt, refundedTotal: refundedTotal)
    }
}
