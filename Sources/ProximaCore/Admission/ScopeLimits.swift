/// What one scope (an API key, a principal or a tenant) may use. Every limit is optional: an unset
/// limit does not apply. Rates are per minute; money is in US dollars.
public struct ScopeLimits: Codable, Sendable, Equatable {
    /// Requests admitted per minute, refilled continuously (see ``RateLimiter``).
    public var requestsPerMinute: Int?
    /// Tokens (prompt plus completion) admitted per minute, charged as an estimate at admission and
    /// corrected by the real usage when the answer ends.
    public var tokensPerMinute: Int?
    /// Requests running at once.
    public var concurrentRequests: Int?
    /// Largest `max_tokens` a request may ask for.
    public var maxTokens: Int?
    /// Spend allowed per UTC calendar day, in US dollars.
    public var dailyBudgetUSD: Double?
    /// Spend allowed per UTC calendar month, in US dollars.
    public var monthlyBudgetUSD: Double?

    public init(
        requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, concurrentRequests: Int? = nil, maxTokens: Int? = nil,
        dailyBudgetUSD: Double? = nil, monthlyBudgetUSD: Double? = nil
    ) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.concurrentRequests = concurrentRequests
        self.maxTokens = maxTokens
        self.dailyBudgetUSD = dailyBudgetUSD
        self.monthlyBudgetUSD = monthlyBudgetUSD
    }

    /// No limit at all: the default of every scope.
    public static let unlimited = ScopeLimits()

    /// Whether any limit is set; a scope without one needs no bookkeeping.
    public var isUnlimited: Bool { self == .unlimited }

    /// Accepted ranges. The upper bounds are far above any real use and keep every later
    /// computation exact in a `Double` (below 2^53) and free of overflow.
    public static let requestsPerMinuteRange = 1...1_000_000_000
    public static let tokensPerMinuteRange = 1...1_000_000_000_000
    public static let concurrentRequestsRange = 1...1_000_000
    public static let maxTokensRange = 1...100_000_000
    public static let budgetRangeUSD = 0.0...1_000_000_000.0

    enum CodingKeys: String, CodingKey, CaseIterable {
        case requestsPerMinute = "requests_per_minute", tokensPerMinute = "tokens_per_minute"
        case concurrentRequests = "concurrent_requests", maxTokens = "max_tokens"
        case dailyBudgetUSD = "daily_budget_usd", monthlyBudgetUSD = "monthly_budget_usd"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        requestsPerMinute = try c.decodeIfPresent(Int.self, forKey: .requestsPerMinute)
        tokensPerMinute = try c.decodeIfPresent(Int.self, forKey: .tokensPerMinute)
        concurrentRequests = try c.decodeIfPresent(Int.self, forKey: .concurrentRequests)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        dailyBudgetUSD = try c.decodeIfPresent(Double.self, forKey: .dailyBudgetUSD)
        monthlyBudgetUSD = try c.decodeIfPresent(Double.self, forKey: .monthlyBudgetUSD)
    }

    /// Every value out of range, each named by its key under `path` (e.g. `limits.tenant`).
    public func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        func check(_ value: Int?, _ range: ClosedRange<Int>, _ key: CodingKeys) {
            guard let value, !range.contains(value) else { return }
            problems.append(
                .init("\(path).\(key.stringValue)", "must be between \(range.lowerBound) and \(range.upperBound), got \(value)"))
        }
        func check(_ value: Double?, _ range: ClosedRange<Double>, _ key: CodingKeys) {
            guard let value, !(value.isFinite && range.contains(value)) else { return }
            problems.append(
                .init(
                    "\(path).\(key.stringValue)",
                    "must be a number of US dollars between 0 and \(Int(range.upperBound)), got \(value)"))
        }
        check(requestsPerMinute, Self.requestsPerMinuteRange, .requestsPerMinute)
        check(tokensPerMinute, Self.tokensPerMinuteRange, .tokensPerMinute)
        check(concurrentRequests, Self.concurrentRequestsRange, .concurrentRequests)
        check(maxTokens, Self.maxTokensRange, .maxTokens)
        check(dailyBudgetUSD, Self.budgetRangeUSD, .dailyBudgetUSD)
        check(monthlyBudgetUSD, Self.budgetRangeUSD, .monthlyBudgetUSD)
        return problems
    }
}
