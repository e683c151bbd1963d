#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What is known about one endpoint right now: the gateway's own counts, the last engine metrics,
/// observed latencies, its breaker and whether an operator drained it. Plain values only, so that
/// the router reads thousands of them without reference counting.
public struct EndpointStatus: Sendable {
    /// Requests this gateway has open on the endpoint, counted from the moment they are sent
    /// (optimistically, before the engine reports them).
    public internal(set) var inFlight = 0
    /// Of those, requests still waiting for their first token.
    public internal(set) var awaitingFirstToken = 0
    /// Prompt tokens (less those expected from the prefix cache) of the requests awaiting their first
    /// token, when callers give them: the prefill queued ahead of a new request.
    public internal(set) var pendingPrefillTokens = 0
    /// The last engine metrics and when they were read.
    public internal(set) var engine: EngineLoadSnapshot?
    public internal(set) var engineReadAt: Double?
    /// `inFlight` when the metrics were read: requests sent since then are added to the engine's counts.
    public internal(set) var inFlightAtRead = 0
    /// Time to first token and time per output token as observed by the gateway (seconds, EWMA).
    public internal(set) var ttft: Double?
    public internal(set) var timePerOutputToken: Double?
    /// Observed TTFT minus the router's prediction (seconds, EWMA) and when it was last updated:
    /// what the model of the endpoint gets wrong, added to later predictions while it is fresh.
    public internal(set) var ttftResidual = 0.0
    public internal(set) var residualUpdatedAt: Double?
    /// Share of recent requests that failed (EWMA of 0/1 outcomes).
    public internal(set) var errorRate = 0.0
    public internal(set) var requests = 0
    public internal(set) var failures = 0
    public internal(set) var lastSent: Double?
    public internal(set) var lastSuccess: Double?
    public internal(set) var lastFailure: Double?
    public internal(set) var lastCheck: Double?
    public internal(set) var lastCheckSucceeded: Bool?
    public internal(set) var breaker: CircuitBreaker
    public internal(set) var drained = false

    init(breaker: BreakerSettings) {
        self.breaker = CircuitBreaker(settings: breaker)
    }

    /// The engine metrics if they are younger than `staleAfter` seconds.
    @inline(__always)
    public func freshEngine(at now: Double, staleAfter: Double) -> EngineLoadSnapshot? {
        guard let engine, let at = engineReadAt, now - at <= staleAfter else { return nil }
        return engine
    }
}

/// How a request sent to an endpoint ended, as far as the endpoint's health is concerned.
public enum EndpointOutcome: Sendable, Equatable {
    /// It answered (including its own 4xx verdict on the request).
    case success
    /// It failed: refused connection, 5xx, 429, timeout, broken stream.
    case failure
    /// The caller left or the gateway stopped: says nothing about the endpoint.
    case abandoned
}

/// The live state of every endpoint of a fleet, indexed like `Fleet.endpoints`. A value type with the
/// time passed in: the gateway keeps it behind a lock, the simulator owns it outright.
public struct FleetTelemetry: Sendable {
    public private(set) var statuses: [EndpointStatus]
    /// Per endpoint, the prompt-prefix blocks recently sent there, most likely still in its engine's
    /// prefix cache.
    private var prefixes: [PrefixCache]
    public let settings: TelemetrySettings
    /// Weight of a new observation in the latency and error-rate averages.
    public var smoothing = 0.2

    public init(endpointCount: Int, breaker: BreakerSettings = .init(), settings: TelemetrySettings = .init(), prefixBlocks: Int = 4_096) {
        self.settings = settings
        self.statuses = Array(repeating: EndpointStatus(breaker: breaker), count: endpointCount)
        self.prefixes = Array(repeating: PrefixCache(capacityBlocks: prefixBlocks), count: endpointCount)
    }

    /// How many leading blocks of a prompt were recently sent to an endpoint.
    @inline(__always)
    public func cachedPrefixBlocks(_ endpoint: Int, _ blocks: [UInt64]) -> Int {
        prefixes[endpoint].leadingCachedBlocks(of: blocks)
    }

    /// A telemetry for a new fleet that keeps the state of endpoints that exist in both, by name,
    /// under new settings.
    public func carried(from oldFleet: Fleet, to newFleet: Fleet, breaker: BreakerSettings, settings: TelemetrySettings) -> FleetTelemetry {
        var result = FleetTelemetry(endpointCount: newFleet.endpoints.count, breaker: breaker, settings: settings)
        result.smoothing = smoothing
        var oldIndex: [String: Int] = [:]
        for endpoint in oldFleet.endpoints { oldIndex[endpoint.name] = endpoint.index }
        for endpoint in newFleet.endpoints {
            if let old = oldIndex[endpoint.name], statuses.indices.contains(old) {
                result.statuses[endpoint.index] = statuses[old]
                result.prefixes[endpoint.index] = prefixes[old]
                result.statuses[endpoint.index].breaker.settings = breaker
            }
        }
        return result
    }

    public subscript(endpoint: Int) -> EndpointStatus { statuses[endpoint] }

