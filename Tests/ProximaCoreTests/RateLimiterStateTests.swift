import Testing

@testable import ProximaCore

/// A shared limiter lives in a store as numbers and becomes a value again for every change.
@Suite struct RateLimiterStateTests {
    func restored(_ limiter: RateLimiter, perMinute: Int? = nil) -> RateLimiter {
        RateLimiter(
            perMinute: perMinute ?? limiter.perMinute, level: limiter.level, updatedAt: limiter.updatedAt,
            lastEmptiedAt: limiter.lastEmptiedAt, refundedTotal: limiter.refundedTotal)
    }

    @Test func aRestoredLimiterDecidesExactlyAsTheOriginal() {
        var original = RateLimiter(perMinute: 120, at: 1_000)
        var generator = SplitMix64(seed: 7)
        var now = 1_000.0
        for _ in 0..<2_000 {
            now += Double(generator.next() % 1_000) / 1_000
            var copy = restored(original)
            #expect(copy == original)
            let requested = Int(generator.next() % 20)
            let a = original.grant(requested: requested, minimum: 1, at: now)
            let b = copy.grant(requested: requested, minimum: 1, at: now)
            #expect(a == b)
            if let charge = a.charge, generator.next() % 3 == 0 {
                let later = now + Double(generator.next() % 5)
                #expect(original.refund(units: 3, of: charge, at: later) == copy.refund(units: 3, of: charge, at: later))
                now = later
            }
        }
    }

    @Test func storedNumbersAreDistrusted() {
        let nonsense = RateLimiter(perMinute: 60, level: .nan, updatedAt: .infinity, lastEmptiedAt: .nan, refundedTotal: -5)
        #expect(nonsense.level == 0 && nonsense.refundedTotal == 0)
        #expect(nonsense.updatedAt == 0 && nonsense.lastEmptiedAt == 0)
        let overfull = RateLimiter(perMinute: 60, level: 1e300, updatedAt: 10, lastEmptiedAt: 99, refundedTotal: .infinity)
        #expect(overfull.level == overfull.maximumLevel)
        #expect(overfull.lastEmptiedAt == 10)
        #expect(overfull.refundedTotal == .greatestFiniteMagnitude)
        // A lower limit keeps the level, cut to its own maximum.
        var full = RateLimiter(perMinute: 100, at: 0)
        full.charge(units: 150, at: 0)
        let lowered = restored(full, perMinute: 30)
        #expect(lowered.perMinute == 30 && lowered.level == 60)
    }
}
