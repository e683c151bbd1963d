import Testing
@testable import ProximaCore

/// Seeded random inputs, extreme ones included, thrown at every piece of admission arithmetic:
/// nothing traps, and the invariants hold.
@Suite struct AdmissionPropertyTests {
    static let extremeIntegers = [Int.min, Int.min + 1, -1_000_000, -1, 0, 1, 2, 59, 60, 61, 1 << 53, (1 << 53) + 1, Int.max - 1, Int.max]
    static let extremeTimes = [-Double.infinity, -1e300, -1e12, -1, 0, 1e-300, 0.5, 1.7e9, 1e12, 1e13, 1e300, .infinity, .nan]

    struct Inputs {
        var random: SplitMix64

        mutating func integer() -> Int {
            random.next() % 3 == 0
                ? AdmissionPropertyTests.extremeIntegers[Int(random.next() % UInt64(AdmissionPropertyTests.extremeIntegers.count))]
                : Int(truncatingIfNeeded: random.next() % 200_000) - 1_000
        }

        mutating func time(after base: Double) -> Double {
            random.next() % 4 == 0
                ? AdmissionPropertyTests.extremeTimes[Int(random.next() % UInt64(AdmissionPropertyTests.extremeTimes.count))]
                : base + Double(random.next() % 10_000) / 100 - 10
        }

        mutating func double() -> Double {
            random.next() % 3 == 0 ? time(after: 0) : Double(random.next() % 1_000_000) / 1_000
        }
    }

    static func checkInvariants(_ limiter: RateLimiter) {
        #expect(limiter.level.isFinite && limiter.level >= 0 && limiter.level <= limiter.maximumLevel)
        #expect(limiter.updatedAt.isFinite)
        #expect(limiter.perMinute >= 1)
    }

    static func checkSnapshot(_ snapshot: RateLimitSnapshot) {
        #expect(snapshot.remaining >= 0 && snapshot.remaining <= max(snapshot.limit, 0))
        #expect(snapshot.resetSeconds.isFinite && snapshot.resetSeconds >= 0)
        #expect(!RateLimitHeaders.resetDuration(snapshot.resetSeconds).isEmpty)
    }

    @Test(arguments: 1...8 as ClosedRange<UInt64>)
    func rateLimitersNeverTrapAndStayInRange(seed: UInt64) {
        var input = Inputs(random: SplitMix64(seed: seed))
        var limiter = RateLimiter(perMinute: input.integer(), at: input.time(after: 0))
        var charges: [RateCharge] = []
        var time = 0.0
        for _ in 0..<2_000 {
            time = input.time(after: time.isFinite ? min(max(time, -1e12), 1e12) : 0)
            switch input.random.next() % 7 {
            case 0:
                let check = limiter.admit(cost: input.integer(), at: time)
                if let charge = check.charge { charges.append(charge) }
                Self.checkSnapshot(check.current)
                Self.checkSnapshot(check.afterAdmission)
                #expect(check.retryAfter.map { $0.isFinite && $0 >= 0 } ?? true)
            case 1:
                _ = limiter.check(cost: input.integer(), at: time)
            case 2:
                if let charge = charges.popLast() { limiter.settle(charge, actual: input.integer(), at: time) }
            case 3:
                let grant = limiter.grant(requested: input.integer(), minimum: input.integer(), at: time)
                if let charge = grant.charge { charges.append(charge) }
                #expect(grant.units >= 0)
            case 4:
                limiter.charge(units: input.double(), at: time)
            case 5:
                let made = RateCharge(units: input.double(), at: input.time(after: time), levelBefore: input.double(), refundedBefore: input.double())
                #expect(limiter.refund(units: input.double(), of: made, at: time) >= 0)
            default:
                Self.checkSnapshot(limiter.snapshot(at: time))
            }
            Self.checkInvariants(limiter)
        }
    }