    /// Takes the right to send a request to `endpoint` and counts it as in flight. Returns false,
    /// changing nothing, when the endpoint is drained or its breaker refuses.
    /// `prefillTokens` is the request's share of the prefill queue (its prompt less the prefix the
    /// router expects cached); give the same number to `firstToken` or `end`.
    public mutating func begin(_ endpoint: Int, prefixBlocks: [UInt64] = [], prefillTokens: Int = 0, at now: Double) -> Bool {
        guard statuses.indices.contains(endpoint), !statuses[endpoint].drained,
            statuses[endpoint].breaker.acquire(at: now)
        else { return false }
        statuses[endpoint].inFlight += 1
        statuses[endpoint].awaitingFirstToken += 1
        statuses[endpoint].pendingPrefillTokens += max(0, prefillTokens)
        statuses[endpoint].requests += 1
        statuses[endpoint].lastSent = now
        if !prefixBlocks.isEmpty { prefixes[endpoint].use(prefixBlocks) }
        return true
    }

    /// The first token (or the whole answer) of a request arrived after `ttft` seconds (nil when
    /// the time says nothing about TTFT, as for a whole answer); `predicted` is what the router
    /// expected, to learn the endpoint's bias.
    public mutating func firstToken(_ endpoint: Int, ttft: Double?, predicted: Double?, prefillTokens: Int = 0, at now: Double) {
        guard statuses.indices.contains(endpoint) else { return }
        statuses[endpoint].awaitingFirstToken = max(0, statuses[endpoint].awaitingFirstToken - 1)
        statuses[endpoint].pendingPrefillTokens = max(0, statuses[endpoint].pendingPrefillTokens - max(0, prefillTokens))
        guard let ttft, ttft.isFinite, ttft >= 0 else { return }
        statuses[endpoint].ttft = blend(statuses[endpoint].ttft, ttft)
        if let predicted, predicted.isFinite {
            let current = residual(endpoint, at: now)
            statuses[endpoint].ttftResidual = current + smoothing * ((ttft - predicted) - current)
            statuses[endpoint].residualUpdatedAt = now
        }
    }

    /// A request ended. `sawFirstToken` says whether `firstToken` was recorded for it;
    /// `timePerOutputToken` is the stream's measured pace, when there was one; `sentAt` is when it
    /// began (its outcome says nothing to a breaker that tripped after it was sent).
    public mutating func end(
        _ endpoint: Int, outcome: EndpointOutcome, sawFirstToken: Bool, timePerOutputToken: Double? = nil, prefillTokens: Int = 0,
        sentAt: Double = .infinity, at now: Double
    ) {
        guard statuses.indices.contains(endpoint) else { return }
        statuses[endpoint].inFlight = max(0, statuses[endpoint].inFlight - 1)
        if !sawFirstToken {
            statuses[endpoint].awaitingFirstToken = max(0, statuses[endpoint].awaitingFirstToken - 1)
            statuses[endpoint].pendingPrefillTokens = max(0, statuses[endpoint].pendingPrefillTokens - max(0, prefillTokens))
        }
        if let pace = timePerOutputToken, pace.isFinite, pace > 0 {
            statuses[endpoint].timePerOutputToken = blend(statuses[endpoint].timePerOutputToken, pace)
        }
        switch outcome {
        case .success:
            statuses[endpoint].errorRate *= 1 - smoothing
            statuses[endpoint].lastSuccess = now
            statuses[endpoint].breaker.recordSuccess(at: now, sentAt: sentAt)
        case .failure:
            statuses[endpoint].errorRate += smoothing * (1 - statuses[endpoint].errorRate)
            statuses[endpoint].failures += 1
            statuses[endpoint].lastFailure = now
            statuses[endpoint].breaker.recordFailure(at: now)
        case .abandoned:
            statuses[endpoint].breaker.release(at: now, sentAt: sentAt)
        }
    }

    /// Engine metrics were read (or could not be: `nil` with `reachable` false). The values are
    /// clamped to their ranges here, whoever made the snapshot.
    public mutating func recordEngineRead(_ endpoint: Int, snapshot: EngineLoadSnapshot?, at now: Double) {
        guard statuses.indices.contains(endpoint), let snapshot else { return }
        statuses[endpoint].engine = snapshot.clamped()
        statuses[endpoint].engineReadAt = now
        statuses[endpoint].inFlightAtRead = statuses[endpoint].inFlight
    }

    /// An active health check's result: failed checks count like failed requests toward opening the
    /// breaker, a good one lets an open breaker probe at once.
    public mutating func recordCheck(_ endpoint: Int, succeeded: Bool, at now: Double) {
        guard statuses.indices.contains(endpoint) else { return }
        statuses[endpoint].lastCheck = now
        statuses[endpoint].lastCheckSucceeded = succeeded
        if succeeded {
            statuses[endpoint].breaker.recordHealthyCheck(at: now)
        } else {
            statuses[endpoint].breaker.recordFailedCheck(at: now)
        }
    }

    public mutating func setDrained(_ endpoint: Int, _ drained: Bool) {
        guard statuses.indices.contains(endpoint) else { return }
        statuses[endpoint].drained = drained
    }

    /// The TTFT correction for an endpoint at `now`: the residual average, fading with the time
    /// since it was last updated so that an endpoint that lost its traffic gets tried again.
    @inline(__always)
    public func residual(_ endpoint: Int, at now: Double) -> Double {
        residual(of: statuses[endpoint], at: now)
    }

    @inline(__always)
    public func residual(of status: EndpointStatus, at now: Double) -> Double {
        guard let at = status.residualUpdatedAt else { return 0 }
        let age = max(0, now - at)
        return status.ttftResidual * exp2(-age / settings.observationHalfLifeSeconds)
    }

    private func blend(_ old: Double?, _ new: Double) -> Double {
        guard let old else { return new }
        return old + smoothing * (new - old)
    }
}
