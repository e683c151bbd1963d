import ProximaCore
import Synchronization

/// Everything a request keeps of the configuration it was routed under, so that a reload while it
/// runs changes nothing for it.
struct RoutingSnapshot: Sendable {
    /// The residency rule a request must be routed under: its tenant's, key's and model's at once.
    func residencyRule(_ identity: CallerIdentity, model: LogicalModel) -> ResidencyRule? {
        residency.rule(tenant: identity.tenantID, key: identity.keyID, model: model.name)
    }

    let generation: Int
    let configuration: ProximaConfiguration
    let fleet: Fleet
    /// `Authorization` header value per endpoint index, from the endpoint's key variable.
    let authorizations: [String?]
    /// Every policy a name can stand for: built-in kinds and the configuration's named ones.
    let policies: [String: RoutingPolicy]
    /// The proxy's limits and deadlines under this configuration.
    let proxy: ProxySettings
    /// Whom to trust with steering headers, and where callers are by their network.
    let trust: CallerTrust
    /// The content guards, built for this configuration.
    let guards: PreparedGuards
    /// Residency rules by tenant, key and model, groups expanded.
    let residency: ResidencyRules

    init(generation: Int, configuration: ProximaConfiguration, environment: [String: String]) throws(InvalidConfiguration) {
        let fleet = try Fleet(configuration: configuration)
        var problems: [ConfigurationProblem] = []
        let authorizations: [String?] = configuration.endpoints.enumerated().map { index, endpoint in
            guard let variable = endpoint.apiKeyEnv else { return nil }
            guard let key = environment[variable], !key.isEmpty else {
                problems.append(.init("endpoints[\(index)].api_key_env", "environment variable \(variable) is not set"))
                return nil
            }
            return "Bearer \(key)"
        }
        if !problems.isEmpty { throw InvalidConfiguration(problems: problems) }
        var policies: [String: RoutingPolicy] = [:]
        for name in RoutingPolicy.names(in: configuration.routing) {
            policies[name] = RoutingPolicy.named(name, in: configuration.routing)
        }
        self.generation = generation
        self.configuration = configuration
        self.fleet = fleet
        self.authorizations = authorizations
        self.policies = policies
        self.proxy = ProxySettings(configuration.server)
        self.trust = CallerTrust(configuration: configuration, fleet: fleet)
        self.guards = try PreparedGuards(settings: configuration.guards)
        self.residency = ResidencyRules(configuration.residency)
    }

    /// The policy for a request: the one it names, else its model's, else its route's, else the default.
    func policy(requested: String?, model: LogicalModel, operation: InferenceOperation) throws(GatewayError) -> RoutingPolicy {
        if let requested {
            guard let policy = policies[requested] else {
                throw .invalidRequest(
                    "unknown routing policy '\(requested)' in x-proxima-policy (known: \(policies.keys.sorted().joined(separator: ", ")))",
                    param: "x-proxima-policy")
            }
            return policy
        }
        if let name = model.policy, let policy = policies[name] { return policy }
        if let name = configuration.routing.routes[operation.routeName], let policy = policies[name] { return policy }
        return policies[configuration.routing.policy] ?? RoutingPolicy(name: "balanced", kind: .balanced)
    }
}

/// Names an endpoint across fleet changes: its index in the fleet it was routed on, and its name.
struct EndpointRef: Sendable, Equatable {
    var index: Int
    var name: String
    var generation: Int
    /// The request's share of the endpoint's prefill queue (its estimated prompt less the prefix the
    /// router expects cached), counted from `begin` until its first token or end; 0 outside requests.
    var prefillTokens = 0
}

/// The fleet the request path routes over and the live telemetry about it. Decisions are made
/// under a short lock together with the optimistic in-flight count of the chosen endpoint, so that
/// concurrent requests see each other; no lock is held across an await.
final class RoutingState: Sendable {
    private struct Inner {
        var snapshot: RoutingSnapshot
        var telemetry: FleetTelemetry
        var indexByName: [String: Int]
        var entropy: SplitMix64
        var router: FleetRouter
    }

    private let inner: Mutex<Inner>
    private let generations = Mutex(0)
    private let origin = ContinuousClock.now

    init(configuration: ProximaConfiguration, environment: [String: String]) throws(InvalidConfiguration) {
        let snapshot = try RoutingSnapshot(generation: 0, configuration: configuration, environment: environment)
        let telemetry = FleetTelemetry(
            endpointCount: snapshot.fleet.endpoints.count, breaker: configuration.routing.breaker,
            settings: configuration.routing.telemetry)
        inner = Mutex(
            Inner(
                snapshot: snapshot, telemetry: telemetry, indexByName: Self.indexByName(snapshot.fleet),
                entropy: SplitMix64(seed: UInt64(truncatingIfNeeded: origin.hashValue) | 1),
                router: FleetRouter(defaultLocation: configuration.server.location ?? .init(latitude: 0, longitude: 0))))
    }

    private static func indexByName(_ fleet: Fleet) -> [String: Int] {
        var result: [String: Int] = [:]
        for endpoint in fleet.endpoints { result[endpoint.name] = endpoint.index }
        return result
    }

    /// Seconds since this state was created, on the monotonic clock: the time Core's models take.
    func now() -> Double {
        (ContinuousClock.now - origin).seconds
    }

    var snapshot: RoutingSnapshot { inner.withLock { $0.snapshot } }

    /// The current configuration, fleet and telemetry, read together.
    func current() -> (RoutingSnapshot, FleetTelemetry, Double) {
        let now = now()
        return inner.withLock { ($0.snapshot, $0.telemetry, now) }
    }

    // MARK: routing

