import Foundation
import ProximaCore
import ProximaStore
import Synchronization
import Testing
@testable import ProximaGateway

/// The shared ledger on a real PostgreSQL: replicas (one ledger and one store each) hold one limit
/// together with few store calls, learn each other's spend, and ride out a database that goes away.
@Suite(.serialized) struct SharedAdmissionLedgerTests {
    /// Counts the calls that reach the store.
    final class CountingCounters: SharedCounters {
        let inner: any SharedCounters
        let calls = Atomic<Int>(0)

        init(_ inner: any SharedCounters) { self.inner = inner }

        func grantLease(counter: String, perMinute: Int, requested: Int, minimum: Int, at now: Double) async throws(StoreError) -> RateGrant {
            calls.add(1, ordering: .relaxed)
            return try await inner.grantLease(counter: counter, perMinute: perMinute, requested: requested, minimum: minimum, at: now)
        }

        func refundLease(counter: String, perMinute: Int, units: Double, of charge: RateCharge, at now: Double) async throws(StoreError) -> Double {
            calls.add(1, ordering: .relaxed)
            return try await inner.refundLease(counter: counter, perMinute: perMinute, units: units, of: charge, at: now)
        }

        func addSpend(scope: String, amount: Money, at now: Double) async throws(StoreError) -> SpendTotals {
            calls.add(1, ordering: .relaxed)
            return try await inner.addSpend(scope: scope, amount: amount, at: now)
        }

        func spend(scope: String, at now: Double) async throws(StoreError) -> SpendTotals {
            calls.add(1, ordering: .relaxed)
            return try await inner.spend(scope: scope, at: now)
        }
    }

