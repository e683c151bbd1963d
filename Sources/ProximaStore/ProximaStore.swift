import ProximaCore

/// Managing tenants, principals and API keys: what the command line does on a local store and what
/// the admin API will do over HTTP. A store is one implementation; a client of the admin API can
/// be another, so that `proxima tenants ...` works either way.
public protocol IdentityAdministration: Sendable {
    /// Adds a tenant; `alreadyExists` when its id is taken.
    func createTenant(_ tenant: Tenant) async throws(StoreError)
    func tenant(id: String) async throws(StoreError) -> Tenant
    /// Every tenant, by id.
    func tenants() async throws(StoreError) -> [Tenant]
    /// Changes the fields `update` sets and returns the tenant as stored.
    func updateTenant(id: String, _ update: TenantUpdate) async throws(StoreError) -> Tenant

    /// Adds a principal to an existing tenant; principal ids are unique within their tenant.
    func createPrincipal(_ principal: Principal) async throws(StoreError)
    func principal(tenantID: String, id: String) async throws(StoreError) -> Principal
    /// The tenant's principals, by id; `notFound` when the tenant does not exist.
    func principals(tenantID: String) async throws(StoreError) -> [Principal]
    func updatePrincipal(tenantID: String, id: String, _ update: PrincipalUpdate) async throws(StoreError) -> Principal

    /// Mints a key for an existing principal (``APIKeySecret/mint``) and stores it without its
    /// secret. The token in the answer exists nowhere else: show it once.
    func createKey(_ request: NewAPIKey, at now: Double) async throws(StoreError) -> IssuedAPIKey
    func key(id: String) async throws(StoreError) -> APIKey
    /// Keys of a tenant, or of one of its principals, revoked ones included, by id.
    func keys(tenantID: String, principalID: String?) async throws(StoreError) -> [APIKey]
    /// Marks a key revoked at `now` and returns it. Revoking a revoked key changes nothing and
    /// returns it with its first revocation time.
    func revokeKey(id: String, at now: Double) async throws(StoreError) -> APIKey
}

/// Everything Proxima keeps: identities (tenants, principals, keys), admin overrides, and the
/// counters gateway replicas share (rate limits and spend). Two implementations run the same
/// tests: ``SQLiteStore`` (one file, one gateway) and ``PostgresStore`` (several replicas).
///
/// Every write that changes identities also bumps ``identityVersion()`` in the same transaction,
/// so a gateway keeps all identities in memory and reloads them only when the version moved:
/// one tiny query per poll, none per request.
public protocol ProximaStore: IdentityAdministration, SharedCounters {
    // MARK: The change cursor

    /// A number that grows with every identity write (tenant, principal or key). Equal numbers
    /// mean equal identities.
    func identityVersion() async throws(StoreError) -> Int64
    /// All tenants, principals and keys as of one moment, with the version they belong to.
    /// Revoked keys are left out; expired keys are kept (``APIKey/isUsable(at:)`` decides at the
    /// time of a request).
    func identitySnapshot() async throws(StoreError) -> StoredIdentities

    // MARK: Admin overrides

    /// Stores (or replaces) a document: an admin change that must outlive a restart or a reload.
    func putDocument(_ document: AdminDocument) async throws(StoreError)
    /// The documents of one kind, or all of them, by kind then name.
    func documents(kind: String?) async throws(StoreError) -> [AdminDocument]
    /// Removes a document; whether it existed.
    @discardableResult
    func deleteDocument(kind: String, name: String) async throws(StoreError) -> Bool

    // MARK: Housekeeping

    /// The schema migrations applied to this database, in order.
    func appliedMigrations() async throws(StoreError) -> [Int]
    /// Releases connections; the store must not be used afterwards. Call it exactly once.
    func close() async
}

/// The counters gateway replicas share: rate-limit leases and spend. Every store has them; the
/// gateway's shared admission ledger needs only these calls.
public protocol SharedCounters: Sendable {
    /// Takes a lease from the shared limiter `counter` (a limit of `perMinute` units per minute) in
    /// one transaction: ``RateLimiter/grant(requested:minimum:at:)`` on its stored state. A
    /// counter starts full; a changed `perMinute` applies from now on, keeping the level.
    func grantLease(counter: String, perMinute: Int, requested: Int, minimum: Int, at now: Double)
        async throws(StoreError) -> RateGrant
    /// Gives back unused units of an earlier grant in one transaction
    /// (``RateLimiter/refund(units:of:at:)``); returns the units refunded.
    @discardableResult
    func refundLease(counter: String, perMinute: Int, units: Double, of charge: RateCharge, at now: Double)
        async throws(StoreError) -> Double
    /// Adds `amount` to the spend of `scope` in the UTC day and month holding `now`, in one
    /// statement, and returns both totals afterwards. Sums saturate at the largest ``Money``.
    @discardableResult
    func addSpend(scope: String, amount: Money, at now: Double) async throws(StoreError) -> SpendTotals
    /// The spend of `scope` in the UTC day and month holding `now` (zero for a window without any).
    func spend(scope: String, at now: Double) async throws(StoreError) -> SpendTotals
}