    /// Routes a request and claims its first candidate (counted in flight before the lock is let go).
    /// The claim is nil when the decision has no candidate or `claimFirst` is false.
    func route(
        _ request: RouteRequest, policy: RoutingPolicy, limit: Int, claimFirst: Bool = true, explain: Bool = false
    ) -> (RoutingSnapshot, RouteDecision, EndpointClaim?) {
        let now = now()
        let (snapshot, decision, claimed) = inner.withLock { inner in
            let decision = inner.router.decide(
                request, policy: policy, fleet: inner.snapshot.fleet, telemetry: inner.telemetry, now: now,
                entropy: inner.entropy.next(), limit: limit, explain: explain)
            var claimed = false
            if claimFirst, let first = decision.candidates.first {
                claimed = inner.telemetry.begin(
                    first.endpoint, prefixBlocks: request.prefixBlocks,
                    prefillTokens: max(0, request.promptTokens - first.evaluation.cachedPromptTokens), at: now)
            }
            return (inner.snapshot, decision, claimed)
        }
        guard claimed, let first = decision.candidates.first else { return (snapshot, decision, nil) }
        let endpoint = snapshot.fleet.endpoints[first.endpoint]
        let ref = EndpointRef(
            index: endpoint.index, name: endpoint.name, generation: snapshot.generation,
            prefillTokens: max(0, request.promptTokens - first.evaluation.cachedPromptTokens))
        return (snapshot, decision, EndpointClaim(state: self, ref: ref, claimedAt: now))
    }

    /// Claims a further candidate; nil when it can no longer take requests (drained, breaker).
    func claim(_ endpoint: EndpointRef, prefixBlocks: [UInt64]) -> EndpointClaim? {
        let now = now()
        let granted = inner.withLock { inner in
            guard let index = Self.resolve(endpoint, in: inner) else { return false }
            return inner.telemetry.begin(index, prefixBlocks: prefixBlocks, prefillTokens: endpoint.prefillTokens, at: now)
        }
        return granted ? EndpointClaim(state: self, ref: endpoint, claimedAt: now) : nil
    }

    /// Records a claim's first token; called by ``EndpointClaim`` only.
    func firstToken(_ endpoint: EndpointRef, ttft: Double?, predicted: Double?) {
        let now = now()
        inner.withLock { inner in
            guard let index = Self.resolve(endpoint, in: inner) else { return }
            inner.telemetry.firstToken(index, ttft: ttft, predicted: predicted, prefillTokens: endpoint.prefillTokens, at: now)
        }
    }

    /// Ends a claim's counts; called by ``EndpointClaim`` only, exactly once per claim.
    func end(_ endpoint: EndpointRef, outcome: EndpointOutcome, sawFirstToken: Bool, timePerOutputToken: Double? = nil, sentAt: Double) {
        let now = now()
        inner.withLock { inner in
            guard let index = Self.resolve(endpoint, in: inner) else { return }
            inner.telemetry.end(
                index, outcome: outcome, sawFirstToken: sawFirstToken, timePerOutputToken: timePerOutputToken,
                prefillTokens: endpoint.prefillTokens, sentAt: sentAt, at: now)
        }
    }

    func recordEngineRead(_ endpoint: EndpointRef, snapshot: EngineLoadSnapshot) {
        let now = now()
        inner.withLock { inner in
            guard let index = Self.resolve(endpoint, in: inner) else { return }
            inner.telemetry.recordEngineRead(index, snapshot: snapshot, at: now)
        }
    }

    func recordCheck(_ endpoint: EndpointRef, succeeded: Bool) {
        let now = now()
        inner.withLock { inner in
            guard let index = Self.resolve(endpoint, in: inner) else { return }
            inner.telemetry.recordCheck(index, succeeded: succeeded, at: now)
        }
    }

    private static func resolve(_ endpoint: EndpointRef, in inner: Inner) -> Int? {
        if endpoint.generation == inner.snapshot.generation { return endpoint.index }
        return inner.indexByName[endpoint.name]
    }

    // MARK: control

    /// Drains or undrains an endpoint by name; false when there is no such endpoint.
    func setDrained(_ name: String, _ drained: Bool) -> Bool {
        inner.withLock { inner in
            guard let index = inner.indexByName[name] else { return false }
            inner.telemetry.setDrained(index, drained)
            return true
        }
    }

    /// Replaces the configuration (reload, endpoint added or removed, policy changed). The new
    /// configuration is checked completely first; on any problem nothing changes. Telemetry of
    /// endpoints that stay is kept.
    @discardableResult
    func replace(configuration: ProximaConfiguration, environment: [String: String]) throws(InvalidConfiguration) -> RoutingSnapshot {
        let generation = generations.withLock {
            $0 += 1
            return $0
        }
        let snapshot = try RoutingSnapshot(generation: generation, configuration: configuration, environment: environment)
        return inner.withLock { inner in
            // Of two changes made at once, the later one wins.
            guard snapshot.generation > inner.snapshot.generation else { return inner.snapshot }
            inner.telemetry = inner.telemetry.carried(
                from: inner.snapshot.fleet, to: snapshot.fleet, breaker: configuration.routing.breaker,
                settings: configuration.routing.telemetry)
            inner.snapshot = snapshot
            inner.indexByName = Self.indexByName(snapshot.fleet)
            inner.router = FleetRouter(defaultLocation: configuration.server.location ?? .init(latitude: 0, longitude: 0))
            return snapshot
        }
    }
}

extension InferenceOperation {
    /// The key of this operation in `routing.routes`.
    var routeName: String {
        switch self {
        case .chatCompletions: "chat_completions"
        case .completions: "completions"
        case .embeddings: "embeddings"
        }
    }
}
