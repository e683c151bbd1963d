import ProximaCore

/// Identities as the command line and the admin API show them: snake_case JSON, and a key without
/// its hash. Whatever prints a key goes through ``APIKeyView``.
public struct TenantView: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// `nil`: every model.
    public var models: [String]?
    public var limits: ScopeLimits
    public var disabled: Bool
    public var createdAt: Double

    public init(_ tenant: Tenant) {
        id = tenant.id
        name = tenant.name
        models = tenant.models.patterns
        limits = tenant.limits
        disabled = tenant.disabled
        createdAt = tenant.createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, models, limits, disabled, createdAt = "created_at"
    }
}

public struct PrincipalView: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var name: String
    public var roles: [String]
    public var limits: ScopeLimits
    public var createdAt: Double

    public init(_ principal: Principal) {
        id = principal.id
        tenantID = principal.tenantID
        name = principal.name
        roles = principal.roles.sorted()
        limits = principal.limits
        createdAt = principal.createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, tenantID = "tenant_id", name, roles, limits, createdAt = "created_at"
    }
}

/// A key without its secret's hash.
public struct APIKeyView: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable {
        case active, expired, revoked
    }

    public var id: String
    public var tenantID: String
    public var principalID: String
    public var name: String
    public var models: [String]?
    public var limits: ScopeLimits
    public var createdAt: Double
    public var expiresAt: Double?
    public var revokedAt: Double?
    /// As of the time the view was made.
    public var status: Status

    public init(_ key: APIKey, at now: Double) {
        id = key.id
        tenantID = key.tenantID
        principalID = key.principalID
        name = key.name
        models = key.models.patterns
        limits = key.limits
        createdAt = key.createdAt
        expiresAt = key.expiresAt
        revokedAt = key.revokedAt
        status = key.revokedAt != nil ? .revoked : (key.isUsable(at: now) ? .active : .expired)
    }

    enum CodingKeys: String, CodingKey {
        case id, tenantID = "tenant_id", principalID = "principal_id", name, models, limits, createdAt = "created_at"
        case expiresAt = "expires_at", revokedAt = "revoked_at", status
    }
}

extension ModelScope {
    /// The list of patterns, `nil` for every model.
    public var patterns: [String]? {
        switch self {
        case .all: return nil
        case .only(let patterns): return patterns
        }
    }
}
