import Testing
@testable import ProximaCore

@Suite struct RateLimitHeadersTests {
    @Test(arguments: [
        (0.0 as Double, "0s"), (0.02, "20ms"), (0.0001, "1ms"), (0.999, "999ms"), (0.9991, "1s"), (1.0, "1s"), (1.5, "1.5s"),
        (8.64, "8.64s"), (59.9999, "1m0s"), (90.5, "1m30.5s"), (360.0, "6m0s"), (372.413, "6m12.413s"),
        (3_600.0, "1h0m0s"), (86_400 + 61.25, "24h1m1.25s"),
    ])
    func resetTimesAreWrittenAsOpenAIDoes(seconds: Double, text: String) {
        #expect(RateLimitHeaders.resetDuration(seconds) == text)
    }

    @Test func unusableResetTimesStayWellFormed() {
        #expect(RateLimitHeaders.resetDuration(.nan) == "0s")
        #expect(RateLimitHeaders.resetDuration(-3) == "0s")
        #expect(RateLimitHeaders.resetDuration(.infinity) == "277777777h46m40s")
        #expect(RateLimitHeaders.resetDuration(1e300) == "277777777h46m40s")
    }

    @Test(arguments: [(0.2, 1), (1.0, 1), (1.01, 2), (59.5, 60), (0.0, 1), (-4.0, 1), (Double.nan, 1), (1e300, 1_000_000_000_000)] as [(Double, Int)])
    func retryAfterIsWholeSecondsRoundedUpAndAtLeastOne(seconds: Double, value: Int) {
        #expect(RateLimitHeaders.retryAfterSeconds(seconds) == value)
    }

    @Test func fieldsUseOpenAINamesInAFixedOrder() {
        let headers = RateLimitHeaders(
            requests: RateLimitSnapshot(limit: 60, remaining: 59, resetSeconds: 1),
            tokens: RateLimitSnapshot(limit: 150_000, remaining: 149_984, resetSeconds: 0.0064), retryAfterSeconds: 2)
        let fields = headers.fields.map { "\($0.name): \($0.value)" }
        #expect(
            fields == [
                "x-ratelimit-limit-requests: 60", "x-ratelimit-remaining-requests: 59", "x-ratelimit-reset-requests: 1s",
                "x-ratelimit-limit-tokens: 150000", "x-ratelimit-remaining-tokens: 149984", "x-ratelimit-reset-tokens: 7ms",
                "retry-after: 2",
            ])
        #expect(RateLimitHeaders(tokens: headers.tokens).fields.count == 3)
        #expect(RateLimitHeaders().fields.isEmpty)
        #expect(RateLimitHeaders().isEmpty)
    }

    @Test func theShareLeftIsBetweenZeroAndOne() {
        #expect(RateLimitSnapshot(limit: 10, remaining: 5, resetSeconds: 0).remainingShare == 0.5)
        #expect(RateLimitSnapshot(limit: 10, remaining: 50, resetSeconds: 0).remainingShare == 1)
        #expect(RateLimitSnapshot(limit: 0, remaining: 5, resetSeconds: 0).remainingShare == 0)
    }
}

@Suite struct ConcurrencyLimitTests {
    @Test func admitsBelowTheCapOnly() {
        #expect(ConcurrencyLimit.admits(inFlight: 3, limit: 4))
        #expect(!ConcurrencyLimit.admits(inFlight: 4, limit: 4))
        #expect(!ConcurrencyLimit.admits(inFlight: Int.max, limit: 4))
        #expect(ConcurrencyLimit.admits(inFlight: Int.max, limit: nil))
        #expect(ConcurrencyLimit.admits(inFlight: -7, limit: 1))
    }

    @Test func countsSaturateInsteadOfTrapping() {
        #expect(ConcurrencyLimit.started(0) == 1)
        #expect(ConcurrencyLimit.started(Int.max) == Int.max)
        #expect(ConcurrencyLimit.started(-3) == 1)
        #expect(ConcurrencyLimit.ended(1) == 0)
        #expect(ConcurrencyLimit.ended(0) == 0)
        #expect(ConcurrencyLimit.ended(Int.min) == 0)
    }
}
