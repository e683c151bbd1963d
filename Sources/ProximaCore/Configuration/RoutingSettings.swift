/// How requests are placed on the fleet: the default policy, named policies, per-route choices,
/// and the telemetry, breaker and hedging settings the router relies on.
public struct RoutingSettings: Codable, Sendable, Equatable {
    /// The policy used when neither the request, its model nor its route names one.
    public var policy: String
    /// Named policies, usable wherever a policy name is (`x-proxima-policy`, models, routes).
    public var policies: [String: PolicySettings]
    /// Policy per API route: `chat_completions`, `completions`, `embeddings`.
    public var routes: [String: String]
    /// Weights of the `balanced` score, used by every balanced policy that sets none of its own.
    public var weights: AxisWeights
    /// TTFT target of the `slo` policy, in seconds.
    public var ttftTargetSeconds: Double
    /// The site the `centralized` baseline sends everything to.
    public var centralSite: String?
    /// Scores of the `balanced` policy within this much of the best count as a tie; ties are broken
    /// by the lighter of two random picks so that bursts spread.
    public var tieTolerance: Double
    /// Share of the TTFT target the `slo` policy keeps in reserve for prediction error: a candidate
    /// meets the target when its predicted TTFT is within `target x (1 - margin)`.
    public var sloMargin: Double
    /// Output tokens expected from a request that sets no `max_tokens`.
    public var expectedOutputTokens: Int
    /// Named caller locations a request may give in `x-proxima-client-location` instead of
    /// coordinates (site names work too).
    public var regions: [String: Coordinates]
    /// Where callers of a network are, when they do not say (or may not: see `auth.trusted_proxies`);
    /// the first network holding the caller's address wins.
    public var networks: [NetworkLocationSettings]
    public var breaker: BreakerSettings
    public var telemetry: TelemetrySettings
    public var hedging: HedgingSettings

    public init(
        policy: String = "balanced", policies: [String: PolicySettings] = [:], routes: [String: String] = [:],
        weights: AxisWeights = .init(), ttftTargetSeconds: Double = 1.0, centralSite: String? = nil,
        tieTolerance: Double = 0.05, sloMargin: Double = 0.2, expectedOutputTokens: Int = 256, regions: [String: Coordinates] = [:],
        networks: [NetworkLocationSettings] = [], breaker: BreakerSettings = .init(),
        telemetry: TelemetrySettings = .init(), hedging: HedgingSettings = .init()
    ) {
        self.policy = policy
        self.policies = policies
        self.routes = routes
        self.weights = weights
        self.ttftTargetSeconds = ttftTargetSeconds
        self.centralSite = centralSite
        self.tieTolerance = tieTolerance
        self.sloMargin = sloMargin
        self.expectedOutputTokens = expectedOutputTokens
        self.regions = regions
        self.networks = networks
        self.breaker = breaker
        self.telemetry = telemetry
        self.hedging = hedging
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case policy, policies, routes, weights, ttftTargetSeconds = "ttft_target_seconds"
        case centralSite = "central_site", tieTolerance = "tie_tolerance", sloMargin = "slo_margin"
        case expectedOutputTokens = "expected_output_tokens", regions, networks, breaker, telemetry, hedging
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RoutingSettings()
        policy = try c.decodeIfPresent(String.self, forKey: .policy) ?? d.policy
        policies = try c.decodeIfPresent([String: PolicySettings].self, forKey: .policies) ?? [:]
        routes = try c.decodeIfPresent([String: String].self, forKey: .routes) ?? [:]
        weights = try c.decodeIfPresent(AxisWeights.self, forKey: .weights) ?? d.weights
        ttftTargetSeconds = try c.decodeIfPresent(Double.self, forKey: .ttftTargetSeconds) ?? d.ttftTargetSeconds
        centralSite = try c.decodeIfPresent(String.self, forKey: .centralSite)
        tieTolerance = try c.decodeIfPresent(Double.self, forKey: .tieTolerance) ?? d.tieTolerance
        sloMargin = try c.decodeIfPresent(Double.self, forKey: .sloMargin) ?? d.sloMargin
        expectedOutputTokens = try c.decodeIfPresent(Int.self, forKey: .expectedOutputTokens) ?? d.expectedOutputTokens
        regions = try c.decodeIfPresent([String: Coordinates].self, forKey: .regions) ?? [:]
        networks = try c.decodeIfPresent([NetworkLocationSettings].self, forKey: .networks) ?? []
        breaker = try c.decodeIfPresent(BreakerSettings.self, forKey: .breaker) ?? d.breaker
        telemetry = try c.decodeIfPresent(TelemetrySettings.self, forKey: .telemetry) ?? d.telemetry
        hedging = try c.decodeIfPresent(HedgingSettings.self, forKey: .hedging) ?? d.hedging
    }

