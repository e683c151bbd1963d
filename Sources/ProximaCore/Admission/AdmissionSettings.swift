/// The default limits of each kind of scope, and how replicas share a limit. A key, principal or
/// tenant kept in the store may carry limits of its own; these apply where it sets none.
public struct AdmissionSettings: Codable, Sendable, Equatable {
    public var key: ScopeLimits
    public var principal: ScopeLimits
    public var tenant: ScopeLimits
    public var leases: LeaseSettings

    public init(
        key: ScopeLimits = .unlimited, principal: ScopeLimits = .unlimited, tenant: ScopeLimits = .unlimited,
        leases: LeaseSettings = .init()
    ) {
        self.key = key
        self.principal = principal
        self.tenant = tenant
        self.leases = leases
    }

    /// The defaults of one kind of scope.
    public func limits(for scope: AdmissionScope) -> ScopeLimits {
        switch scope {
        case .key: key
        case .principal: principal
        case .tenant: tenant
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case key, principal, tenant, leases }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        key = try c.decodeIfPresent(ScopeLimits.self, forKey: .key) ?? .unlimited
        principal = try c.decodeIfPresent(ScopeLimits.self, forKey: .principal) ?? .unlimited
        tenant = try c.decodeIfPresent(ScopeLimits.self, forKey: .tenant) ?? .unlimited
        leases = try c.decodeIfPresent(LeaseSettings.self, forKey: .leases) ?? .init()
    }

    /// Every problem, each named by its key under `path` (e.g. `limits`).
    public func problems(at path: String) -> [ConfigurationProblem] {
        key.problems(at: "\(path).key") + principal.problems(at: "\(path).principal") + tenant.problems(at: "\(path).tenant")
            + leases.problems(at: "\(path).leases")
    }
}

/// How gateway replicas share one rate limit through a shared counter without a round trip per
/// request: each takes a lease of units, admits locally from it, and gives back what it did not use
/// (see ``RateLease``).
public struct LeaseSettings: Codable, Sendable, Equatable {
    /// Share of a limit that all replicas together may hold in unused leases at once; this bounds
    /// how far the admitted total can drift from a single limiter's (0.05: within 5%).
    public var tolerance: Double
    /// A lease covers this many seconds of the replica's observed demand (within the tolerance):
    /// one round trip to the shared counter per this many seconds of steady traffic.
    public var leaseSeconds: Double
    /// A replica gives back a lease's unused units after this many seconds; it is also how long a
    /// replica keeps admitting limited callers on its own when the store cannot be reached.
    public var holdSeconds: Double
    /// How many gateway replicas share the store's counters: each holds at most
    /// `tolerance × N / (2 × replicas)` unused units of a limit of N.
    public var replicas: Int

    public init(tolerance: Double = 0.05, leaseSeconds: Double = 1, holdSeconds: Double = 5, replicas: Int = 1) {
        self.tolerance = tolerance
        self.leaseSeconds = leaseSeconds
        self.holdSeconds = holdSeconds
        self.replicas = replicas
    }

    public static let toleranceRange = 0.001...0.5
    public static let leaseSecondsRange = 0.01...60.0
    public static let holdSecondsRange = 0.1...600.0
    public static let replicasRange = 1...1_000

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tolerance, leaseSeconds = "lease_seconds", holdSeconds = "hold_seconds", replicas
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = LeaseSettings()
        tolerance = try c.decodeIfPresent(Double.self, forKey: .tolerance) ?? d.tolerance
        leaseSeconds = try c.decodeIfPresent(Double.self, forKey: .leaseSeconds) ?? d.leaseSeconds
        holdSeconds = try c.decodeIfPresent(Double.self, forKey: .holdSeconds) ?? d.holdSeconds
        replicas = try c.decodeIfPresent(Int.self, forKey: .replicas) ?? d.replicas
    }

    /// The settings brought into their ranges (NaN gives the default), for arithmetic that must
    /// not trap on settings that skipped validation.
    public var clamped: LeaseSettings {
        func clamp(_ value: Double, _ range: ClosedRange<Double>, _ fallback: Double) -> Double {
            value.isNaN ? fallback : min(max(value, range.lowerBound), range.upperBound)
        }
        let d = LeaseSettings()
        let lease = clamp(leaseSeconds, Self.leaseSecondsRange, d.leaseSeconds)
        return LeaseSettings(
            tolerance: clamp(tolerance, Self.toleranceRange, d.tolerance), leaseSeconds: lease,
            holdSeconds: max(clamp(holdSeconds, Self.holdSecondsRange, d.holdSeconds), lease),
            replicas: min(max(replicas, Self.replicasRange.lowerBound), Self.replicasRange.upperBound))
    }

    public func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        for (key, value, range) in [
            (CodingKeys.tolerance, tolerance, Self.toleranceRange), (.leaseSeconds, leaseSeconds, Self.leaseSecondsRange),
            (.holdSeconds, holdSeconds, Self.holdSecondsRange),
        ] where !(value.isFinite && range.contains(value)) {
            problems.append(.init("\(path).\(key.stringValue)", "must be between \(range.lowerBound) and \(range.upperBound), got \(value)"))
        }
        if !Self.replicasRange.contains(replicas) {
            problems.append(
                .init("\(path).replicas", "must be between \(Self.replicasRange.lowerBound) and \(Self.replicasRange.upperBound), got \(replicas)"))
        }
        if problems.isEmpty && holdSeconds < leaseSeconds {
            problems.append(.init("\(path).hold_seconds", "must be at least lease_seconds (\(leaseSeconds)), got \(holdSeconds)"))
        }
        return problems
    }
}
