/// Who may call the gateway and how they prove it (the `auth` section). The tenants and principals
/// declared here join those of the store; API keys live only in the store, since they are secrets.
public struct AuthSettings: Codable, Sendable, Equatable {
    public var mode: AuthMode
    public var tenants: [TenantSettings]
    public var principals: [PrincipalSettings]
    /// Networks (CIDR) of proxies in front of the gateway: requests from them may steer the gateway
    /// (`x-proxima-policy`, `x-proxima-client-location`) and name the client in `X-Forwarded-For`.
    public var trustedProxies: [String]
    /// How bearer JWTs are checked; required when `mode` includes `jwt`.
    public var jwt: JWTSettings?

    public init(
        mode: AuthMode = .none, tenants: [TenantSettings] = [], principals: [PrincipalSettings] = [], trustedProxies: [String] = [],
        jwt: JWTSettings? = nil
    ) {
        self.mode = mode
        self.tenants = tenants
        self.principals = principals
        self.trustedProxies = trustedProxies
        self.jwt = jwt
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case mode, tenants, principals, trustedProxies = "trusted_proxies", jwt
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mode = try c.decodeIfPresent(AuthMode.self, forKey: .mode) ?? .none
        tenants = try c.decodeIfPresent([TenantSettings].self, forKey: .tenants) ?? []
        principals = try c.decodeIfPresent([PrincipalSettings].self, forKey: .principals) ?? []
        trustedProxies = try c.decodeIfPresent([String].self, forKey: .trustedProxies) ?? []
        jwt = try c.decodeIfPresent(JWTSettings.self, forKey: .jwt)
    }

    /// The tenants and principals declared here, as identity records.
    public var identities: IdentitySnapshot {
        IdentitySnapshot(
            tenants: tenants.map { Tenant(id: $0.id, name: $0.name, models: $0.models, limits: $0.limits, disabled: $0.disabled) },
            principals: principals.map { Principal(id: $0.id, tenantID: $0.tenant, name: $0.name, roles: Set($0.roles), limits: $0.limits) })
    }

    /// The trusted proxy networks, parsed (a validated configuration has no bad one).
    public var trustedProxyNetworks: [IPNetwork] { trustedProxies.compactMap { try? IPNetwork(parsing: $0) } }

    /// Every problem, each named by its key under `auth`.
    public func problems() -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        var tenantIDs = Set<String>()
        for (index, tenant) in tenants.enumerated() {
            let path = "auth.tenants[\(index)]"
            if !IdentityName.isValid(tenant.id) {
                problems.append(.init("\(path).id", IdentityName.rule(tenant.id)))
            } else if !tenantIDs.insert(tenant.id).inserted {
                problems.append(.init("\(path).id", "duplicate tenant '\(tenant.id)'"))
            }
            problems += tenant.limits.problems(at: "\(path).limits")
        }
        var principalIDs = Set<PrincipalID>()
        for (index, principal) in principals.enumerated() {
            let path = "auth.principals[\(index)]"
            if !IdentityName.isValid(principal.id) {
                problems.append(.init("\(path).id", IdentityName.rule(principal.id)))
            } else if !principalIDs.insert(PrincipalID(tenantID: principal.tenant, principalID: principal.id)).inserted {
                problems.append(.init("\(path).id", "duplicate principal '\(principal.id)' in tenant '\(principal.tenant)'"))
            }
            if !tenantIDs.contains(principal.tenant) {
                problems.append(
                    .init("\(path).tenant", "unknown tenant '\(principal.tenant)' (declare it under auth.tenants)"))
            }
            problems += principal.limits.problems(at: "\(path).limits")
        }
        for (index, text) in trustedProxies.enumerated() {
            do { _ = try IPNetwork(parsing: text) } catch {
                problems.append(.init("auth.trusted_proxies[\(index)]", "'\(text)' \(error)"))
            }
        }
        if mode.jwt && jwt == nil {
            problems.append(.init("auth.jwt", "is required when auth.mode includes jwt"))
        }
        if let jwt { problems += jwt.problems(at: "auth.jwt") }
        return problems
    }
}