    /// The API routes a policy can be set for.
    public static let routeNames = ["chat_completions", "completions", "embeddings"]

    func problems(siteNames: Set<String>) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        let known = Set(policies.keys).union(PolicyKind.allCases.map(\.rawValue))
        func checkName(_ name: String, _ path: String) {
            if !known.contains(name) {
                problems.append(.init(path, "unknown policy '\(name)' (known: \(known.sorted().joined(separator: ", ")))"))
            }
        }
        checkName(policy, "routing.policy")
        for (route, name) in routes.sorted(by: { $0.key < $1.key }) {
            if !Self.routeNames.contains(route) {
                problems.append(.init("routing.routes.\(route)", "unknown route (routes: \(Self.routeNames.joined(separator: ", ")))"))
            }
            checkName(name, "routing.routes.\(route)")
        }
        typealias Bounds = ConfigurationBounds
        func check(_ value: Double, _ range: ClosedRange<Double>, _ path: String, excludingLowerBound: Bool = false, unit: String = "") {
            if let problem = Bounds.problem(value, in: range, excludingLowerBound: excludingLowerBound, unit: unit) {
                problems.append(.init(path, problem))
            }
        }
        problems += weights.problems(at: "routing.weights")
        check(ttftTargetSeconds, 0...Bounds.maximumShortSeconds, "routing.ttft_target_seconds", excludingLowerBound: true, unit: "seconds")
        if let site = centralSite, !siteNames.contains(site) {
            problems.append(.init("routing.central_site", "unknown site '\(site)'"))
        }
        check(tieTolerance, 0...Bounds.maximumWeight, "routing.tie_tolerance")
        if !(sloMargin >= 0 && sloMargin < 1) { problems.append(.init("routing.slo_margin", "must be at least 0 and below 1")) }
        if let problem = Bounds.problem(expectedOutputTokens, in: 1...Bounds.maximumExpectedOutputTokens) {
            problems.append(.init("routing.expected_output_tokens", problem))
        }
        for (name, policy) in policies.sorted(by: { $0.key < $1.key }) {
            let path = "routing.policies.\(name)"
            if PolicyKind(rawValue: name) != nil && PolicyKind(rawValue: name) != policy.kind {
                problems.append(.init(path, "a named policy cannot reuse the built-in name '\(name)' for another kind"))
            }
            if let weights = policy.weights { problems += weights.problems(at: "\(path).weights") }
            if let target = policy.ttftTargetSeconds {
                check(target, 0...Bounds.maximumShortSeconds, "\(path).ttft_target_seconds", excludingLowerBound: true, unit: "seconds")
            }
            if let site = policy.centralSite, !siteNames.contains(site) {
                problems.append(.init("\(path).central_site", "unknown site '\(site)'"))
            }
            if policy.kind == .centralized && (policy.centralSite ?? centralSite) == nil {
                problems.append(.init("\(path).central_site", "the centralized policy needs a site"))
            }
        }
        for (name, location) in regions.sorted(by: { $0.key < $1.key }) {
            problems += ProximaConfiguration.coordinateProblems(location.latitude, location.longitude, at: "routing.regions.\(name)")
        }
        for (index, entry) in networks.enumerated() {
            do { _ = try IPNetwork(parsing: entry.network) } catch {
                problems.append(.init("routing.networks[\(index)].network", "'\(entry.network)' \(error)"))
            }
            if regions[entry.location] == nil && !siteNames.contains(entry.location)
                && Coordinates(parsing: entry.location) == nil
            {
                problems.append(
                    .init(
                        "routing.networks[\(index)].location",
                        "must be 'latitude,longitude', a site or a region of routing.regions; got '\(entry.location)'"))
            }
        }
        problems += breaker.problems(at: "routing.breaker")
        problems += telemetry.problems(at: "routing.telemetry")
        problems += hedging.problems(at: "routing.hedging")
        return problems
    }
}

