/// When a circuit breaker opens, how long it stays open and how it probes its way back.
public struct BreakerSettings: Codable, Sendable, Equatable {
    /// Consecutive failures that open the breaker.
    public var failureThreshold: Int
    /// Share of failures among recent outcomes that opens the breaker (passive outlier detection).
    public var failureRateThreshold: Double
    /// Outcomes needed before the failure rate counts; also the window the rate is averaged over.
    public var minimumRequests: Int
    /// How long the breaker stays open after its first trip; it doubles with each trip in a row.
    public var openSeconds: Double
    public var maximumOpenSeconds: Double
    /// Requests let through at once while half-open to find out whether the endpoint recovered.
    public var halfOpenProbes: Int

    public init(
        failureThreshold: Int = 3, failureRateThreshold: Double = 0.5, minimumRequests: Int = 20,
        openSeconds: Double = 5, maximumOpenSeconds: Double = 60, halfOpenProbes: Int = 1
    ) {
        self.failureThreshold = failureThreshold
        self.failureRateThreshold = failureRateThreshold
        self.minimumRequests = minimumRequests
        self.openSeconds = openSeconds
        self.maximumOpenSeconds = maximumOpenSeconds
        self.halfOpenProbes = halfOpenProbes
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case failureThreshold = "failure_threshold", failureRateThreshold = "failure_rate_threshold"
        case minimumRequests = "minimum_requests", openSeconds = "open_seconds"
        case maximumOpenSeconds = "maximum_open_seconds", halfOpenProbes = "half_open_probes"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BreakerSettings()
        failureThreshold = try c.decodeIfPresent(Int.self, forKey: .failureThreshold) ?? d.failureThreshold
        failureRateThreshold = try c.decodeIfPresent(Double.self, forKey: .failureRateThreshold) ?? d.failureRateThreshold
        minimumRequests = try c.decodeIfPresent(Int.self, forKey: .minimumRequests) ?? d.minimumRequests
        openSeconds = try c.decodeIfPresent(Double.self, forKey: .openSeconds) ?? d.openSeconds
        maximumOpenSeconds = try c.decodeIfPresent(Double.self, forKey: .maximumOpenSeconds) ?? d.maximumOpenSeconds
        halfOpenProbes = try c.decodeIfPresent(Int.self, forKey: .halfOpenProbes) ?? d.halfOpenProbes
    }

    func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        typealias Bounds = ConfigurationBounds
        for (name, value) in [("failure_threshold", failureThreshold), ("minimum_requests", minimumRequests), ("half_open_probes", halfOpenProbes)] {
            if let problem = Bounds.problem(value, in: 1...Bounds.maximumCount) { problems.append(.init("\(path).\(name)", problem)) }
        }
        if !(failureRateThreshold > 0 && failureRateThreshold <= 1) {
            problems.append(.init("\(path).failure_rate_threshold", "must be in (0, 1], got \(failureRateThreshold)"))
        }
        if let problem = Bounds.problem(openSeconds, in: 0...Bounds.maximumSeconds, excludingLowerBound: true, unit: "seconds") {
            problems.append(.init("\(path).open_seconds", problem))
        }
        if let problem = Bounds.problem(maximumOpenSeconds, in: 0...Bounds.maximumSeconds, unit: "seconds") {
            problems.append(.init("\(path).maximum_open_seconds", problem))
        } else if !(maximumOpenSeconds >= openSeconds) {
            problems.append(.init("\(path).maximum_open_seconds", "must be at least open_seconds (\(openSeconds))"))
        }
        return problems
    }
}

