import Testing
@testable import ProximaCore

@Suite struct CircuitBreakerTests {
    static let settings = BreakerSettings(
        failureThreshold: 3, failureRateThreshold: 0.5, minimumRequests: 10, openSeconds: 2, maximumOpenSeconds: 7,
        halfOpenProbes: 2)

    @Test func closedBreakerOpensAfterTheConsecutiveFailureThresholdOnly() {
        var breaker = CircuitBreaker(settings: Self.settings)
        breaker.recordFailure(at: 0)
        breaker.recordFailure(at: 0)
        #expect(breaker.state(at: 0) == .closed)
        breaker.recordSuccess(at: 0)  // a success breaks the streak
        breaker.recordFailure(at: 0)
        breaker.recordFailure(at: 0)
        #expect(breaker.state(at: 0) == .closed)
        let granted1 = breaker.acquire(at: 0)
        #expect(granted1)
        breaker.recordFailure(at: 1)
        #expect(breaker.state(at: 1) == .open)
        #expect(!breaker.allowsRequest(at: 1))
        let granted2 = breaker.acquire(at: 2.9)
        #expect(!granted2)
        #expect(breaker.openUntil == 3)
    }

    @Test func failureRateOverTheWindowOpensWithoutAStreak() {
        var breaker = CircuitBreaker(settings: Self.settings)
        // Alternating failures never make a streak of three, but half of all outcomes fail.
        for step in 0..<9 {
            if step.isMultiple(of: 2) { breaker.recordFailure(at: 0) } else { breaker.recordSuccess(at: 0) }
            #expect(breaker.state(at: 0) == .closed, "after \(step + 1) outcomes")
        }
        breaker.recordSuccess(at: 0)
        breaker.recordFailure(at: 0)
        #expect(breaker.observedOutcomes == 10)
        #expect(breaker.state(at: 0) == .open)
    }

    @Test func aLowFailureRateKeepsItClosed() {
        var breaker = CircuitBreaker(settings: Self.settings)
        for step in 0..<100 {
            if step % 4 == 0 { breaker.recordFailure(at: 0) } else { breaker.recordSuccess(at: 0) }
        }
        #expect(breaker.state(at: 0) == .closed)
        #expect(breaker.failureRate < 0.5)
    }

    @Test func openTurnsHalfOpenWhenItsTimeIsUpAndLetsOnlyTheProbesThrough() {
        var breaker = CircuitBreaker(settings: Self.settings)
        for _ in 0..<3 { breaker.recordFailure(at: 10) }
        #expect(breaker.state(at: 11.99) == .open)
        #expect(breaker.state(at: 12) == .halfOpen)
        #expect(breaker.allowsRequest(at: 12))
        let granted3 = breaker.acquire(at: 12)
        #expect(granted3)
        let granted4 = breaker.acquire(at: 12)
        #expect(granted4)
        let granted5 = breaker.acquire(at: 12)
        #expect(!granted5, "only two probes at once")
        #expect(!breaker.allowsRequest(at: 12))
        breaker.release(at: 12)  // a probe whose caller left frees its slot
        #expect(breaker.probesInFlight == 1)
        let granted6 = breaker.acquire(at: 12)
        #expect(granted6)
    }

    @Test func aProbeSuccessClosesAndResetsTheTrips() {
        var breaker = CircuitBreaker(settings: Self.settings)
        for _ in 0..<3 { breaker.recordFailure(at: 0) }
        let granted7 = breaker.acquire(at: 2)
        #expect(granted7)
        breaker.recordSuccess(at: 2.1)
        #expect(breaker.state(at: 2.1) == .closed)
        #expect(breaker.trips == 0)
        #expect(breaker.consecutiveFailures == 0)
        // The next trip is a first trip again: the short open time.
        for _ in 0..<3 { breaker.recordFailure(at: 5) }
        #expect(breaker.openUntil == 7)
    }

    @Test func aProbeFailureReopensForTwiceAsLongUpToTheBound() {
        var breaker = CircuitBreaker(settings: Self.settings)
        for _ in 0..<3 { breaker.recordFailure(at: 0) }
        #expect(breaker.openUntil == 2)
        let granted8 = breaker.acquire(at: 2)
        #expect(granted8)
        breaker.recordFailure(at: 2)
        #expect(breaker.state(at: 2) == .open)
        #expect(breaker.openUntil == 6)  // 2 s doubled
        let granted9 = breaker.acquire(at: 6)
        #expect(granted9)
        breaker.recordFailure(at: 6)
        #expect(breaker.openUntil == 13)  // 8 s capped at 7
        #expect(breaker.trips == 3)
    }