/// The kinds of routing policy: two that use the five axes, and baselines to compare them against.
public enum PolicyKind: String, Codable, Sendable, CaseIterable {
    /// Lowest weighted sum of the normalized axis penalties.
    case balanced
    /// Cheapest among the candidates predicted to meet the TTFT target; fastest when none does.
    case slo
    case roundRobin = "round-robin"
    case random
    case leastInflight = "least-inflight"
    case nearest
    case cheapest
    /// Everything to one site; elsewhere only when none of its endpoints can take the request.
    case centralized
}

/// A named policy in the configuration.
public struct PolicySettings: Codable, Sendable, Equatable {
    public var kind: PolicyKind
    public var weights: AxisWeights?
    public var ttftTargetSeconds: Double?
    public var centralSite: String?

    public init(kind: PolicyKind, weights: AxisWeights? = nil, ttftTargetSeconds: Double? = nil, centralSite: String? = nil) {
        self.kind = kind
        self.weights = weights
        self.ttftTargetSeconds = ttftTargetSeconds
        self.centralSite = centralSite
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, weights, ttftTargetSeconds = "ttft_target_seconds", centralSite = "central_site"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(PolicyKind.self, forKey: .kind)
        weights = try c.decodeIfPresent(AxisWeights.self, forKey: .weights)
        ttftTargetSeconds = try c.decodeIfPresent(Double.self, forKey: .ttftTargetSeconds)
        centralSite = try c.decodeIfPresent(String.self, forKey: .centralSite)
    }
}

/// Weights of the five axes in the `balanced` score. Only their ratios matter.
public struct AxisWeights: Codable, Sendable, Equatable {
    public var ttft: Double
    public var cost: Double
    public var affinity: Double
    public var headroom: Double
    public var proximity: Double

    public init(ttft: Double = 1.0, cost: Double = 0.25, affinity: Double = 0.3, headroom: Double = 0.3, proximity: Double = 0.1) {
        self.ttft = ttft
        self.cost = cost
        self.affinity = affinity
        self.headroom = headroom
        self.proximity = proximity
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case ttft, cost, affinity, headroom, proximity }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AxisWeights()
        ttft = try c.decodeIfPresent(Double.self, forKey: .ttft) ?? d.ttft
        cost = try c.decodeIfPresent(Double.self, forKey: .cost) ?? d.cost
        affinity = try c.decodeIfPresent(Double.self, forKey: .affinity) ?? d.affinity
        headroom = try c.decodeIfPresent(Double.self, forKey: .headroom) ?? d.headroom
        proximity = try c.decodeIfPresent(Double.self, forKey: .proximity) ?? d.proximity
    }

    public func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        for (name, value) in [("ttft", ttft), ("cost", cost), ("affinity", affinity), ("headroom", headroom), ("proximity", proximity)] {
            if let problem = ConfigurationBounds.problem(value, in: 0...ConfigurationBounds.maximumWeight) {
                problems.append(.init("\(path).\(name)", problem))
            }
        }
        if problems.isEmpty && ttft + cost + affinity + headroom + proximity <= 0 {
            problems.append(.init(path, "at least one weight must be positive"))
        }
        return problems
    }
}

/// How the gateway learns about endpoints between requests.
public struct TelemetrySettings: Codable, Sendable, Equatable {
    /// Seconds between reads of an engine's metrics (and health checks); 0 turns both off.
    public var scrapeIntervalSeconds: Double
    /// Engine metrics older than this are ignored; the gateway's own counts are used instead.
    public var staleAfterSeconds: Double
    /// How fast observed TTFT corrections fade when an endpoint gets no traffic (half-life, seconds).
    public var observationHalfLifeSeconds: Double

