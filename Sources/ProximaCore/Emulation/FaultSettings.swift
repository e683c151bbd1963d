/// Faults an emulated endpoint shows, set in the fleet file or at run time through its admin
/// endpoint. Several may be active at once; `crash` wins over everything.
public struct FaultSettings: Codable, Sendable, Equatable {
    /// Refuse connections, as a crashed process would.
    public var crash: Bool
    /// Accept requests and never answer.
    public var hang: Bool
    /// Run the engine this many times slower (1 is normal).
    public var slowdown: Double
    /// Fraction of requests answered with a 5xx status, 0...1.
    public var errorRate: Double
    /// Fraction of streams cut off mid-way (the connection drops after a few tokens), 0...1.
    public var abortRate: Double
    /// Drop all traffic (accept, never answer) until this many seconds after the fault was set.
    public var partitionSeconds: Double

    public init(
        crash: Bool = false, hang: Bool = false, slowdown: Double = 1, errorRate: Double = 0, abortRate: Double = 0,
        partitionSeconds: Double = 0
    ) {
        self.crash = crash
        self.hang = hang
        self.slowdown = slowdown
        self.errorRate = errorRate
        self.abortRate = abortRate
        self.partitionSeconds = partitionSeconds
    }

    public static let none = FaultSettings()

    enum CodingKeys: String, CodingKey, CaseIterable {
        case crash, hang, slowdown, errorRate = "error_rate", abortRate = "abort_rate", partitionSeconds = "partition_seconds"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        crash = try c.decodeIfPresent(Bool.self, forKey: .crash) ?? false
        hang = try c.decodeIfPresent(Bool.self, forKey: .hang) ?? false
        slowdown = try c.decodeIfPresent(Double.self, forKey: .slowdown) ?? 1
        errorRate = try c.decodeIfPresent(Double.self, forKey: .errorRate) ?? 0
        abortRate = try c.decodeIfPresent(Double.self, forKey: .abortRate) ?? 0
        partitionSeconds = try c.decodeIfPresent(Double.self, forKey: .partitionSeconds) ?? 0
    }

    /// What is wrong with these settings, by key; empty when they can be applied.
    public func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        if !(slowdown >= 1 && slowdown <= 1_000) { problems.append(.init("\(path).slowdown", "must be between 1 and 1000, got \(slowdown)")) }
        if !(0...1).contains(errorRate) { problems.append(.init("\(path).error_rate", "must be between 0 and 1, got \(errorRate)")) }
        if !(0...1).contains(abortRate) { problems.append(.init("\(path).abort_rate", "must be between 0 and 1, got \(abortRate)")) }
        if !(partitionSeconds >= 0) { problems.append(.init("\(path).partition_seconds", "must not be negative")) }
        return problems
    }
}

/// What an emulated endpoint does with one request under its current faults. A pure decision:
/// the caller passes the time and a uniform random draw.
public enum FaultDecision: Equatable, Sendable {
    case serve
    case refuse
    case hang
    case fail(status: Int)
    /// Serve, but cut the stream after this many tokens.
    case abort(afterTokens: Int)

    /// - Parameters:
    ///   - secondsSinceSet: time since the faults were set (for the partition window).
    ///   - draw: uniform in 0..<1.
    public static func decide(_ faults: FaultSettings, secondsSinceSet: Double, draw: Double, outputTokens: Int) -> FaultDecision {
        if faults.crash { return .refuse }
        if faults.hang || secondsSinceSet < faults.partitionSeconds { return .hang }
        if draw < faults.errorRate { return .fail(status: 503) }
        if draw < faults.errorRate + faults.abortRate, outputTokens > 1 {
            return .abort(afterTokens: max(1, outputTokens / 2))
        }
        return .serve
    }
}