    static func tenant(_ limits: ScopeLimits) -> CallerIdentity {
        CallerIdentity(tenantID: "acme", principalID: "svc", credential: .apiKey, tenantLimits: limits)
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    static func open(_ server: LocalPostgres, timeout: Double = 5) async throws -> any ProximaStore {
        try await PostgresStore.open(PostgresLocation(url: server.url), timeoutSeconds: timeout, maxConnections: 4)
    }

    @Test func threeReplicasAdmitOneLimitWithFewStoreCalls() async throws {
        let server = try LocalPostgres.start()
        defer { server.remove() }
        var stores: [any ProximaStore] = []
        var ledgers: [SharedAdmissionLedger] = []
        var counters: [CountingCounters] = []
        let settings = LeaseSettings(tolerance: 0.05, leaseSeconds: 1, holdSeconds: 5, replicas: 3)
        for _ in 0..<3 {
            let store = try await Self.open(server)
            let counting = CountingCounters(store)
            stores.append(store)
            counters.append(counting)
            ledgers.append(SharedAdmissionLedger(counters: counting, settings: settings))
        }
        let limit = 1_200
        let caller = Self.tenant(ScopeLimits(requestsPerMinute: limit))
        let request = AdmissionRequest(estimatedTokens: 10)
        let started = Self.now()
        var admitted = 0
        for index in 0..<(2 * limit) {
            let (decision, _) = try await ledgers[index % 3].admit(request, caller: caller, at: Self.now())
            if decision.isAdmitted { admitted += 1 }
        }
        let elapsed = Self.now() - started
        let held = settings.tolerance * Double(limit)
        // A fresh limit is a full bucket: N at once, plus what refilled while the burst ran.
        let upper = Double(limit) + Double(limit) * elapsed / 60 + held
        #expect(Double(admitted) >= Double(limit) - held, "admitted \(admitted) in \(elapsed) s")
        #expect(Double(admitted) <= upper, "admitted \(admitted) in \(elapsed) s, bound \(upper)")
        let calls = counters.reduce(0) { $0 + $1.calls.load(ordering: .relaxed) }
        #expect(calls * 5 < admitted, "\(calls) store calls for \(admitted) admitted requests")
        for store in stores { await store.close() }
    }

    @Test func aReplicaLearnsTheOthersSpendAndRefusesWithInsufficientQuota() async throws {
        let server = try LocalPostgres.start()
        defer { server.remove() }
        let first = try await Self.open(server)
        let second = try await Self.open(server)
        let settings = LeaseSettings(replicas: 2)
        let spender = SharedAdmissionLedger(counters: first, settings: settings)
        let watcher = SharedAdmissionLedger(counters: second, settings: settings)
        let caller = Self.tenant(ScopeLimits(dailyBudgetUSD: 0.01))
        let request = AdmissionRequest(estimatedTokens: 10)
        let price = TokenPrice(inputPerMillion: 1, outputPerMillion: 1)
        // The watcher has served this tenant (for nothing) and so follows its spend.
        let (_, watched) = try await watcher.admit(request, caller: caller, at: Self.now())
        watcher.finish(try #require(watched), promptTokens: 0, completionTokens: 0, price: price, at: Self.now())
        // The spender's answer costs $0.02, over the $0.01 budget; its own next request is refused.
        let (_, pass) = try await spender.admit(request, caller: caller, at: Self.now())
        spender.finish(try #require(pass), promptTokens: 20_000, completionTokens: 0, price: price, at: Self.now())
        #expect(try await spender.admit(request, caller: caller, at: Self.now()).0.refusal?.code == "insufficient_quota")
        // Before the batches: the watcher does not know yet.
        #expect(try await watcher.admit(request, caller: caller, at: Self.now()).0.isAdmitted)
        await spender.flushSpend(at: Self.now())
        await watcher.flushSpend(at: Self.now())
        let (decision, _) = try await watcher.admit(request, caller: caller, at: Self.now())
        #expect(decision.refusal?.code == "insufficient_quota")
        #expect(try await first.spend(scope: "tenant:acme", at: Self.now()).spentToday == Money(dollars: 0.02))
        await first.close()
        await second.close()
    }

    /// Budget overshoot across three replicas: each admits and settles $0.01 requests at about 100
    /// a second, spend is flushed every 0.25 s, and the tenant's daily budget is $2. What is spent
    /// beyond the budget is what the replicas admitted before the others' spend reached them: at
    /// most the requests in flight plus two flush intervals of every replica's spend.
    @Test func budgetOvershootAcrossThreeReplicasStaysWithinTwoFlushIntervals() async throws {
        let server = try LocalPostgres.start()
        defer { server.remove() }
        var stores: [any ProximaStore] = []
        var ledgers: [SharedAdmissionLedger] = []
        for _ in 0..<3 {
            let store = try await Self.open(server)
            stores.append(store)
            ledgers.append(SharedAdmissionLedger(counters: store, settings: LeaseSettings(replicas: 3)))
        }
        let budget = 2.0
        let caller = Self.tenant(ScopeLimits(dailyBudgetUSD: budget))
        let request = AdmissionRequest(estimatedTokens: 10)
        let price = TokenPrice(inputPerMillion: 1, outputPerMillion: 1)
        let interval = 0.25
        let rate = 100.0
        let started = Self.now()
        var lastFlush = started
        var refusedInARow = [0, 0, 0]
        while Self.now() - started < 30, refusedInARow.contains(where: { $0 < 5 }) {
            for (index, ledger) in ledgers.enumerated() {
                let (decision, pass) = try await ledger.admit(request, caller: caller, at: Self.now())
                if let pass {
                    // $0.01: 10,000 prompt tokens at $1 per million.
                    ledger.finish(pass, promptTokens: 10_000, completionTokens: 0, price: price, at: Self.now())
                }
                refusedInARow[index] = decision.isAdmitted ? 0 : refusedInARow[index] + 1
            }
            if Self.now() - lastFlush >= interval {
                lastFlush = Self.now()
                for ledger in ledgers { await ledger.flushSpend(at: lastFlush) }
            }
            try await Task.sleep(for: .seconds(1 / rate))
        }
        for ledger in ledgers { await ledger.flushSpend(at: Self.now()) }
        let spent = try await stores[0].spend(scope: "tenant:acme", at: Self.now()).spentToday
        let overshoot = (Double(spent.nanodollars) / 1e9) - budget
        let bound = 3 * rate * 0.01 * 2 * interval
        print("budget overshoot with 3 replicas: spent \(Double(spent.nanodollars) / 1e9) USD of \(budget), overshoot \(overshoot) USD, bound \(bound) USD")
        #expect(refusedInARow.allSatisfy { $0 >= 5 })
        #expect(overshoot >= 0)
        #expect(overshoot <= bound)
        for store in stores { await store.close() }
    }

    @Test func aDatabaseThatGoesAwayIsRiddenOutForHoldSecondsThenFailsClosedAndRecovers() async throws {
        let server = try LocalPostgres.start()
        defer { server.remove() }
        let store = try await Self.open(server, timeout: 1)
        let hold = 2.0
        let ledger = SharedAdmissionLedger(counters: store, settings: LeaseSettings(leaseSeconds: 1, holdSeconds: hold, replicas: 1))
        let limited = Self.tenant(ScopeLimits(requestsPerMinute: 600))
        let unlimitedButCapped = Self.tenant(ScopeLimits(concurrentRequests: 100))
        let request = AdmissionRequest(estimatedTokens: 10)
        for _ in 0..<5 { #expect(try await ledger.admit(request, caller: limited, at: Self.now()).0.isAdmitted) }

        try server.stop()
        // Within hold_seconds of the first failure: admitted from the lease, then from this
        // replica's share (10 a second, starting empty), or refused with 429; never 503.
        var admitted = 0
        var firstFailure: Double?
        var unavailable: Double?
        let stopped = Self.now()
        while Self.now() - stopped < 20, unavailable == nil {
            do {
                let (decision, pass) = try await ledger.admit(request, caller: limited, at: Self.now())
                if decision.isAdmitted { admitted += 1 }
                if let pass { ledger.finish(pass, promptTokens: 1, completionTokens: 1, price: .free, at: Self.now()) }
            } catch {
                #expect(error.status.code == 503)
                #expect(error.headers[.retryAfter] == "1")
                unavailable = Self.now()
            }
            if firstFailure == nil, ledger.failingSince(of: limited) != nil { firstFailure = Self.now() }
            // A caller without shared limits is not affected.
            #expect(try await ledger.admit(request, caller: unlimitedButCapped, at: Self.now()).0.isAdmitted)
            try await Task.sleep(for: .milliseconds(50))
        }
        let failed = try #require(firstFailure)
        let closed = try #require(unavailable, "fails closed")
        #expect(closed - failed >= hold - 0.2, "admitted on its own for hold_seconds (\(closed - failed) s)")
        #expect(admitted > 5, "kept admitting meanwhile (\(admitted))")

        try server.restart()
        var recovered = false
        let restarted = Self.now()
        while !recovered, Self.now() - restarted < 30 {
            if let (decision, _) = try? await ledger.admit(request, caller: limited, at: Self.now()), decision.isAdmitted { recovered = true }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(recovered, "admits again once the database is back")
        // The shared counter reads back whole (stored values are checked when read).
        let grant = try await store.grantLease(counter: "rpm:tenant:acme", perMinute: 600, requested: 1, minimum: 1, at: Self.now())
        #expect(grant.units == 1)
        await store.close()
    }
}
