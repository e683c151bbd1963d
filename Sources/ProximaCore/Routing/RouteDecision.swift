/// What the router needs to know about a request to place it.
public struct RouteRequest: Sendable {
    /// The logical model asked for (already resolved from an alias).
    public var model: LogicalModel
    public var stream: Bool
    /// Prompt length in tokens (estimated by the gateway, exact in simulation).
    public var promptTokens: Int
    /// The caller's `max_tokens`, if any.
    public var maxOutputTokens: Int?
    /// Hashes of the prompt's leading blocks, each covering the blocks before it too, so that two
    /// prompts share a block hash exactly when they share that whole prefix.
    public var prefixBlocks: [UInt64]
    /// Prompt tokens per prefix block.
    public var prefixBlockTokens: Int
    /// Where the caller is; the gateway's own location when unknown.
    public var clientLocation: Coordinates?
    /// Rules an endpoint must satisfy (residency, provider) on top of the built-in filters.
    public var constraints: [any RouteConstraint]

    public init(
        model: LogicalModel, stream: Bool = false, promptTokens: Int = 0, maxOutputTokens: Int? = nil,
        prefixBlocks: [UInt64] = [], prefixBlockTokens: Int = 512, clientLocation: Coordinates? = nil,
        constraints: [any RouteConstraint] = []
    ) {
        self.model = model
        self.stream = stream
        self.promptTokens = promptTokens
        self.maxOutputTokens = maxOutputTokens
        self.prefixBlocks = prefixBlocks
        self.prefixBlockTokens = prefixBlockTokens
        self.clientLocation = clientLocation
        self.constraints = constraints
    }
}

/// A rule that can rule an endpoint out for a request: where data may be processed, which providers
/// may see it. Residency and provider policies plug in here.
public protocol RouteConstraint: Sendable {
    /// The kind an exclusion by this rule is reported as.
    var exclusionKind: ExclusionKind { get }
    /// Why the endpoint must not serve the request, or nil when it may.
    func exclusionReason(endpoint: Endpoint, site: Site) -> String?
}

extension RouteConstraint {
    public var exclusionKind: ExclusionKind { .constraint }
}

/// Only sites in the listed jurisdictions may serve (for example `["DE", "FR"]` for data that must
/// stay in those countries). A site with no jurisdiction never qualifies.
public struct JurisdictionConstraint: RouteConstraint {
    public var allowed: Set<String>
    public var exclusionKind: ExclusionKind { .residency }

    public init(allowed: Set<String>) {
        self.allowed = allowed
    }

    public func exclusionReason(endpoint: Endpoint, site: Site) -> String? {
        guard let jurisdiction = site.jurisdiction else {
            return "site '\(site.name)' declares no jurisdiction; allowed: \(allowed.sorted().joined(separator: ", "))"
        }
        return allowed.contains(jurisdiction)
            ? nil : "site '\(site.name)' is in \(jurisdiction); allowed: \(allowed.sorted().joined(separator: ", "))"
    }
}

/// Where an estimated load came from.
public enum LoadSource: String, Sendable, Codable {
    /// The engine's own metrics plus requests sent since they were read.
    case engine
    /// The gateway's count of its own requests in flight (metrics missing or stale).
    case gateway
}

/// The five axes' penalties in the `balanced` score: 0 is the best any candidate achieves.
public struct AxisPenalties: Sendable, Equatable, Codable {
    public var ttft = 0.0
    public var cost = 0.0
    public var affinity = 0.0
    public var headroom = 0.0
    public var proximity = 0.0
}

/// Every axis value the router computed for one candidate endpoint.
public struct CandidateEvaluation: Sendable, Equatable {
    public var endpoint: Int
    /// 0 for the requested model, n for its n-th fallback.
    public var fallbackLevel: Int
    /// Estimated requests on the endpoint (running and waiting), including ones just sent.
    public var load: Double
    public var loadSource: LoadSource
    /// Requests this gateway has in flight there.
    public var inFlight: Int
    // 1. predicted TTFT and its parts
    public var rttSeconds: Double
    /// Queue wait from the load model, before the observed correction.
    public var modelQueueWaitSeconds: Double
    /// Observed TTFT minus predictions, fading with age; added to the queue wait.
    public var observedCorrectionSeconds: Double
    public var queueWaitSeconds: Double
    public var prefillSeconds: Double
    public var predictedTTFTSeconds: Double
    // 2. cost
    public var costUSD: Double
    // 3. affinity
    public var cachedPromptTokens: Int
    // 4. headroom (fractions 0...1)
    public var freeSlots: Double
    public var freeKVCache: Double
    public var powerHeadroom: Double?
    public var headroom: Double
    // 5. proximity and health
    public var distanceKilometres: Double
    public var errorRate: Double
    /// Balanced-policy penalties (zero under other policies).
    public var penalties = AxisPenalties()
    /// The policy's score; lower is better.
    public var score = 0.0
    /// Whether the predicted TTFT meets the `slo` policy's target (nil under other policies).
    public var meetsTarget: Bool?

    /// The TTFT whoever sends the request will measure if the model is right, before the observed
    /// correction: queue wait and prefill, plus the round trip when the endpoint adds the caller's
    /// network delay itself (emulated endpoints, the simulator). The observed TTFT minus this is what
    /// `FleetTelemetry.firstToken` learns.
    public func uncorrectedTTFTSeconds(includingRoundTrip: Bool) -> Double {
        modelQueueWaitSeconds + prefillSeconds + (includingRoundTrip ? rttSeconds : 0)
    }
}

/// One endpoint to try, with the model name it must be sent and how the router rated it.
public struct RouteCandidate: Sendable, Equatable {
    public var endpoint: Int
    public var upstreamModel: String
    /// The logical model this candidate serves; differs from the request's when it is a fallback.
    public var servedModel: String
    public var isFallback: Bool
    public var evaluation: CandidateEvaluation
}

/// Why an endpoint was ruled out.
public enum ExclusionKind: String, Sendable, Codable {
    case modelNotServed = "model_not_served"
    case contextTooLong = "context_too_long"
    case circuitOpen = "circuit_open"
    case drained
    case saturated
    case constraint
    /// Outside the tenant's, key's or model's residency rules (docs/governance.md).
    case residency
}

/// An endpoint that was not considered, and why.
public struct RouteExclusion: Sendable, Equatable {
    public var endpoint: Int
    public var kind: ExclusionKind
    public var reason: String
}

/// The outcome of routing one request: the endpoints to try, best first, every excluded endpoint
/// with its reason, and why the first was picked.
public struct RouteDecision: Sendable {
    public var policy: String
    public var kind: PolicyKind
    public var candidates: [RouteCandidate]
    /// All candidates that passed the filters (`candidates` may hold only the first few).
    public var evaluatedCount: Int
    public var exclusions: [RouteExclusion]
    public var reason: String

    public init(
        policy: String, kind: PolicyKind, candidates: [RouteCandidate], evaluatedCount: Int, exclusions: [RouteExclusion],
        reason: String
    ) {
        self.policy = policy
        self.kind = kind
        self.candidates = candidates
        self.evaluatedCount = evaluatedCount
        self.exclusions = exclusions
        self.reason = reason
    }

    /// Whether every endpoint serving the model was ruled out only because the request is too long.
    public var onlyContextTooLong: Bool {
        candidates.isEmpty && !exclusions.isEmpty
            && exclusions.allSatisfy { $0.kind == .contextTooLong || $0.kind == .modelNotServed }
            && exclusions.contains { $0.kind == .contextTooLong }
    }
}