/// A circuit breaker for one endpoint, as a pure state machine with the time passed in.
///
/// - closed: requests flow; consecutive failures, or a failure rate over the recent window, open it.
/// - open: no requests until `openUntil`; each trip in a row doubles the open time (bounded).
/// - half-open: after the open time (or when an active health check succeeds), up to
///   `halfOpenProbes` requests go through at once; a success closes the breaker, a failure opens it
///   again for longer.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: String, Sendable, Equatable, Codable {
        case closed, open
        case halfOpen = "half-open"
    }

    public var settings: BreakerSettings
    /// The state as last changed by an event; `state(at:)` also applies the passing of time.
    public private(set) var storedState: State = .closed
    public private(set) var consecutiveFailures = 0
    /// Trips without a recovery in between; sets the open time.
    public private(set) var trips = 0
    public private(set) var openUntil: Double = -.infinity
    /// When the breaker last tripped: outcomes of requests sent before then say nothing about the
    /// endpoint as it is now, and must not close it again.
    public private(set) var trippedAt: Double = -.infinity
    /// Probe requests let through while half-open whose outcome is not known yet.
    public private(set) var probesInFlight = 0
    /// Decayed failure share of recent outcomes and how many outcomes it rests on.
    public private(set) var failureRate = 0.0
    public private(set) var observedOutcomes = 0

    public init(settings: BreakerSettings = .init()) {
        self.settings = settings
    }

    /// The state at `now`: an open breaker whose time is up is half-open.
    public func state(at now: Double) -> State {
        storedState == .open && now >= openUntil ? .halfOpen : storedState
    }

    /// Whether a request may be sent at `now` (without taking a probe slot).
    public func allowsRequest(at now: Double) -> Bool {
        switch state(at: now) {
        case .closed: true
        case .open: false
        case .halfOpen: probesInFlight < settings.halfOpenProbes
        }
    }

    /// Takes the right to send one request. Returns false (and changes nothing) when the breaker
    /// refuses it; a half-open breaker counts the request as a probe.
    public mutating func acquire(at now: Double) -> Bool {
        settle(at: now)
        switch storedState {
        case .closed:
            return true
        case .open:
            return false
        case .halfOpen:
            guard probesInFlight < settings.halfOpenProbes else { return false }
            probesInFlight += 1
            return true
        }
    }

    /// A request acquired earlier ended without telling anything about the endpoint (the caller left).
    /// `sentAt` is when it was acquired: one from before the last trip held no probe slot.
    public mutating func release(at now: Double, sentAt: Double = .infinity) {
        settle(at: now)
        if storedState == .halfOpen && sentAt >= trippedAt { probesInFlight = max(0, probesInFlight - 1) }
    }

    /// A request succeeded. `sentAt` is when it was acquired: a success of a request sent before the
    /// breaker last tripped is late news, and leaves an open or half-open breaker as it is.
    public mutating func recordSuccess(at now: Double, sentAt: Double = .infinity) {
        settle(at: now)
        if storedState != .closed && sentAt < trippedAt { return }
        observe(failure: false)
        consecutiveFailures = 0
        if storedState != .closed {
            storedState = .closed
            trips = 0
            probesInFlight = 0
            openUntil = -.infinity
            failureRate = 0
            observedOutcomes = 0
        }
    }

    public mutating func recordFailure(at now: Double) {
        settle(at: now)
        observe(failure: true)
        consecutiveFailures += 1
        switch storedState {
        case .open:
            return
        case .halfOpen:
            trip(at: now)
        case .closed:
            let rateTrips = observedOutcomes >= settings.minimumRequests && failureRate >= settings.failureRateThreshold
            if consecutiveFailures >= settings.failureThreshold || rateTrips { trip(at: now) }
        }
    }

    /// An active health check found the endpoint up: an open breaker lets probes through at once.
    public mutating func recordHealthyCheck(at now: Double) {
        settle(at: now)
        if storedState == .open {
            storedState = .halfOpen
            probesInFlight = 0
        }
    }

    /// An active health check could not reach the endpoint. It counts like a failed request: a
    /// closed breaker opens after `failureThreshold` failures in a row (one lost check packet does not
    /// take a healthy endpoint out), a half-open one opens again at once.
    public mutating func recordFailedCheck(at now: Double) {
        settle(at: now)
        consecutiveFailures += 1
        switch storedState {
        case .open: return
        case .halfOpen: trip(at: now)
        case .closed: if consecutiveFailures >= settings.failureThreshold { trip(at: now) }
        }
    }

    private mutating func settle(at now: Double) {
        if storedState == .open && now >= openUntil {
            storedState = .halfOpen
            probesInFlight = 0
        }
    }

    private mutating func trip(at now: Double) {
        trips += 1
        trippedAt = now
        let exponent = Double(min(trips - 1, 16))
        openUntil = now + min(settings.openSeconds * pow2(exponent), settings.maximumOpenSeconds)
        storedState = .open
        probesInFlight = 0
    }

    private mutating func observe(failure: Bool) {
        observedOutcomes = min(observedOutcomes + 1, settings.minimumRequests)
        let weight = 1 / Double(observedOutcomes)
        failureRate += weight * ((failure ? 1 : 0) - failureRate)
    }

    private func pow2(_ exponent: Double) -> Double {
        var result = 1.0
        for _ in 0..<Int(exponent) { result *= 2 }
        return result
    }
}