    public init(scrapeIntervalSeconds: Double = 2, staleAfterSeconds: Double = 10, observationHalfLifeSeconds: Double = 30) {
        self.scrapeIntervalSeconds = scrapeIntervalSeconds
        self.staleAfterSeconds = staleAfterSeconds
        self.observationHalfLifeSeconds = observationHalfLifeSeconds
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case scrapeIntervalSeconds = "scrape_interval_seconds", staleAfterSeconds = "stale_after_seconds"
        case observationHalfLifeSeconds = "observation_half_life_seconds"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TelemetrySettings()
        scrapeIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: .scrapeIntervalSeconds) ?? d.scrapeIntervalSeconds
        staleAfterSeconds = try c.decodeIfPresent(Double.self, forKey: .staleAfterSeconds) ?? d.staleAfterSeconds
        observationHalfLifeSeconds =
            try c.decodeIfPresent(Double.self, forKey: .observationHalfLifeSeconds) ?? d.observationHalfLifeSeconds
    }

    func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        typealias Bounds = ConfigurationBounds
        if let problem = Bounds.problem(scrapeIntervalSeconds, in: 0...Bounds.maximumShortSeconds, unit: "seconds") {
            problems.append(.init("\(path).scrape_interval_seconds", problem))
        }
        for (name, value) in [("stale_after_seconds", staleAfterSeconds), ("observation_half_life_seconds", observationHalfLifeSeconds)] {
            if let problem = Bounds.problem(value, in: 0...Bounds.maximumSeconds, excludingLowerBound: true, unit: "seconds") {
                problems.append(.init("\(path).\(name)", problem))
            }
        }
        return problems
    }
}

/// Hedged requests: when the first byte is late, a second copy goes to the runner-up and the slower
/// of the two is cancelled.
public struct HedgingSettings: Codable, Sendable, Equatable {
    public var enabled: Bool
    /// A hedge is sent when no first byte arrived within this multiple of the predicted TTFT...
    public var delayFactor: Double
    /// ...but never sooner than this many seconds.
    public var minimumDelaySeconds: Double

    public init(enabled: Bool = false, delayFactor: Double = 2.0, minimumDelaySeconds: Double = 0.1) {
        self.enabled = enabled
        self.delayFactor = delayFactor
        self.minimumDelaySeconds = minimumDelaySeconds
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, delayFactor = "delay_factor", minimumDelaySeconds = "minimum_delay_seconds"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = HedgingSettings()
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
        delayFactor = try c.decodeIfPresent(Double.self, forKey: .delayFactor) ?? d.delayFactor
        minimumDelaySeconds = try c.decodeIfPresent(Double.self, forKey: .minimumDelaySeconds) ?? d.minimumDelaySeconds
    }

    func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        typealias Bounds = ConfigurationBounds
        if let problem = Bounds.problem(delayFactor, in: 1...Bounds.maximumDelayFactor) {
            problems.append(.init("\(path).delay_factor", problem))
        }
        if let problem = Bounds.problem(minimumDelaySeconds, in: 0...Bounds.maximumShortSeconds, unit: "seconds") {
            problems.append(.init("\(path).minimum_delay_seconds", problem))
        }
        return problems
    }
}

/// Who may use the admin API, and what it may do.
public struct AdminSettings: Codable, Sendable, Equatable {
    /// Environment variable holding the admin token; the admin API is off when it is not set.
    public var tokenEnv: String
    /// The environment variables an endpoint added through the admin API may name as its
    /// `api_key_env`. Empty by default: without it, whoever holds the admin token could add an
    /// endpoint at a host of their choice that is sent any variable of the process (the admin token
    /// itself, another endpoint's key) as its bearer token.
    public var allowedKeyEnv: [String]

    public init(tokenEnv: String = "PROXIMA_ADMIN_TOKEN", allowedKeyEnv: [String] = []) {
        self.tokenEnv = tokenEnv
        self.allowedKeyEnv = allowedKeyEnv
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case tokenEnv = "token_env", allowedKeyEnv = "allowed_key_env" }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tokenEnv = try c.decodeIfPresent(String.self, forKey: .tokenEnv) ?? AdminSettings().tokenEnv
        allowedKeyEnv = try c.decodeIfPresent([String].self, forKey: .allowedKeyEnv) ?? []
    }
}
