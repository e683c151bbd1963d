/// How long the gateway waits on its callers and how much of its resources they may hold
/// (`server.callers`). Every limit has a default that holds against hostile callers: a connection
/// that sends nothing, or a head or a body one byte at a time, is closed at a deadline; a head too
/// large is refused with 431; connections past the limit get a quick 503 and are closed; bodies
/// still arriving share one memory budget.
public struct CallerSettings: Codable, Sendable, Equatable {
    /// Seconds from accepting a connection, or from the first byte of a request head, to the end
    /// of that head. A connection that sends nothing is closed at this deadline.
    public var headerTimeout: Double
    /// Longest silence in seconds between two reads of a request body.
    public var bodyIdleTimeout: Double
    /// Seconds from a request's head to the end of its body.
    public var bodyTimeout: Double
    /// Seconds a keep-alive connection may wait, idle, for its next request.
    public var keepAliveTimeout: Double
    /// Largest request head (request line and header fields) in bytes; larger ones get 431.
    public var maxHeadBytes: Int
    /// Most header fields in one request head; more get 431.
    public var maxHeaderFields: Int
    /// Caller connections served at once. Nil: derived from the process's descriptor limit
    /// (`(RLIMIT_NOFILE soft limit - 64) / 2`, since each caller may hold an upstream socket too).
    /// A connection past the limit is answered 503 and closed; those admitted are served on.
    public var maxConnections: Int?
    /// Bytes all request bodies still arriving may hold together; a body that would pass it gets 503.
    public var bodyMemoryBudgetBytes: Int

    public init(
        headerTimeout: Double = 10, bodyIdleTimeout: Double = 30, bodyTimeout: Double = 120, keepAliveTimeout: Double = 75,
        maxHeadBytes: Int = 32 * 1024, maxHeaderFields: Int = 100, maxConnections: Int? = nil,
        bodyMemoryBudgetBytes: Int = 256 * 1024 * 1024
    ) {
        self.headerTimeout = headerTimeout
        self.bodyIdleTimeout = bodyIdleTimeout
        self.bodyTimeout = bodyTimeout
        self.keepAliveTimeout = keepAliveTimeout
        self.maxHeadBytes = maxHeadBytes
        self.maxHeaderFields = maxHeaderFields
        self.maxConnections = maxConnections
        self.bodyMemoryBudgetBytes = bodyMemoryBudgetBytes
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case headerTimeout = "header_timeout", bodyIdleTimeout = "body_idle_timeout", bodyTimeout = "body_timeout"
        case keepAliveTimeout = "keep_alive_timeout", maxHeadBytes = "max_head_bytes", maxHeaderFields = "max_header_fields"
        case maxConnections = "max_connections", bodyMemoryBudgetBytes = "body_memory_budget_bytes"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CallerSettings()
        headerTimeout = try c.decodeIfPresent(Double.self, forKey: .headerTimeout) ?? d.headerTimeout
        bodyIdleTimeout = try c.decodeIfPresent(Double.self, forKey: .bodyIdleTimeout) ?? d.bodyIdleTimeout
        bodyTimeout = try c.decodeIfPresent(Double.self, forKey: .bodyTimeout) ?? d.bodyTimeout
        keepAliveTimeout = try c.decodeIfPresent(Double.self, forKey: .keepAliveTimeout) ?? d.keepAliveTimeout
        maxHeadBytes = try c.decodeIfPresent(Int.self, forKey: .maxHeadBytes) ?? d.maxHeadBytes
        maxHeaderFields = try c.decodeIfPresent(Int.self, forKey: .maxHeaderFields) ?? d.maxHeaderFields
        maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections)
        bodyMemoryBudgetBytes = try c.decodeIfPresent(Int.self, forKey: .bodyMemoryBudgetBytes) ?? d.bodyMemoryBudgetBytes
    }

    /// The largest value accepted for any of the timeouts: one day.
    public static let longestTimeout: Double = 86_400

    /// Every problem with these settings, keyed under `path` (`server.callers`).
    public func problems(at path: String, maxRequestBodyBytes: Int) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        let timeouts: [(String, Double)] = [
            ("header_timeout", headerTimeout), ("body_idle_timeout", bodyIdleTimeout), ("body_timeout", bodyTimeout),
            ("keep_alive_timeout", keepAliveTimeout),
        ]
        for (key, value) in timeouts where !(value > 0 && value <= Self.longestTimeout) {
            // `!(a && b)` also catches NaN, which fails every comparison.
            problems.append(.init("\(path).\(key)", "must be a number of seconds above 0 and at most \(Int(Self.longestTimeout)), got \(value)"))
        }
        if !(1024...(1 << 20)).contains(maxHeadBytes) {
            problems.append(.init("\(path).max_head_bytes", "must be between 1024 and 1048576 bytes, got \(maxHeadBytes)"))
        }
        if !(1...10_000).contains(maxHeaderFields) {
            problems.append(.init("\(path).max_header_fields", "must be between 1 and 10000, got \(maxHeaderFields)"))
        }
        if let maxConnections, !(1...(1 << 24)).contains(maxConnections) {
            problems.append(.init("\(path).max_connections", "must be between 1 and 16777216, got \(maxConnections)"))
        }
        if !(bodyMemoryBudgetBytes >= 1 && bodyMemoryBudgetBytes <= (1 << 40)) {
            problems.append(.init("\(path).body_memory_budget_bytes", "must be between 1 and 2^40 bytes, got \(bodyMemoryBudgetBytes)"))
        } else if bodyMemoryBudgetBytes < maxRequestBodyBytes {
            problems.append(
                .init(
                    "\(path).body_memory_budget_bytes",
                    "must be at least server.max_request_body_bytes (\(maxRequestBodyBytes)), or no body of the largest size could be read"))
        }
        return problems
    }
}
