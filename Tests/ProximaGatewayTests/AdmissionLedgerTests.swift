import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// The in-memory ledger alone: scopes share state across requests, an admitted request is settled
/// once, and memory stays bounded without dropping what must be kept.
@Suite struct AdmissionLedgerTests {
    static let start = 1_795_485_600.0

    static func caller(_ principal: String, tenant: String = "acme", limits: ScopeLimits) -> CallerIdentity {
        CallerIdentity(tenantID: tenant, principalID: principal, credential: .jwt, principalLimits: limits)
    }

    @Test func scopesAreSharedAndUnlimitedOnesKeepNoState() {
        let ledger = LocalAdmissionLedger()
        let request = AdmissionRequest(estimatedTokens: 10)
        let limited = Self.caller("a", limits: ScopeLimits(requestsPerMinute: 2))
        #expect(ledger.admit(request, caller: limited, at: Self.start).0.isAdmitted)
        #expect(ledger.admit(request, caller: limited, at: Self.start).0.isAdmitted)
        #expect(!ledger.admit(request, caller: limited, at: Self.start).0.isAdmitted, "the same principal's third request")
        #expect(ledger.admit(request, caller: Self.caller("b", limits: ScopeLimits(requestsPerMinute: 2)), at: Self.start).0.isAdmitted)
        #expect(ledger.admit(request, caller: .anonymous, at: Self.start).1 == nil, "no limits: no pass, no state")
        #expect(ledger.count == 2)
    }

    @Test func memoryIsBoundedWithoutDroppingRequestsInFlightOrSpend() throws {
        let ledger = LocalAdmissionLedger(capacity: 32, shardCount: 1)
        let request = AdmissionRequest(estimatedTokens: 10)
        let rate = ScopeLimits(requestsPerMinute: 100)
        // One request stays in flight, one scope has spent part of its budget this month.
        let (_, running) = ledger.admit(request, caller: Self.caller("running", limits: rate), at: Self.start)
        let held = try #require(running)
        let spender = Self.caller("spender", limits: ScopeLimits(dailyBudgetUSD: 100))
        let (_, spent) = ledger.admit(request, caller: spender, at: Self.start)
        ledger.finish(try #require(spent), promptTokens: 1_000, completionTokens: 0, price: TokenPrice(inputPerMillion: 1, outputPerMillion: 1), at: Self.start)
        for index in 0..<30 {
            let (_, pass) = ledger.admit(request, caller: Self.caller("idle-\(index)", limits: rate), at: Self.start)
            ledger.finish(try #require(pass), promptTokens: 1, completionTokens: 1, price: .free, at: Self.start)
        }
        #expect(ledger.count == 32)
        // Two minutes later a crowd of new callers arrives: the idle scopes make room.
        let later = Self.start + 200
        for index in 0..<100 {
            let (_, pass) = ledger.admit(request, caller: Self.caller("new-\(index)", limits: rate), at: later)
            ledger.finish(try #require(pass), promptTokens: 1, completionTokens: 1, price: .free, at: later)
            #expect(ledger.count <= 32)
        }
        #expect(ledger.allowance(ScopeKey(scope: .principal, tenantID: "acme", id: "running"))?.inFlight == 1, "in flight: never dropped")
        // The running request still settles on its own scope.
        ledger.finish(held, promptTokens: 1, completionTokens: 1, price: .free, at: later)
        #expect(ledger.allowance(ScopeKey(scope: .principal, tenantID: "acme", id: "running"))?.inFlight == 0)
    }

    @Test func aScopeWithSpendOutlivesIdleEviction() throws {
        let ledger = LocalAdmissionLedger(capacity: 16, shardCount: 1)
        let request = AdmissionRequest(estimatedTokens: 10)
        let spender = Self.caller("spender", limits: ScopeLimits(dailyBudgetUSD: 100))
        let (_, spent) = ledger.admit(request, caller: spender, at: Self.start)
        ledger.finish(try #require(spent), promptTokens: 1_000_000, completionTokens: 0, price: TokenPrice(inputPerMillion: 1, outputPerMillion: 1), at: Self.start)
        let rate = ScopeLimits(requestsPerMinute: 100)
        // Fifteen idle scopes fill the shard; a later arrival evicts them, not the spender.
        for index in 0..<15 {
            let (_, pass) = ledger.admit(request, caller: Self.caller("idle-\(index)", limits: rate), at: Self.start)
            ledger.finish(try #require(pass), promptTokens: 1, completionTokens: 1, price: .free, at: Self.start)
        }
        _ = ledger.admit(request, caller: Self.caller("late", limits: rate), at: Self.start + 200)
        let kept = ledger.allowance(ScopeKey(scope: .principal, tenantID: "acme", id: "spender"))
        #expect(kept?.budget.spent(.day, at: Self.start + 200) == Money(dollars: 1))
        #expect(ledger.count == 2)
    }
}
