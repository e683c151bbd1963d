import Testing
@testable import ProximaCore

@Suite struct RateLimiterTests {
    @Test func aFreshLimitAdmitsAWholeMinuteAtOnceThenOneUnitPerRefill() {
        var limiter = RateLimiter(perMinute: 60, at: 1_000)
        for index in 0..<60 {
            #expect(limiter.admit(cost: 1, at: 1_000).isAdmitted, "request \(index)")
        }
        let refused = limiter.admit(cost: 1, at: 1_000)
        #expect(refused.outcome == .refused)
        #expect(abs((refused.retryAfter ?? 0) - 1) < 1e-9)  // one request per second refills
        #expect(!limiter.admit(cost: 1, at: 1_000.5).isAdmitted)
        #expect(limiter.admit(cost: 1, at: 1_001).isAdmitted)
        #expect(!limiter.admit(cost: 1, at: 1_001).isAdmitted)
        // Ten seconds refill ten requests, no more.
        var admitted = 0
        for _ in 0..<20 where limiter.admit(cost: 1, at: 1_011).isAdmitted { admitted += 1 }
        #expect(admitted == 10)
    }

    @Test func theSnapshotShowsRemainingAndTimeUntilFull() {
        var limiter = RateLimiter(perMinute: 600, at: 0)
        let check = limiter.admit(cost: 100, at: 0)
        #expect(check.current == RateLimitSnapshot(limit: 600, remaining: 600, resetSeconds: 0))
        #expect(check.afterAdmission == RateLimitSnapshot(limit: 600, remaining: 500, resetSeconds: 10))
        #expect(limiter.snapshot(at: 5) == RateLimitSnapshot(limit: 600, remaining: 550, resetSeconds: 5))
        #expect(limiter.snapshot(at: 60).remaining == 600)
        #expect(limiter.snapshot(at: 60).resetSeconds == 0)
    }

    @Test func checkChangesNothing() {
        let limiter = RateLimiter(perMinute: 10, at: 0)
        var copy = limiter
        #expect(limiter.check(cost: 10, at: 0).isAdmitted)
        #expect(limiter.check(cost: 11, at: 0).outcome == .exceedsCapacity)
        #expect(copy.admit(cost: 10, at: 0).isAdmitted)
        #expect(limiter.level == 0)
        #expect(copy.level == 10)
    }

    @Test func aChargeLargerThanTheWholeLimitCanNeverBeAdmitted() {
        var limiter = RateLimiter(perMinute: 1_000, at: 0)
        let check = limiter.admit(cost: 1_001, at: 0)
        #expect(check.outcome == .exceedsCapacity)
        #expect(check.retryAfter == nil)
        #expect(limiter.level == 0)
        #expect(limiter.admit(cost: 1_000, at: 0).isAdmitted)
    }

    @Test func aRefusedChargeWaitsForExactlyItsShortfall() {
        var limiter = RateLimiter(perMinute: 6_000, at: 0)  // 100 per second
        #expect(limiter.admit(cost: 5_900, at: 0).isAdmitted)
        let refused = limiter.admit(cost: 400, at: 0)
        #expect(abs((refused.retryAfter ?? 0) - 3) < 1e-9)
        #expect(!limiter.admit(cost: 400, at: 2.9).isAdmitted)
        #expect(limiter.admit(cost: 400, at: 3).isAdmitted)
    }

    @Test func usageBelowTheEstimateIsRefundedWhileTheChargeIsStillInTheBucket() throws {
        var limiter = RateLimiter(perMinute: 6_000, at: 0)  // 100 per second
        #expect(limiter.admit(cost: 3_000, at: 0).isAdmitted)
        let charge = try #require(limiter.admit(cost: 1_000, at: 0).charge)
        #expect(charge == RateCharge(units: 1_000, at: 0, levelBefore: 3_000, refundedBefore: 0))
        // Two seconds refilled 200 units of the older charge below: all 1,000 are still there.
        #expect(limiter.settle(charge, actual: 100, at: 2) == -900)
        #expect(abs(limiter.level - (4_000 - 200 - 900)) < 1e-9)
    }

    @Test func aRefundGivesBackOnlyTheUnitsOfItsChargeThatAreNotRefilledYet() throws {
        // Alone in the bucket, the charge's oldest units refill first: after 2 s, 200 of its 1,000
        // units are gone, so of the 900 unused only 800 can come back. The level (500) stays above
        // that of a limiter charged the true 100 units at the start (400): never more room.
        var limiter = RateLimiter(perMinute: 6_000, at: 0)
        let charge = try #require(limiter.admit(cost: 1_000, at: 0).charge)
        #expect(limiter.admit(cost: 500, at: 1).isAdmitted)
        #expect(limiter.settle(charge, actual: 100, at: 2) == -800)
        #expect(abs(limiter.level - 500) < 1e-9)
    }

    @Test func noRefundOnceTheBucketHasEmptiedSinceTheCharge() throws {
        // The charge refilled completely; a later request filled the bucket again. Refunding the
        // first estimate now would free units that were never used by anybody.
        var limiter = RateLimiter(perMinute: 1_000, at: 0)
        let charge = try #require(limiter.admit(cost: 1_000, at: 0).charge)
        #expect(limiter.admit(cost: 1_000, at: 61).isAdmitted)
        #expect(limiter.settle(charge, actual: 10, at: 61) == 0)
        #expect(!limiter.admit(cost: 100, at: 61).isAdmitted)
    }

