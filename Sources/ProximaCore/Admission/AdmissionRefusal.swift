/// Who a limit belongs to: the API key a request came with, the principal (user or service) it
/// acts for, or the tenant that owns both.
public enum AdmissionScope: String, Sendable, Equatable, CaseIterable, Codable {
    case key, principal, tenant

    /// Broader scopes win ties: a caller cannot get around a tenant's limit with another key.
    var breadth: Int {
        switch self {
        case .key: 0
        case .principal: 1
        case .tenant: 2
        }
    }
}

/// Why a request was not admitted, and how the HTTP edge answers it (OpenAI's statuses, types and
/// codes):
///
/// | reason | status | type | code |
/// |---|---|---|---|
/// | requests per minute, concurrent requests | 429 | `requests` | `rate_limit_exceeded` |
/// | tokens per minute, request larger than the whole limit | 429 | `tokens` | `rate_limit_exceeded` |
/// | `max_tokens` above the scope's maximum | 400 | `invalid_request_error` | `invalid_request`, param `max_tokens` |
/// | daily or monthly budget spent | 429 | `insufficient_quota` | `insufficient_quota` |
///
/// `max_tokens` is the request's own value, which the caller must change: OpenAI answers a
/// too-large `max_tokens` with 400, and so does the gateway (403 is kept for models and features a
/// principal may not use at all). A request whose token estimate exceeds the whole tokens-per-minute
/// limit gets OpenAI's 429 "request too large", without `Retry-After`, since waiting cannot help.
public struct AdmissionRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        case requests
        case tokens
        /// The token estimate is larger than the whole tokens-per-minute limit.
        case requestTooLarge
        case concurrency
        case maxTokens(requested: Int)
        case budget(BudgetPeriod)
    }

    public var reason: Reason
    public var scope: AdmissionScope
    /// The limit that refused, in its own unit (requests, tokens, requests at once, tokens per
    /// answer, or dollars).
    public var limit: Double
    /// Seconds until a retry can succeed; `nil` when retrying the same request cannot.
    public var retryAfter: Double?

    public init(reason: Reason, scope: AdmissionScope, limit: Double, retryAfter: Double?) {
        self.reason = reason
        self.scope = scope
        self.limit = limit
        self.retryAfter = retryAfter
    }

    public var httpStatus: Int {
        if case .maxTokens = reason { return 400 }
        return 429
    }

    /// OpenAI's error `type`.
    public var type: String {
        switch reason {
        case .requests, .concurrency: "requests"
        case .tokens, .requestTooLarge: "tokens"
        case .maxTokens: "invalid_request_error"
        case .budget: "insufficient_quota"
        }
    }

    /// OpenAI's error `code`.
    public var code: String {
        switch reason {
        case .requests, .concurrency, .tokens, .requestTooLarge: "rate_limit_exceeded"
        case .maxTokens: "invalid_request"
        case .budget: "insufficient_quota"
        }
    }

    /// OpenAI's error `param`.
    public var param: String? {
        if case .maxTokens = reason { return "max_tokens" }
        return nil
    }

    /// `Retry-After` in whole seconds, when a retry can succeed.
    public var retryAfterSeconds: Int? {
        retryAfter.map(RateLimitHeaders.retryAfterSeconds)
    }

    public var message: String {
        let whose = "this \(scope.rawValue)"
        let wait = retryAfter.map { " Please try again in \(RateLimitHeaders.resetDuration($0))." } ?? ""
        let whole = AdmissionArithmetic.wholeUnits(limit)
        switch reason {
        case .requests:
            return "Rate limit reached for \(whose) on requests per minute: limit \(whole).\(wait)"
        case .tokens:
            return "Rate limit reached for \(whose) on tokens per minute: limit \(whole).\(wait)"
        case .requestTooLarge:
            return "Request too large for \(whose) on tokens per minute: limit \(whole). Reduce the input or max_tokens."
        case .concurrency:
            return "Too many concurrent requests for \(whose): limit \(whole).\(wait)"
        case .maxTokens(let requested):
            return "max_tokens is too large: \(requested). At most \(whole) is allowed for \(whose)."
        case .budget(let period):
            let window = period == .day ? "daily" : "monthly"
            return "You exceeded the \(window) budget of \(Money(dollars: limit)) for \(whose).\(wait)"
        }
    }

    public var description: String { "\(httpStatus) \(code): \(message)" }

    /// How hard the refusal is to overcome: a request that must change beats one that cannot fit,
    /// which beats a spent budget, which beats a rate or concurrency limit.
    var severity: Int {
        switch reason {
        case .maxTokens: 4
        case .requestTooLarge: 3
        case .budget: 2
        case .requests, .tokens, .concurrency: 1
        }
    }

    /// Whether this refusal is more restrictive than `other`: higher severity, then the longer
    /// wait (never counts as longest), then the broader scope.
    public func isMoreRestrictive(than other: AdmissionRefusal) -> Bool {
        if severity != other.severity { return severity > other.severity }
        let wait = retryAfter ?? .infinity
        let otherWait = other.retryAfter ?? .infinity
        if wait != otherWait { return wait > otherWait }
        return scope.breadth > other.scope.breadth
    }
}