/// How callers prove who they are: not at all (`none`: every request is the anonymous caller, as
/// for local use and the demo), with an API key (`keys`), with a JWT (`jwt`), or with either
/// (`[keys, jwt]`). In YAML a single word or a list of them.
public struct AuthMode: Codable, Sendable, Equatable, CustomStringConvertible {
    public var keys: Bool
    public var jwt: Bool

    public init(keys: Bool, jwt: Bool) {
        self.keys = keys
        self.jwt = jwt
    }

    public static let none = AuthMode(keys: false, jwt: false)
    public static let keys = AuthMode(keys: true, jwt: false)
    public static let jwt = AuthMode(keys: false, jwt: true)
    public static let keysAndJWT = AuthMode(keys: true, jwt: true)

    /// Whether callers must present a credential.
    public var isRequired: Bool { keys || jwt }

    public var description: String {
        switch (keys, jwt) {
        case (false, false): "none"
        case (true, false): "keys"
        case (false, true): "jwt"
        case (true, true): "[keys, jwt]"
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let words: [String]
        if let word = try? container.decode(String.self) {
            words = [word]
        } else if let list = try? container.decode([String].self) {
            words = list
        } else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "must be none, keys, jwt, or a list of keys and jwt"))
        }
        var mode = AuthMode.none
        for word in words {
            switch word {
            case "none" where words.count == 1: break
            case "keys": mode.keys = true
            case "jwt": mode.jwt = true
            default:
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: decoder.codingPath,
                        debugDescription: "must be none, keys, jwt, or a list of keys and jwt; got '\(word)'"))
            }
        }
        self = mode
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch (keys, jwt) {
        case (false, false): try container.encode("none")
        case (true, false): try container.encode("keys")
        case (false, true): try container.encode("jwt")
        case (true, true): try container.encode(["keys", "jwt"])
        }
    }
}

/// A tenant declared in the configuration file.
public struct TenantSettings: Codable, Sendable, Equatable {
    public var id: String
    public var name: String?
    public var models: ModelScope
    public var limits: ScopeLimits
    public var disabled: Bool

    public init(id: String, name: String? = nil, models: ModelScope = .all, limits: ScopeLimits = .unlimited, disabled: Bool = false) {
        self.id = id
        self.name = name
        self.models = models
        self.limits = limits
        self.disabled = disabled
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case id, name, models, limits, disabled }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        models = try c.decodeIfPresent([String].self, forKey: .models).map(ModelScope.only) ?? .all
        limits = try c.decodeIfPresent(ScopeLimits.self, forKey: .limits) ?? .unlimited
        disabled = try c.decodeIfPresent(Bool.self, forKey: .disabled) ?? false
    }
}

/// A principal declared in the configuration file (a JWT subject or the owner of stored keys).
public struct PrincipalSettings: Codable, Sendable, Equatable {
    public var id: String
    public var tenant: String
    public var name: String?
    public var roles: [String]
    public var limits: ScopeLimits

    public init(id: String, tenant: String, name: String? = nil, roles: [String] = [], limits: ScopeLimits = .unlimited) {
        self.id = id
        self.tenant = tenant
        self.name = name
        self.roles = roles
        self.limits = limits
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case id, tenant, name, roles, limits }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        tenant = try c.decode(String.self, forKey: .tenant)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        roles = try c.decodeIfPresent([String].self, forKey: .roles) ?? []
        limits = try c.decodeIfPresent(ScopeLimits.self, forKey: .limits) ?? .unlimited
    }
}

