/// Who a request comes from, as the identify stage established it: the tenant, the principal, the
/// key (if one was presented) and what they may use. Admission, routing and (later) the cache and
/// the audit trail read it; nothing in it is secret.
public struct CallerIdentity: Sendable, Equatable {
    public enum Credential: String, Sendable, Equatable {
        /// No credential: the listener's auth mode is `none`.
        case none
        case apiKey = "api_key"
        case jwt
        /// No credential, where one is required: admitted into `edge.public_tenant`, where the
        /// edge's policies for its class decide what it may do. It may not steer.
        case anonymous
    }

    public var tenantID: String
    public var principalID: String
    /// The key's id when the request carried an API key.
    public var keyID: String?
    public var credential: Credential
    public var roles: Set<String>
    /// Tenant and key scopes combined.
    public var models: ModelScope
    /// Limits of each scope, already merged with the configured defaults.
    public var keyLimits: ScopeLimits
    public var principalLimits: ScopeLimits
    public var tenantLimits: ScopeLimits

    public init(
        tenantID: String, principalID: String, keyID: String? = nil, credential: Credential, roles: Set<String> = [],
        models: ModelScope = .all, keyLimits: ScopeLimits = .unlimited, principalLimits: ScopeLimits = .unlimited,
        tenantLimits: ScopeLimits = .unlimited
    ) {
        self.tenantID = tenantID
        self.principalID = principalID
        self.keyID = keyID
        self.credential = credential
        self.roles = roles
        self.models = models
        self.keyLimits = keyLimits
        self.principalLimits = principalLimits
        self.tenantLimits = tenantLimits
    }

    /// The identity of every request when authentication is off.
    public static let anonymous = CallerIdentity(tenantID: "default", principalID: "anonymous", credential: .none)

    public var mayUseAdmin: Bool { roles.contains(Role.admin) }
    public var maySteer: Bool { roles.contains(Role.steering) || credential == .none }
    /// A key or a JWT proved who is calling.
    public var isAuthenticated: Bool { credential == .apiKey || credential == .jwt }
}

extension ScopeLimits {
    /// Each unset limit taken from `defaults`.
    public func merged(over defaults: ScopeLimits) -> ScopeLimits {
        ScopeLimits(
            requestsPerMinute: requestsPerMinute ?? defaults.requestsPerMinute,
            tokensPerMinute: tokensPerMinute ?? defaults.tokensPerMinute,
            concurrentRequests: concurrentRequests ?? defaults.concurrentRequests,
            maxTokens: maxTokens ?? defaults.maxTokens,
            dailyBudgetUSD: dailyBudgetUSD ?? defaults.dailyBudgetUSD,
            monthlyBudgetUSD: monthlyBudgetUSD ?? defaults.monthlyBudgetUSD)
    }
}