    @Test func usageAboveTheEstimateIsChargedEvenPastTheLimitButBounded() throws {
        var limiter = RateLimiter(perMinute: 1_000, at: 0)
        let charge = try #require(limiter.admit(cost: 900, at: 0).charge)
        #expect(limiter.settle(charge, actual: 1_500, at: 0) == 600)
        #expect(limiter.level == 1_500)
        #expect(limiter.snapshot(at: 0).remaining == 0)
        // A bogus usage report cannot hold the scope for more than one more minute of refill.
        limiter.settle(charge, actual: Int.max, at: 0)
        #expect(limiter.level == limiter.maximumLevel)
        #expect(abs((limiter.check(cost: 1, at: 0).retryAfter ?? 0) - 60.06) < 1e-6)
    }

    @Test func grantsHandOutAllTheUnitsAskedForOrNone() throws {
        var limiter = RateLimiter(perMinute: 100, at: 0)
        let first = limiter.grant(requested: 70, minimum: 1, at: 0)
        #expect(first.units == 70)
        let refused = limiter.grant(requested: 40, minimum: 1, at: 0)
        #expect(refused.units == 0)
        #expect(abs((refused.retryAfter ?? 0) - 6) < 1e-9)  // until all 40 fit
        #expect(limiter.grant(requested: 30, minimum: 1, at: 0).units == 30)
        // More than the whole limit is cut to the limit; a minimum above it can never be granted.
        #expect(abs((limiter.grant(requested: 500, minimum: 5, at: 0).retryAfter ?? 0) - 60) < 1e-9)
        #expect(limiter.grant(requested: 1, minimum: 101, at: 0).retryAfter == nil)
        let firstCharge = try #require(first.charge)
        #expect(limiter.refund(units: 20, of: firstCharge, at: 0) == 20)
        #expect(limiter.grant(requested: 5, minimum: 0, at: 0).units == 5)
    }

    @Test func aClockThatGoesBackRefillsNothing() {
        var limiter = RateLimiter(perMinute: 60, at: 100)
        #expect(limiter.admit(cost: 60, at: 100).isAdmitted)
        #expect(!limiter.admit(cost: 1, at: 50).isAdmitted)
        #expect(!limiter.admit(cost: 1, at: 50.5).isAdmitted)
        #expect(limiter.admit(cost: 1, at: 51).isAdmitted)
    }

    @Test func nonFiniteTimesCountAsNoTimePassing() {
        var limiter = RateLimiter(perMinute: 60, at: .nan)
        #expect(limiter.updatedAt == 0)
        #expect(limiter.admit(cost: 60, at: 10).isAdmitted)
        for time in [Double.nan, .infinity, -.infinity] {
            #expect(!limiter.admit(cost: 1, at: time).isAdmitted)
        }
        #expect(limiter.updatedAt == 10)
    }

    @Test func negativeCostsCountAsZeroAndLimitsAreAtLeastOne() {
        var limiter = RateLimiter(perMinute: -5, at: 0)
        #expect(limiter.perMinute == 1)
        #expect(limiter.admit(cost: Int.min, at: 0).isAdmitted)
        #expect(limiter.level == 0)
    }

    /// In any interval of t seconds, a limiter admits at most one full bucket plus t seconds of
    /// refill, whatever the arrivals and their sizes: checked on seeded random traffic for the units
    /// kept (the real usage of settled charges, the estimate of the others), with refunds arriving
    /// late and in any order.
    @Test(arguments: [1 as UInt64, 2, 3, 4, 5, 6])
    func keptUnitsNeverExceedTheBucketPlusItsRefill(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let perMinute = [60, 600, 90_000][Int(seed % 3)]
        var limiter = RateLimiter(perMinute: perMinute, at: 0)
        var kept: [(time: Double, units: Double)] = []
        var pending: [(due: Double, index: Int, charge: RateCharge, actual: Int)] = []
        var time = 0.0
        for _ in 0..<3_000 {
            time += Double(random.next() % 1_000) / 1_000 * 120 / Double(min(perMinute, 600))
            pending.sort { $0.due > $1.due }
            while let last = pending.last, last.due <= time {
                pending.removeLast()
                limiter.settle(last.charge, actual: last.actual, at: last.due)
                kept[last.index].units = Double(last.actual)
            }
            let cost = Int(random.next() % UInt64(max(perMinute / 20, 2)))
            let check = limiter.admit(cost: cost, at: time)
            guard check.isAdmitted, let charge = check.charge else { continue }
            kept.append((time, charge.units))
            if random.next() % 2 == 0 {
                let delay = Double(random.next() % 30_000) / 1_000
                pending.append((time + delay, kept.count - 1, charge, Int(random.next() % UInt64(cost + 1))))
            }
        }
        #expect(kept.count > 100)
        let capacity = Double(perMinute)
        for window in [1.0, 10, 60, 120] {
            var start = 0
            var sum = 0.0
            let bound = (capacity + capacity / 60 * window) * (1 + 1e-6)
            for end in kept.indices {
                sum += kept[end].units
                while kept[end].time - kept[start].time > window {
                    sum -= kept[start].units
                    start += 1
                }
                #expect(sum <= bound, "window of \(window) s ending at \(kept[end].time)")
            }
        }
    }
}
