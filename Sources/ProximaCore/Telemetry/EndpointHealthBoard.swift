/// Passive health of every endpoint: an endpoint that failed (connection refused, 5xx, timeout) is
/// skipped for a cooldown that grows with consecutive failures; one success clears it.
/// A pure value type; the gateway keeps it behind a lock and passes the time in.
public struct EndpointHealthBoard: Sendable, Equatable {
    public struct State: Sendable, Equatable {
        public var consecutiveFailures: Int = 0
        /// Seconds (on the caller's monotonic clock) until which the endpoint is skipped.
        public var downUntil: Double = -.infinity
        public var lastFailure: Double?
        public var lastSuccess: Double?
    }

    public private(set) var states: [State]
    public var cooldownSeconds: Double
    /// Cooldowns double with each consecutive failure up to this bound.
    public var maximumCooldownSeconds: Double

    public init(endpointCount: Int, cooldownSeconds: Double, maximumCooldownSeconds: Double = 60) {
        self.states = Array(repeating: State(), count: endpointCount)
        self.cooldownSeconds = cooldownSeconds
        self.maximumCooldownSeconds = max(cooldownSeconds, maximumCooldownSeconds)
    }

    public func isHealthy(_ endpoint: Int, at now: Double) -> Bool {
        states.indices.contains(endpoint) ? now >= states[endpoint].downUntil : false
    }

    public mutating func recordSuccess(_ endpoint: Int, at now: Double) {
        guard states.indices.contains(endpoint) else { return }
        states[endpoint].consecutiveFailures = 0
        states[endpoint].downUntil = -.infinity
        states[endpoint].lastSuccess = now
    }

    public mutating func recordFailure(_ endpoint: Int, at now: Double) {
        guard states.indices.contains(endpoint) else { return }
        states[endpoint].consecutiveFailures += 1
        let exponent = min(states[endpoint].consecutiveFailures - 1, 16)
        let cooldown = min(cooldownSeconds * Double(1 << exponent), maximumCooldownSeconds)
        states[endpoint].downUntil = now + cooldown
        states[endpoint].lastFailure = now
    }
}