    @Test func failuresWhileOpenDoNotExtendIt() {
        var breaker = CircuitBreaker(settings: Self.settings)
        for _ in 0..<3 { breaker.recordFailure(at: 0) }
        breaker.recordFailure(at: 1)  // a request sent before the trip, failing late
        #expect(breaker.openUntil == 2)
        #expect(breaker.trips == 1)
    }

    @Test func activeChecksOpenAndHalfOpenTheBreaker() {
        var breaker = CircuitBreaker(settings: Self.settings)
        breaker.recordFailedCheck(at: 0)
        breaker.recordFailedCheck(at: 0)
        #expect(breaker.state(at: 0) == .closed, "one lost check does not take a healthy endpoint out")
        breaker.recordFailedCheck(at: 0)
        #expect(breaker.state(at: 0) == .open, "failed checks in a row open it like failed requests")
        breaker.recordHealthyCheck(at: 0.5)
        #expect(breaker.state(at: 0.5) == .halfOpen, "a good check lets probes through before the open time is up")
        let granted10 = breaker.acquire(at: 0.5)
        #expect(granted10)
        breaker.recordSuccess(at: 0.6)
        #expect(breaker.state(at: 0.6) == .closed)
        breaker.recordHealthyCheck(at: 1)
        #expect(breaker.state(at: 1) == .closed, "a good check changes nothing on a closed breaker")
    }

    @Test func aSuccessCheckBreaksAFailedCheckStreak() {
        var breaker = CircuitBreaker(settings: Self.settings)
        for _ in 0..<2 { breaker.recordFailedCheck(at: 0) }
        breaker.recordSuccess(at: 0)
        breaker.recordFailedCheck(at: 0)
        #expect(breaker.state(at: 0) == .closed)
    }

    @Test func aFailedCheckReopensAHalfOpenBreaker() {
        var breaker = CircuitBreaker(settings: Self.settings)
        for _ in 0..<3 { breaker.recordFailure(at: 0) }
        #expect(breaker.state(at: 5) == .halfOpen)
        breaker.recordFailedCheck(at: 5)
        #expect(breaker.state(at: 5) == .open)
    }

    @Test func aLateSuccessFromBeforeATripLeavesTheBreakerOpen() {
        var breaker = CircuitBreaker(settings: Self.settings)
        for _ in 0..<3 { breaker.recordFailure(at: 10) }
        #expect(breaker.state(at: 10.5) == .open)
        // A long request sent at 9, before the trip at 10, ends well at 10.5.
        breaker.recordSuccess(at: 10.5, sentAt: 9)
        #expect(breaker.state(at: 10.5) == .open, "news from before the trip says nothing about the endpoint now")
        // Nor does it close the breaker once half-open, or free a probe slot it never held.
        let probe = breaker.acquire(at: 12.5)
        #expect(probe)
        breaker.recordSuccess(at: 12.6, sentAt: 9.5)
        #expect(breaker.state(at: 12.6) == .halfOpen)
        breaker.release(at: 12.6, sentAt: 9.5)
        #expect(breaker.probesInFlight == 1)
        // The probe itself, sent after the trip, closes it.
        breaker.recordSuccess(at: 12.7, sentAt: 12.5)
        #expect(breaker.state(at: 12.7) == .closed)
    }

    @Test func releaseOnAClosedBreakerChangesNothing() {
        var breaker = CircuitBreaker(settings: Self.settings)
        let granted11 = breaker.acquire(at: 0)
        #expect(granted11)
        breaker.release(at: 0)
        #expect(breaker == CircuitBreaker(settings: Self.settings))
    }

    @Test func settingsAreValidated() {
        let bad = BreakerSettings(
            failureThreshold: 0, failureRateThreshold: 1.5, minimumRequests: 0, openSeconds: 0, maximumOpenSeconds: -1,
            halfOpenProbes: 0)
        let paths = Set(bad.problems(at: "routing.breaker").map(\.keyPath))
        #expect(
            paths == [
                "routing.breaker.failure_threshold", "routing.breaker.failure_rate_threshold", "routing.breaker.minimum_requests",
                "routing.breaker.open_seconds", "routing.breaker.maximum_open_seconds", "routing.breaker.half_open_probes",
            ])
        #expect(BreakerSettings().problems(at: "x").isEmpty)
    }
}