/// Fields of a tenant to change; `nil` leaves a field as it is.
public struct TenantUpdate: Sendable, Equatable {
    public var name: String?
    public var models: ModelScope?
    public var limits: ScopeLimits?
    public var disabled: Bool?

    public init(name: String? = nil, models: ModelScope? = nil, limits: ScopeLimits? = nil, disabled: Bool? = nil) {
        self.name = name
        self.models = models
        self.limits = limits
        self.disabled = disabled
    }

    func applied(to tenant: Tenant) -> Tenant {
        var changed = tenant
        if let name { changed.name = name }
        if let models { changed.models = models }
        if let limits { changed.limits = limits }
        if let disabled { changed.disabled = disabled }
        return changed
    }
}

/// Fields of a principal to change; `nil` leaves a field as it is.
public struct PrincipalUpdate: Sendable, Equatable {
    public var name: String?
    public var roles: Set<String>?
    public var limits: ScopeLimits?

    public init(name: String? = nil, roles: Set<String>? = nil, limits: ScopeLimits? = nil) {
        self.name = name
        self.roles = roles
        self.limits = limits
    }

    func applied(to principal: Principal) -> Principal {
        var changed = principal
        if let name { changed.name = name }
        if let roles { changed.roles = roles }
        if let limits { changed.limits = limits }
        return changed
    }
}

/// What a new key is for; its id and secret are minted by the store.
public struct NewAPIKey: Sendable, Equatable {
    public var tenantID: String
    public var principalID: String
    public var name: String
    public var models: ModelScope
    public var limits: ScopeLimits
    /// Unix seconds; `nil`: never expires.
    public var expiresAt: Double?

    public init(
        tenantID: String, principalID: String, name: String = "", models: ModelScope = .all, limits: ScopeLimits = .unlimited,
        expiresAt: Double? = nil
    ) {
        self.tenantID = tenantID
        self.principalID = principalID
        self.name = name
        self.models = models
        self.limits = limits
        self.expiresAt = expiresAt
    }
}

/// A key just created, with its token: the only time the token exists outside its owner's hands.
public struct IssuedAPIKey: Sendable, Equatable, CustomStringConvertible {
    public var key: APIKey
    public var token: String

    public init(key: APIKey, token: String) {
        self.key = key
        self.token = token
    }

    /// Leaves the token out, so that printing the value by accident does not leak it.
    public var description: String { "IssuedAPIKey(\(key))" }
}

/// Every identity at one version of the store.
public struct StoredIdentities: Sendable, Equatable {
    public var version: Int64
    public var tenants: [Tenant]
    public var principals: [Principal]
    /// Keys not revoked, expired ones included.
    public var keys: [APIKey]

    public init(version: Int64, tenants: [Tenant], principals: [Principal], keys: [APIKey]) {
        self.version = version
        self.tenants = tenants
        self.principals = principals
        self.keys = keys
    }

    /// The records indexed for look-up, as the gateway's identify stage reads them.
    public var snapshot: IdentitySnapshot { IdentitySnapshot(tenants: tenants, principals: principals, keys: keys) }
}

/// An admin change kept across restarts and reloads: an endpoint's drain or weight, an endpoint
/// added through the admin API, a routing policy change. The store keeps the JSON as given; what a
/// kind means is the gateway's business.
public struct AdminDocument: Sendable, Equatable, Codable {
    /// What the document is, a slug such as `endpoint-drain`, `endpoint` or `routing-policy`.
    public var kind: String
    /// What it applies to, e.g. an endpoint's name.
    public var name: String
    /// A JSON value, at most ``AdminDocument/maximumJSONBytes``.
    public var json: String
    /// Unix seconds.
    public var updatedAt: Double

    public init(kind: String, name: String, json: String, updatedAt: Double) {
        self.kind = kind
        self.name = name
        self.json = json
        self.updatedAt = updatedAt
    }

    public static let maximumNameBytes = 256
    public static let maximumJSONBytes = 1 << 20
}

/// A scope's spend in the UTC day and month holding a time, as the store counts it for every
/// replica.
public struct SpendTotals: Sendable, Equatable {
    /// Days since 1970-01-01 and months since January 1970 (``UTCCalendar``).
    public var day: Int
    public var month: Int
    public var spentToday: Money
    public var spentThisMonth: Money

    public init(day: Int, month: Int, spentToday: Money, spentThisMonth: Money) {
        self.day = day
        self.month = month
        self.spentToday = spentToday
        self.spentThisMonth = spentThisMonth
    }
}