/// How bearer JWTs are checked: the keys that sign them (a JWKS file or URL, kept and refreshed),
/// the issuer and audience they must name, the clock skew allowed on `exp` and `nbf`, and which
/// claims name the tenant, the principal and the roles.
public struct JWTSettings: Codable, Sendable, Equatable {
    /// A JWKS document on disk, read again every `refresh_seconds`.
    public var jwksFile: String?
    /// A JWKS document over HTTP(S), fetched every `refresh_seconds` with the gateway's client.
    public var jwksURL: String?
    public var refreshSeconds: Double
    /// Keys are used at most this long after they were last read successfully; past it (the JWKS
    /// cannot be read) every JWT is refused until a read succeeds.
    public var maxAgeSeconds: Double
    /// The `iss` a token must carry.
    public var issuer: String
    /// A token's `aud` must name one of these.
    public var audience: [String]
    /// Tolerance on `exp` and `nbf`, for clocks that disagree a little.
    public var clockSkewSeconds: Double
    /// Signature algorithms accepted (`RS256`, `ES256`, `EdDSA`).
    public var algorithms: [String]
    /// Claim names: `tenant`, `principal` (default `sub`) and `roles` (a list, or a string of
    /// space-separated names).
    public var claims: JWTClaimNames
    /// The tenant of tokens without the tenant claim; without it such tokens are refused.
    public var defaultTenant: String?

    public static let supportedAlgorithms = ["RS256", "ES256", "EdDSA"]
    public static let refreshRange = 0.05...86_400.0
    public static let maxAgeRange = 0.1...(30 * 86_400.0)
    public static let clockSkewRange = 0.0...600.0

    public init(
        jwksFile: String? = nil, jwksURL: String? = nil, refreshSeconds: Double = 300, maxAgeSeconds: Double = 3_600, issuer: String,
        audience: [String], clockSkewSeconds: Double = 30, algorithms: [String] = JWTSettings.supportedAlgorithms,
        claims: JWTClaimNames = .init(), defaultTenant: String? = nil
    ) {
        self.jwksFile = jwksFile
        self.jwksURL = jwksURL
        self.refreshSeconds = refreshSeconds
        self.maxAgeSeconds = maxAgeSeconds
        self.issuer = issuer
        self.audience = audience
        self.clockSkewSeconds = clockSkewSeconds
        self.algorithms = algorithms
        self.claims = claims
        self.defaultTenant = defaultTenant
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case jwksFile = "jwks_file", jwksURL = "jwks_url", refreshSeconds = "refresh_seconds", maxAgeSeconds = "max_age_seconds"
        case issuer, audience, clockSkewSeconds = "clock_skew_seconds", algorithms, claims, defaultTenant = "default_tenant"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        jwksFile = try c.decodeIfPresent(String.self, forKey: .jwksFile)
        jwksURL = try c.decodeIfPresent(String.self, forKey: .jwksURL)
        refreshSeconds = try c.decodeIfPresent(Double.self, forKey: .refreshSeconds) ?? 300
        maxAgeSeconds = try c.decodeIfPresent(Double.self, forKey: .maxAgeSeconds) ?? 3_600
        issuer = try c.decodeIfPresent(String.self, forKey: .issuer) ?? ""
        if let one = try? c.decodeIfPresent(String.self, forKey: .audience) {
            audience = [one]
        } else {
            audience = try c.decodeIfPresent([String].self, forKey: .audience) ?? []
        }
        clockSkewSeconds = try c.decodeIfPresent(Double.self, forKey: .clockSkewSeconds) ?? 30
        algorithms = try c.decodeIfPresent([String].self, forKey: .algorithms) ?? Self.supportedAlgorithms
        claims = try c.decodeIfPresent(JWTClaimNames.self, forKey: .claims) ?? .init()
        defaultTenant = try c.decodeIfPresent(String.self, forKey: .defaultTenant)
    }

