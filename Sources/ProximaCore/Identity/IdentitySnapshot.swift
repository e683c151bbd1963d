/// Everything the gateway knows about who may call, as one immutable value: tenants, their
/// principals and their API keys, each by id. The store produces one from its tables; the
/// configuration file may declare tenants and principals (never keys: they are secrets); the
/// gateway's identify stage reads the latest snapshot for every request, never the store.
public struct IdentitySnapshot: Sendable, Equatable {
    public private(set) var tenants: [String: Tenant]
    public private(set) var principals: [PrincipalID: Principal]
    public private(set) var keys: [String: APIKey]

    /// A snapshot of these records; of two with the same id, the later one is kept.
    public init(tenants: [Tenant] = [], principals: [Principal] = [], keys: [APIKey] = []) {
        self.tenants = Dictionary(tenants.map { ($0.id, $0) }, uniquingKeysWith: { _, later in later })
        self.principals = Dictionary(
            principals.map { (PrincipalID(tenantID: $0.tenantID, principalID: $0.id), $0) }, uniquingKeysWith: { _, later in later })
        self.keys = Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { _, later in later })
    }

    public static let empty = IdentitySnapshot()

    public func principal(_ id: String, of tenantID: String) -> Principal? {
        principals[PrincipalID(tenantID: tenantID, principalID: id)]
    }

    /// This snapshot with the records of `base` added where this one has none with the same id:
    /// how the tenants and principals of the configuration file join the store's (the store's
    /// records win, so that what an operator changed through the admin API is not undone by a
    /// reload of the file).
    public func layered(over base: IdentitySnapshot) -> IdentitySnapshot {
        var result = self
        result.tenants.merge(base.tenants) { mine, _ in mine }
        result.principals.merge(base.principals) { mine, _ in mine }
        result.keys.merge(base.keys) { mine, _ in mine }
        return result
    }
}

/// A principal's identity: principal ids are unique within their tenant.
public struct PrincipalID: Sendable, Hashable {
    public var tenantID: String
    public var principalID: String

    public init(tenantID: String, principalID: String) {
        self.tenantID = tenantID
        self.principalID = principalID
    }
}
