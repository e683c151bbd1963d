import Foundation
import GRDB
import ProximaCore
import Testing

@testable import ProximaStore

/// One suite for both stores: every test runs against a SQLite file and a real PostgreSQL 15.
@Suite struct StoreBehaviourTests {
    static let now = 1_780_000_000.0

    // MARK: Identities

    @Test(arguments: Backend.allCases)
    func tenantsPrincipalsAndKeysRoundTrip(_ backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let acme = Tenant(
                id: "acme", name: "Acme Corp", models: .only(["llama-3.1-*", "qwen"]),
                limits: ScopeLimits(requestsPerMinute: 600, dailyBudgetUSD: 25), createdAt: Self.now)
            try await store.createTenant(acme)
            try await store.createTenant(Tenant(id: "beta", createdAt: Self.now))
            #expect(try await store.tenant(id: "acme") == acme)
            #expect(try await store.tenants().map(\.id) == ["acme", "beta"])

            let updated = try await store.updateTenant(
                id: "beta", TenantUpdate(models: .only(["qwen"]), limits: ScopeLimits(tokensPerMinute: 90_000), disabled: true))
            #expect(updated.models == .only(["qwen"]) && updated.limits.tokensPerMinute == 90_000 && updated.disabled)
            #expect(try await store.tenant(id: "beta") == updated)

            let ci = Principal(id: "ci", tenantID: "acme", roles: [Role.steering], createdAt: Self.now)
            try await store.createPrincipal(ci)
            try await store.createPrincipal(Principal(id: "alice", tenantID: "acme", createdAt: Self.now))
            #expect(try await store.principal(tenantID: "acme", id: "ci") == ci)
            #expect(try await store.principals(tenantID: "acme").map(\.id) == ["alice", "ci"])
            let promoted = try await store.updatePrincipal(
                tenantID: "acme", id: "alice", PrincipalUpdate(roles: [Role.admin], limits: ScopeLimits(concurrentRequests: 4)))
            #expect(promoted.roles == [Role.admin] && promoted.limits.concurrentRequests == 4)
            #expect(try await store.principal(tenantID: "acme", id: "alice") == promoted)

            let issued = try await store.createKey(
                NewAPIKey(tenantID: "acme", principalID: "ci", name: "deploy", models: .only(["qwen"]), expiresAt: Self.now + 3600),
                at: Self.now)
            let token = try #require(APIKeyToken(parsing: issued.token))
            #expect(token.id == issued.key.id[...])
            let stored = try await store.key(id: issued.key.id)
            #expect(stored == issued.key)
            #expect(APIKeySecret.matches(token.secret, stored))
            #expect(!String(describing: issued).contains(issued.token))
            #expect(!String(describing: stored).contains(stored.secretHash))
            #expect(stored.isUsable(at: Self.now + 3599) && !stored.isUsable(at: Self.now + 3600))

            let other = try await store.createKey(NewAPIKey(tenantID: "acme", principalID: "alice"), at: Self.now)
            #expect(Set(try await store.keys(tenantID: "acme", principalID: nil).map(\.id)) == [issued.key.id, other.key.id])
            #expect(try await store.keys(tenantID: "acme", principalID: "alice").map(\.id) == [other.key.id])
            #expect(try await store.keys(tenantID: "beta", principalID: nil).isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func missingAndDuplicateIdentitiesAreTypedErrors(_ backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            try await store.createTenant(Tenant(id: "acme", createdAt: Self.now))
            try await store.createPrincipal(Principal(id: "ci", tenantID: "acme", createdAt: Self.now))
            #expect(await storeError { try await store.createTenant(Tenant(id: "acme", createdAt: Self.now)) } == .alreadyExists("tenant 'acme'"))
            #expect(
                await storeError { try await store.createPrincipal(Principal(id: "ci", tenantID: "acme", createdAt: Self.now)) }?.kind
                    == "alreadyExists")
            #expect(await storeError { _ = try await store.tenant(id: "nobody") } == .notFound("tenant 'nobody'"))
            #expect(
                await storeError { try await store.createPrincipal(Principal(id: "x", tenantID: "nobody", createdAt: Self.now)) }
                    == .notFound("tenant 'nobody'"))
            #expect(await storeError { _ = try await store.principals(tenantID: "nobody") }?.kind == "notFound")
            #expect(
                await storeError { _ = try await store.createKey(NewAPIKey(tenantID: "acme", principalID: "nobody"), at: Self.now) }?
                    .kind == "notFound")
            #expect(await storeError { _ = try await store.key(id: "aaaaaaaaaaaa") } == .notFound("key 'aaaaaaaaaaaa'"))
            #expect(await storeError { _ = try await store.revokeKey(id: "aaaaaaaaaaaa", at: Self.now) }?.kind == "notFound")
            #expect(await storeError { _ = try await store.updateTenant(id: "nobody", TenantUpdate(disabled: true)) }?.kind == "notFound")
        }
    }

    @Test(arguments: Backend.allCases)
    func hostileInputIsRefusedAndWritesNothing(_ backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            try await store.createTenant(Tenant(id: "acme", createdAt: Self.now))
            try await store.createPrincipal(Principal(id: "ci", tenantID: "acme", createdAt: Self.now))
            let version = try await store.identityVersion()
            let nan = Double.nan
            let cases: [(String, () async throws -> Void)] = [
                ("invalid(id)", { try await store.createTenant(Tenant(id: String(repeating: "a", count: 65))) }),
                ("invalid(id)", { try await store.createTenant(Tenant(id: "Acme")) }),
                ("invalid(id)", { try await store.createTenant(Tenant(id: "-acme")) }),
                ("invalid(id)", { try await store.createTenant(Tenant(id: "a b")) }),
                ("invalid(id)", { try await store.createTenant(Tenant(id: "a/../b")) }),
                ("invalid(id)", { try await store.createTenant(Tenant(id: "acmé")) }),
                ("invalid(id)", { try await store.createTenant(Tenant(id: "")) }),
                ("invalid(name)", { try await store.createTenant(Tenant(id: "x", name: "line\nbreak")) }),
                ("invalid(name)", { try await store.createTenant(Tenant(id: "x", name: String(repeating: "n", count: 257))) }),
                (
                    "invalid(limits.requests_per_minute)",
                    { try await store.createTenant(Tenant(id: "x", limits: ScopeLimits(requestsPerMinute: -1))) }
                ),
                ("invalid(limits.daily_budget_usd)", { try await store.createTenant(Tenant(id: "x", limits: ScopeLimits(dailyBudgetUSD: nan))) }),
                (
                    "invalid(limits.monthly_budget_usd)",
                    { try await store.createTenant(Tenant(id: "x", limits: ScopeLimits(monthlyBudgetUSD: .infinity))) }
                ),
                ("invalid(limits.max_tokens)", { try await store.createTenant(Tenant(id: "x", limits: ScopeLimits(maxTokens: 0))) }),
                ("invalid(models[0])", { try await store.createTenant(Tenant(id: "x", models: .only(["ll*ama"]))) }),
                ("invalid(created_at)", { try await store.createTenant(Tenant(id: "x", createdAt: nan)) }),
                ("invalid(roles)", { try await store.createPrincipal(Principal(id: "p", tenantID: "acme", roles: ["Admin!"])) }),
                (
                    "invalid(limits.concurrent_requests)",
                    {
                        _ = try await store.updatePrincipal(
                            tenantID: "acme", id: "ci", PrincipalUpdate(limits: ScopeLimits(concurrentRequests: 0)))
                    }
                ),
                (
                    "invalid(limits.tokens_per_minute)",
                    { _ = try await store.updateTenant(id: "acme", TenantUpdate(limits: ScopeLimits(tokensPerMinute: Int.max))) }
                ),
                (
                    "invalid(expires_at)",
                    { _ = try await store.createKey(NewAPIKey(tenantID: "acme", principalID: "ci", expiresAt: Self.now - 1), at: Self.now) }
                ),
                ("invalid(created_at)", { _ = try await store.createKey(NewAPIKey(tenantID: "acme", principalID: "ci"), at: -.infinity) }),
                ("invalid(key)", { _ = try await store.key(id: "'; DROP TABLE api_keys; --") }),
                ("invalid(key)", { _ = try await store.revokeKey(id: "AAAAAAAAAAAA", at: Self.now) }),
                ("invalid(json)", { try await store.putDocument(AdminDocument(kind: "endpoint", name: "a", json: "{not json", updatedAt: Self.now)) }),
                ("invalid(kind)", { try await store.putDocument(AdminDocument(kind: "Bad Kind", name: "a", json: "{}", updatedAt: Self.now)) }),
                ("invalid(per_minute)", { _ = try await store.grantLease(counter: "c", perMinute: 0, requested: 1, minimum: 1, at: Self.now) }),
                ("invalid(requested)", { _ = try await store.grantLease(counter: "c", perMinute: 10, requested: -5, minimum: 1, at: Self.now) }),
                ("invalid(at)", { _ = try await store.grantLease(counter: "c", perMinute: 10, requested: 1, minimum: 1, at: nan) }),
                ("invalid(counter)", { _ = try await store.grantLease(counter: "", perMinute: 10, requested: 1, minimum: 1, at: Self.now) }),
                (
                    "invalid(units)",
                    {
                        _ = try await store.refundLease(
                            counter: "c", perMinute: 10, units: nan, of: RateCharge(units: 1, at: Self.now, levelBefore: 0, refundedBefore: 0),
                            at: Self.now)
                    }
                ),
                ("invalid(scope)", { _ = try await store.addSpend(scope: "a\u{0}b", amount: Money(dollars: 1), at: Self.now) }),
            ]
            for (expected, attempt) in cases {
                let error = await storeError(attempt)
                #expect(error?.kind == expected, "expected \(expected), got \(String(describing: error))")
            }
            #expect(try await store.tenants().map(\.id) == ["acme"])
            #expect(try await store.principals(tenantID: "acme").map(\.id) == ["ci"])
            #expect(try await store.keys(tenantID: "acme", principalID: nil).isEmpty)
            #expect(try await store.documents(kind: nil).isEmpty)
            #expect(try await store.identityVersion() == version)

            // Free text goes in as data, never as SQL.
            let sneaky = "x'); DROP TABLE tenants; --"
            try await store.createTenant(Tenant(id: "sneaky", name: sneaky, createdAt: Self.now))
            #expect(try await store.tenant(id: "sneaky").name == sneaky)
            #expect(try await store.tenants().count == 2)
        }
    }

    // MARK: Persistence and migrations

    @Test(arguments: Backend.allCases)
    func migrationsRunOnceAndDataSurvivesReopening(_ backend: Backend) async throws {
        let database = try await TestDatabase.make(backend)
        defer { database.remove() }
        let first = try await database.open()
        #expect(try await first.appliedMigrations() == StoreSchema.migrations.map(\.version))
        try await first.createTenant(Tenant(id: "acme", limits: ScopeLimits(requestsPerMinute: 60), createdAt: Self.now))
        try await first.createPrincipal(Principal(id: "ci", tenantID: "acme", roles: [Role.admin], createdAt: Self.now))
        let issued = try await first.createKey(NewAPIKey(tenantID: "acme", principalID: "ci", name: "laptop"), at: Self.now)
        try await first.putDocument(AdminDocument(kind: "endpoint-drain", name: "gpu-1", json: #"{"drained":true}"#, updatedAt: Self.now))
        let grant = try await first.grantLease(counter: "acme/requests", perMinute: 60, requested: 10, minimum: 1, at: Self.now)
        #expect(grant.units == 10)
        try await first.addSpend(scope: "tenant/acme", amount: Money(dollars: 1.25), at: Self.now)
        let before = try await first.identitySnapshot()
        await first.close()

        // Twice: a second opening must find nothing to migrate and change nothing.
        for _ in 0..<2 {
            let again = try await database.open()
            #expect(try await again.appliedMigrations() == StoreSchema.migrations.map(\.version))
            #expect(try await again.identitySnapshot() == before)
            #expect(try await again.key(id: issued.key.id) == issued.key)
            #expect(try await again.documents(kind: "endpoint-drain").map(\.json) == [#"{"drained":true}"#])
            #expect(try await again.spend(scope: "tenant/acme", at: Self.now).spentToday == Money(dollars: 1.25))
            // The 10 units granted before are still charged: 50 are left, not 60.
            let rest = try await again.grantLease(counter: "acme/requests", perMinute: 60, requested: 60, minimum: 51, at: Self.now)
            #expect(rest.units == 0)
            await again.close()
        }
    }

    @Test(arguments: Backend.allCases)
    func aDatabaseFromANewerProximaIsRefused(_ backend: Backend) async throws {
        let database = try await TestDatabase.make(backend)
        defer { database.remove() }
        try await database.open().close()
        try await database.execute("INSERT INTO store_migrations (version, name, applied_at) VALUES (999, 'from the future', 0)")
        do {
            _ = try await database.open()
            Issue.record("a database with schema version 999 was opened")
        } catch let error as StoreError {
            guard case .unavailable(let reason) = error else { throw error }
            #expect(reason.contains("999"))
        }
    }

    // MARK: The change cursor

    @Test(arguments: Backend.allCases)
    func revocationReachesAnotherReplicaThroughTheVersionCursor(_ backend: Backend) async throws {
        let database = try await TestDatabase.make(backend)
        defer { database.remove() }
        let admin = try await database.open()
        let replica = try await database.open()
        try await admin.createTenant(Tenant(id: "acme", createdAt: Self.now))
        try await admin.createPrincipal(Principal(id: "ci", tenantID: "acme", createdAt: Self.now))
        let issued = try await admin.createKey(NewAPIKey(tenantID: "acme", principalID: "ci"), at: Self.now)

        let seen = try await replica.identitySnapshot()
        #expect(seen.keys.map(\.id) == [issued.key.id])
        #expect(try await replica.identityVersion() == seen.version)

        let revoked = try await admin.revokeKey(id: issued.key.id, at: Self.now + 10)
        #expect(revoked.revokedAt == Self.now + 10 && !revoked.isUsable(at: Self.now + 11))
        let moved = try await replica.identityVersion()
        #expect(moved > seen.version)
        let fresh = try await replica.identitySnapshot()
        #expect(fresh.version == moved && fresh.keys.isEmpty && fresh.tenants.map(\.id) == ["acme"])
        #expect(try await replica.key(id: issued.key.id).revokedAt == Self.now + 10)

        // Revoking again changes nothing: the first time stays, the version does not move.
        let again = try await admin.revokeKey(id: issued.key.id, at: Self.now + 99)
        #expect(again.revokedAt == Self.now + 10)
        #expect(try await replica.identityVersion() == moved)
        // Neither do updates that change nothing, nor reads and counters.
        _ = try await admin.updateTenant(id: "acme", TenantUpdate(disabled: false))
        _ = try await admin.grantLease(counter: "c", perMinute: 10, requested: 1, minimum: 1, at: Self.now)
        #expect(try await replica.identityVersion() == moved)
        await admin.close()
        await replica.close()
    }

    // MARK: Admin documents

    @Test(arguments: Backend.allCases)
    func adminDocumentsAreReplacedListedAndDeleted(_ backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            try await store.putDocument(AdminDocument(kind: "endpoint-drain", name: "gpu-2", json: "true", updatedAt: Self.now))
            try await store.putDocument(AdminDocument(kind: "endpoint-drain", name: "gpu-1", json: "true", updatedAt: Self.now))
            try await store.putDocument(
                AdminDocument(kind: "routing-policy", name: "default", json: #"{"kind":"slo"}"#, updatedAt: Self.now))
            try await store.putDocument(AdminDocument(kind: "endpoint-drain", name: "gpu-1", json: "false", updatedAt: Self.now + 5))
            let drains = try await store.documents(kind: "endpoint-drain")
            #expect(drains.map(\.name) == ["gpu-1", "gpu-2"])
            #expect(drains[0].json == "false" && drains[0].updatedAt == Self.now + 5)
            #expect(try await store.documents(kind: nil).map(\.kind) == ["endpoint-drain", "endpoint-drain", "routing-policy"])
            #expect(try await store.deleteDocument(kind: "endpoint-drain", name: "gpu-1"))
            #expect(try await !store.deleteDocument(kind: "endpoint-drain", name: "gpu-1"))
            #expect(try await store.documents(kind: "endpoint-drain").map(\.name) == ["gpu-2"])
        }
    }

    // MARK: Shared counters

    /// Replicas (three stores on one database) and many tasks in each take leases at one instant
    /// (no refill): the units granted must add up to the limit exactly, never more. A lost update
    /// (two grants reading the same level) would hand out more.
    @Test(arguments: Backend.allCases)
    func concurrentGrantsNeverExceedTheLimit(_ backend: Backend) async throws {
        let database = try await TestDatabase.make(backend)
        defer { database.remove() }
        var replicas: [any ProximaStore] = []
        for _ in 0..<3 { replicas.append(try await database.open()) }
        let limit = 300
        let stores = replicas
        let granted = try await withThrowingTaskGroup(of: (units: Int, grants: Int).self) { group in
            for task in 0..<24 {
                group.addTask {
                    let store = stores[task % stores.count]
                    var units = 0
                    var grants = 0
                    while true {
                        let grant = try await store.grantLease(
                            counter: "tenant/acme/requests", perMinute: limit, requested: 1 + (task + grants) % 7, minimum: 1,
                            at: Self.now)
                        if !grant.isGranted { break }
                        units += grant.units
                        grants += 1
                    }
                    return (units, grants)
                }
            }
            var total = (units: 0, grants: 0)
            for try await result in group {
                total.units += result.units
                total.grants += result.grants
            }
            return total
        }
        #expect(granted.units == limit)
        #expect(granted.grants >= limit / 7)
        // After a whole minute the bucket has refilled.
        let later = try await replicas[0].grantLease(
            counter: "tenant/acme/requests", perMinute: limit, requested: limit, minimum: limit, at: Self.now + 60)
        #expect(later.units == limit)
        for replica in replicas { await replica.close() }
    }

    @Test(arguments: Backend.allCases)
    func aRefundGivesBackOnlyUnitsStillInTheBucket(_ backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let grant = try await store.grantLease(counter: "k", perMinute: 60, requested: 30, minimum: 1, at: Self.now)
            let charge = try #require(grant.charge)
            #expect(grant.units == 30 && grant.snapshot.remaining == 30)
            // 10 s later 10 units have refilled (oldest first): 20 of the charge are still there.
            let refunded = try await store.refundLease(counter: "k", perMinute: 60, units: 25, of: charge, at: Self.now + 10)
            #expect(abs(refunded - 20) < 1e-6)
            let rest = try await store.grantLease(counter: "k", perMinute: 60, requested: 60, minimum: 60, at: Self.now + 10)
            #expect(rest.units == 60)
            // A limit lowered later keeps the level: the bucket is full, nothing fits.
            let lowered = try await store.grantLease(counter: "k", perMinute: 30, requested: 1, minimum: 1, at: Self.now + 10)
            #expect(!lowered.isGranted && lowered.snapshot.limit == 30)
        }
    }

    @Test(arguments: Backend.allCases)
    func spendAddsUpAcrossTasksPerDayAndMonth(_ backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            // 2026-05-31 12:00 UTC: the next day is in the next month.
            let noon = Double(UTCCalendar.dayNumber(of: UTCDate(year: 2026, month: 5, day: 31))) * 86_400 + 43_200
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await store.addSpend(scope: "tenant/acme", amount: Money(nanodollars: 1_500), at: noon) }
                }
                try await group.waitForAll()
            }
            let may = try await store.spend(scope: "tenant/acme", at: noon)
            #expect(may.spentToday == Money(nanodollars: 30_000) && may.spentThisMonth == Money(nanodollars: 30_000))
            let june = try await store.addSpend(scope: "tenant/acme", amount: Money(nanodollars: 7), at: noon + 86_400)
            #expect(june.spentToday == Money(nanodollars: 7) && june.spentThisMonth == Money(nanodollars: 7))
            #expect(june.day == may.day + 1 && june.month == may.month + 1)
            #expect(try await store.spend(scope: "tenant/other", at: noon) == SpendTotals(day: may.day, month: may.month, spentToday: .zero, spentThisMonth: .zero))
            // Sums saturate instead of overflowing.
            try await store.addSpend(scope: "tenant/rich", amount: Money(nanodollars: .max - 5), at: noon)
            let saturated = try await store.addSpend(scope: "tenant/rich", amount: Money(nanodollars: 100), at: noon)
            #expect(saturated.spentToday.nanodollars == .max)
        }
    }

    // MARK: An unusable database

    @Test(.timeLimit(.minutes(1)), arguments: Backend.allCases)
    func aDatabaseThatCannotBeUsedFailsAtOpenWithAClearMessage(_ backend: Backend) async throws {
        switch backend {
        case .sqlite:
            let database = try await TestDatabase.make(.sqlite)
            defer { database.remove() }
            try Data("this is not a database, it is a file of text".utf8).write(to: URL(fileURLWithPath: database.sqlitePath))
            let error = await storeError { _ = try await SQLiteStore.open(path: database.sqlitePath) }
            guard case .unavailable(let reason) = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(reason.contains(database.sqlitePath))
        case .postgres:
            // A port nothing listens on, and a password that must not show in the message.
            let port = try freePort()
            let location = try PostgresLocation(url: "postgres://proxima:s3cret-pw@127.0.0.1:\(port)/proxima?sslmode=disable")
            let error = await storeError { _ = try await PostgresStore.open(location, timeoutSeconds: 1) }
            guard case .unavailable(let reason) = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(reason.contains("127.0.0.1:\(port)"))
            #expect(!reason.contains("s3cret"))
        }
    }

    /// The database goes away while stores use it: operations fail as `unavailable` within the
    /// store's timeout, nothing crashes or hangs, and the store works again once the database is
    /// back. PostgreSQL: the server is stopped. SQLite: another process holds the write lock.
    @Test(.timeLimit(.minutes(1)), arguments: Backend.allCases)
    func aDatabaseGoneDuringOperationIsUnavailableNotAHang(_ backend: Backend) async throws {
        switch backend {
        case .sqlite:
            let database = try await TestDatabase.make(.sqlite)
            defer { database.remove() }
            let store = try await database.open(timeoutSeconds: 0.2)
            try await store.createTenant(Tenant(id: "acme", createdAt: Self.now))
            // Another process takes the write lock and keeps it until told to let go.
            let directory = (database.sqlitePath as NSString).deletingLastPathComponent
            let (locked, release) = (directory + "/locked", directory + "/release")
            let holder = Task {
                try await Subprocess.run("/usr/bin/python3", ["-c", Self.lockHolder, database.sqlitePath, locked, release])
            }
            for _ in 0..<600 where !FileManager.default.fileExists(atPath: locked) {
                try await Task.sleep(for: .milliseconds(50))
            }
            try #require(FileManager.default.fileExists(atPath: locked), "the other process never took the lock")
            let error = await storeError { try await store.createTenant(Tenant(id: "beta", createdAt: Self.now)) }
            #expect(error?.kind == "unavailable")
            let grantError = await storeError { _ = try await store.grantLease(counter: "c", perMinute: 5, requested: 1, minimum: 1, at: Self.now) }
            #expect(grantError?.kind == "unavailable")
            // Reads go on in WAL mode while another writer holds the lock.
            #expect(try await store.tenants().map(\.id) == ["acme"])
            #expect(FileManager.default.createFile(atPath: release, contents: nil))
            let held = try await holder.value
            #expect(held.status == 0, "\(held.errors)")
            try await store.createTenant(Tenant(id: "beta", createdAt: Self.now))
            #expect(try await store.tenants().map(\.id) == ["acme", "beta"])
            await store.close()
        case .postgres:
            let server = try await TestPostgres.start()
            let location = try PostgresLocation(url: server.url)
            let store = try await PostgresStore.open(location, timeoutSeconds: 1, maxConnections: 2)
            try await store.createTenant(Tenant(id: "acme", createdAt: Self.now))
            try await server.stop()
            let readError = await storeError { _ = try await store.tenant(id: "acme") }
            let writeError = await storeError { try await store.createTenant(Tenant(id: "beta", createdAt: Self.now)) }
            let grantError = await storeError { _ = try await store.grantLease(counter: "c", perMinute: 5, requested: 1, minimum: 1, at: Self.now) }
            #expect(readError?.kind == "unavailable" && writeError?.kind == "unavailable" && grantError?.kind == "unavailable")
            // The server comes back on its port; the pool reconnects by itself.
            try await server.restart()
            var back: Tenant?
            let restarted = ContinuousClock.now
            while back == nil, ContinuousClock.now - restarted < .seconds(30) {
                back = try? await store.tenant(id: "acme")
                if back == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(back?.id == "acme")
            try await server.stop()
            await store.close()
        }
    }

    /// Python: takes the SQLite file's write lock, says so by creating a file, and keeps it until
    /// another file appears (at most a minute).
    static let lockHolder = """
        import os, sqlite3, sys, time
        database, locked, release = sys.argv[1:4]
        connection = sqlite3.connect(database, timeout=10, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        open(locked, "w").close()
        deadline = time.time() + 60
        while not os.path.exists(release) and time.time() < deadline:
            time.sleep(0.01)
        connection.execute("ROLLBACK")
        """

    // MARK: Opening from the configuration

    @Test(arguments: Backend.allCases)
    func theConfiguredStoreOpens(_ backend: Backend) async throws {
        switch backend {
        case .sqlite:
            let database = try await TestDatabase.make(.sqlite)
            defer { database.remove() }
            let directory = (database.sqlitePath as NSString).deletingLastPathComponent + "/nested/data"
            let store = try await ConfiguredStore.open(ProximaConfiguration(dataDirectory: directory), environment: [:])
            #expect((store as? SQLiteStore)?.path == directory + "/proxima.sqlite")
            #expect(FileManager.default.fileExists(atPath: directory + "/proxima.sqlite"))
            await store.close()
        case .postgres:
            let database = try await TestDatabase.make(.postgres)
            let location = try #require(database.location)
            let url = "postgres://\(location.username)@\(location.host):\(location.port)/\(location.database)?sslmode=disable"
            let settings = StoreSettings(kind: .postgres, urlEnv: "TEST_DATABASE_URL")
            let store = try await ConfiguredStore.open(
                settings, dataDirectory: "unused", environment: ["TEST_DATABASE_URL": url])
            #expect((store as? PostgresStore)?.location == location)
            await store.close()
            let missing = await storeError { _ = try await ConfiguredStore.open(settings, dataDirectory: "", environment: [:]) }
            #expect(missing == .invalid(field: "store.url_env", message: "the environment variable TEST_DATABASE_URL is not set"))
            let malformed = await storeError {
                _ = try await ConfiguredStore.open(settings, dataDirectory: "", environment: ["TEST_DATABASE_URL": "mysql://a:secret@h/d"])
            }
            #expect(malformed?.kind == "invalid(store.url_env)" && !String(describing: malformed).contains("secret"))
        }
    }
}

/// A loopback port nothing listens on (just closed).
func freePort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
    }
    guard bound else { throw TestPostgres.Failure(message: "cannot bind a loopback port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