    public func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        switch (jwksFile, jwksURL) {
        case (nil, nil): problems.append(.init(path, "needs jwks_file or jwks_url"))
        case (.some, .some): problems.append(.init(path, "needs one of jwks_file and jwks_url, not both"))
        case (.some(let file), nil) where file.isEmpty: problems.append(.init("\(path).jwks_file", "must not be empty"))
        case (nil, .some(let url)):
            if !(url.hasPrefix("http://") || url.hasPrefix("https://")) || url.utf8.count > 2_048 {
                problems.append(.init("\(path).jwks_url", "must be an http:// or https:// URL, got '\(url)'"))
            }
        default: break
        }
        func check(_ value: Double, _ range: ClosedRange<Double>, _ key: CodingKeys) {
            if let problem = ConfigurationBounds.problem(value, in: range, unit: "seconds") {
                problems.append(.init("\(path).\(key.stringValue)", problem))
            }
        }
        check(refreshSeconds, Self.refreshRange, .refreshSeconds)
        check(maxAgeSeconds, Self.maxAgeRange, .maxAgeSeconds)
        check(clockSkewSeconds, Self.clockSkewRange, .clockSkewSeconds)
        if problems.isEmpty && maxAgeSeconds < refreshSeconds {
            problems.append(.init("\(path).max_age_seconds", "must be at least refresh_seconds (\(refreshSeconds)), got \(maxAgeSeconds)"))
        }
        if issuer.isEmpty { problems.append(.init("\(path).issuer", "is required: the iss every accepted token must carry")) }
        if audience.isEmpty || audience.contains(where: \.isEmpty) {
            problems.append(.init("\(path).audience", "is required: the aud (one name or a list) accepted tokens must carry"))
        }
        if algorithms.isEmpty {
            problems.append(.init("\(path).algorithms", "must name at least one of \(Self.supportedAlgorithms.joined(separator: ", "))"))
        }
        for (index, name) in algorithms.enumerated() where !Self.supportedAlgorithms.contains(name) {
            problems.append(
                .init("\(path).algorithms[\(index)]", "unsupported algorithm '\(name)' (supported: \(Self.supportedAlgorithms.joined(separator: ", ")))"))
        }
        for (key, name) in [("tenant", claims.tenant), ("principal", claims.principal), ("roles", claims.roles)] where name.isEmpty {
            problems.append(.init("\(path).claims.\(key)", "must not be empty"))
        }
        if let defaultTenant, !IdentityName.isValid(defaultTenant) {
            problems.append(.init("\(path).default_tenant", IdentityName.rule(defaultTenant)))
        }
        return problems
    }
}

/// Which claims of a JWT carry the tenant, the principal and the roles.
public struct JWTClaimNames: Codable, Sendable, Equatable {
    public var tenant: String
    public var principal: String
    public var roles: String

    public init(tenant: String = "tenant", principal: String = "sub", roles: String = "roles") {
        self.tenant = tenant
        self.principal = principal
        self.roles = roles
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case tenant, principal, roles }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = JWTClaimNames()
        tenant = try c.decodeIfPresent(String.self, forKey: .tenant) ?? d.tenant
        principal = try c.decodeIfPresent(String.self, forKey: .principal) ?? d.principal
        roles = try c.decodeIfPresent(String.self, forKey: .roles) ?? d.roles
    }
}

/// A network whose callers are placed at a location when they do not say where they are (or may
/// not): `location` is `latitude,longitude`, a site name or a region of `routing.regions`.
public struct NetworkLocationSettings: Codable, Sendable, Equatable {
    public var network: String
    public var location: String

    public init(network: String, location: String) {
        self.network = network
        self.location = location
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case network, location }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        network = try c.decode(String.self, forKey: .network)
        location = try c.decode(String.self, forKey: .location)
    }
}

extension IdentityName {
    /// The problem with a name that breaks the rule.
    public static func rule(_ name: String) -> String {
        "must be 1 to \(maximumLength) characters of a-z, 0-9, '-', '_' and '.', starting with a letter or digit; got '\(name)'"
    }
}