    @Test(arguments: 1...4 as ClosedRange<UInt64>)
    func leasesBudgetsAndCalendarsNeverTrap(seed: UInt64) {
        var input = Inputs(random: SplitMix64(seed: seed))
        let settings = LeaseSettings(tolerance: input.double(), leaseSeconds: input.double(), holdSeconds: input.double())
        var lease = RateLease(perMinute: input.integer(), settings: settings, at: input.time(after: 0))
        var shared = RateLimiter(perMinute: input.integer(), at: 0)
        var budget = SpendBudget(
            dailyLimit: Money(dollars: input.double()), monthlyLimit: Money(dollars: input.double()), at: input.time(after: 0))
        var demand = DemandRate(halfLife: input.double(), at: input.time(after: 0))
        for _ in 0..<2_000 {
            let time = input.time(after: 1.7e9)
            let cost = input.integer()
            switch lease.admit(cost: cost, replicas: input.integer(), at: time) {
            case .admitted:
                break
            case .refused(let wait):
                #expect(wait.isFinite && wait >= 0)
            case .needsLease(let request):
                #expect(request.units >= 1 && request.minimum >= 0)
                _ = lease.receive(shared.grant(requested: request.units, minimum: request.minimum, at: time), cost: cost, at: time)
            }
            lease.settle(estimated: input.integer(), actual: input.integer())
            if let back = lease.takeReturn(at: time) { shared.refund(units: back.units, of: back.charge, at: time) }
            Self.checkSnapshot(lease.snapshot(at: time))
            #expect(lease.balance.isFinite)
            Self.checkInvariants(shared)

            budget.record(TokenPrice(inputPerMillion: input.double(), outputPerMillion: input.double())
                .spend(promptTokens: input.integer(), completionTokens: input.integer()), at: time)
            let check = budget.check(at: input.time(after: time))
            #expect(check.retryAfter.isFinite && check.retryAfter >= 0)

            demand.record(units: input.double(), at: time)
            let rate = demand.perSecond(at: input.time(after: time))
            #expect(rate >= 0 && !rate.isNaN)

            let day = input.integer() / 1_000
            _ = UTCCalendar.date(dayNumber: min(max(day, -1_000_000_000), 1_000_000_000))
            _ = UTCCalendar.dayNumber(of: UTCDate(year: input.integer(), month: input.integer(), day: input.integer()))
            for period in BudgetPeriod.allCases {
                let window = UTCCalendar.window(period, at: time)
                #expect(window.start <= window.end)
            }
            #expect(RateLimitHeaders.retryAfterSeconds(input.double()) >= 1)
        }
    }

    /// Whole requests through ``AdmissionDecision/admit(_:at:key:principal:tenant:)`` with random
    /// estimates, usage and durations: in any interval of t seconds a scope admits at most one
    /// full bucket plus t seconds of refill of requests, and never more at once than its cap.
    @Test(arguments: 1...4 as ClosedRange<UInt64>)
    func admittedRequestsNeverExceedTheLimits(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let perMinute = 120
        let cap = 8
        var key: ScopeAllowance? = ScopeAllowance(
            scope: .key, limits: ScopeLimits(requestsPerMinute: perMinute, tokensPerMinute: 50_000, concurrentRequests: cap), at: 0)
        var principal: ScopeAllowance?
        var tenant: ScopeAllowance? = ScopeAllowance(
            scope: .tenant, limits: ScopeLimits(requestsPerMinute: 10_000, tokensPerMinute: 40_000, dailyBudgetUSD: 1_000), at: 0)
        var running: [(end: Double, ticket: AdmissionTicket, used: Int)] = []
        var admittedAt: [Double] = []
        var time = 0.0
        for _ in 0..<6_000 {
            time += Double(random.next() % 400) / 1_000
            running.sort { $0.end > $1.end }
            while let last = running.last, last.end <= time {
                running.removeLast()
                key?.finish(last.ticket, promptTokens: last.used / 2, completionTokens: last.used / 2, price: .free, at: last.end)
                tenant?.finish(last.ticket, promptTokens: last.used / 2, completionTokens: last.used / 2, price: .free, at: last.end)
            }
            let estimate = Int(random.next() % 4_000)
            let (decision, ticket) = AdmissionDecision.admit(
                AdmissionRequest(estimatedTokens: estimate), at: time, key: &key, principal: &principal, tenant: &tenant)
            #expect(decision.isAdmitted == (ticket != nil))
            guard let ticket else {
                #expect(decision.refusal?.retryAfter.map { $0 > 0 } ?? true)
                continue
            }
            admittedAt.append(time)
            running.append((time + Double(random.next() % 20_000) / 1_000, ticket, Int(random.next() % UInt64(estimate + 1))))
            #expect(running.count <= cap)
            #expect(key?.inFlight == running.count)
        }
        #expect(admittedAt.count > 300)
        for window in [1.0, 30, 60, 300] {
            var start = 0
            let bound = Double(perMinute) * (1 + window / 60) * (1 + 1e-9)
            for end in admittedAt.indices {
                while admittedAt[end] - admittedAt[start] > window { start += 1 }
                #expect(Double(end - start + 1) <= bound, "window of \(window) s ending at \(admittedAt[end])")
            }
        }
    }
}
