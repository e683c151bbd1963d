/// An organisation that owns principals and keys and is billed for what they use. Tenant, principal
/// and key identifiers are short slugs (see ``IdentityName``) so that they are safe in logs, metric
/// labels, file names and URLs.
public struct Tenant: Codable, Sendable, Equatable, Identifiable {
    public var id: String
    /// Human-readable name, free text.
    public var name: String
    /// Models the tenant may use (see ``ModelScope``); `nil` means every model the fleet serves.
    public var models: ModelScope
    /// The tenant's own limits; unset ones fall back to `limits.tenant` of the configuration.
    public var limits: ScopeLimits
    /// A disabled tenant's requests are refused (401), whatever key they carry.
    public var disabled: Bool
    /// Unix seconds.
    public var createdAt: Double

    public init(
        id: String, name: String? = nil, models: ModelScope = .all, limits: ScopeLimits = .unlimited, disabled: Bool = false,
        createdAt: Double = 0
    ) {
        self.id = id
        self.name = name ?? id
        self.models = models
        self.limits = limits
        self.disabled = disabled
        self.createdAt = createdAt
    }
}

/// A user, service or agent acting inside a tenant. Keys belong to a principal; a JWT names one in
/// its claims.
public struct Principal: Codable, Sendable, Equatable, Identifiable {
    public var id: String
    public var tenantID: String
    public var name: String
    /// Roles grant features beyond calling models (see ``Role``).
    public var roles: Set<String>
    /// The principal's own limits; unset ones fall back to `limits.principal` of the configuration.
    public var limits: ScopeLimits
    /// Unix seconds.
    public var createdAt: Double

    public init(
        id: String, tenantID: String, name: String? = nil, roles: Set<String> = [], limits: ScopeLimits = .unlimited,
        createdAt: Double = 0
    ) {
        self.id = id
        self.tenantID = tenantID
        self.name = name ?? id
        self.roles = roles
        self.limits = limits
        self.createdAt = createdAt
    }
}

/// Roles the gateway itself understands. Other role names may be carried (from a JWT, say) and are
/// ignored.
public enum Role {
    /// May use the admin API.
    public static let admin = "admin"
    /// May steer the gateway with `x-proxima-policy` and `x-proxima-client-location`.
    public static let steering = "steering"
}

/// The rule for identifiers of tenants, principals and keys: 1 to 64 characters of `a-z`, `0-9`,
/// `-`, `_` and `.`, starting with a letter or digit.
public enum IdentityName {
    public static let maximumLength = 64

    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return false }
        for (index, byte) in bytes.enumerated() {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): continue
            case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."): if index == 0 { return false }
            default: return false
            }
        }
        return true
    }
}
