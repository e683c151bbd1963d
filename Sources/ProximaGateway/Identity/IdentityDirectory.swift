import ProximaCore
import Synchronization

/// The identities the identify stage looks callers up in: the store's snapshot (fed through
/// ``replace(with:)``) layered over the tenants and principals of the configuration file, with
/// every key's caller identity built in advance (scopes intersected, limits merged with the
/// configured defaults). A look-up is a dictionary hit under a lock held for one reference copy;
/// nothing is queried per request. A change builds a new index and swaps it in whole, so a request
/// sees one consistent directory.
final class IdentityDirectory: Sendable {
    /// What look-ups read: immutable, replaced whole.
    final class Index: Sendable {
        /// Bumped on every change, so that caches of identities built from an older index can tell.
        let generation: Int
        let identities: IdentitySnapshot
        let defaults: AdmissionSettings
        let keys: [String: KeyEntry]
        /// The caller of every request when authentication is off: the configured defaults apply.
        let anonymous: CallerIdentity

        struct KeyEntry: Sendable {
            let key: APIKey
            /// The caller a request with this key is; nil when its tenant is unknown or disabled.
            let identity: CallerIdentity?
        }

        init(generation: Int, identities: IdentitySnapshot, defaults: AdmissionSettings) {
            self.generation = generation
            self.identities = identities
            self.defaults = defaults
            var keys: [String: KeyEntry] = [:]
            keys.reserveCapacity(identities.keys.count)
            for (id, key) in identities.keys {
                var identity: CallerIdentity?
                if let tenant = identities.tenants[key.tenantID], !tenant.disabled {
                    let principal = identities.principal(key.principalID, of: key.tenantID)
                    identity = CallerIdentity(
                        tenantID: key.tenantID, principalID: key.principalID, keyID: key.id, credential: .apiKey,
                        roles: principal?.roles ?? [], models: tenant.models.intersecting(key.models),
                        keyLimits: key.limits.merged(over: defaults.key),
                        principalLimits: (principal?.limits ?? .unlimited).merged(over: defaults.principal),
                        tenantLimits: tenant.limits.merged(over: defaults.tenant))
                }
                keys[id] = KeyEntry(key: key, identity: identity)
            }
            self.keys = keys
            var anonymous = CallerIdentity.anonymous
            anonymous.principalLimits = defaults.principal
            anonymous.tenantLimits = defaults.tenant
            self.anonymous = anonymous
        }

        /// The caller a verified token names: its tenant must be known and enabled; its principal
        /// may be unknown (then it has the default limits and only the token's roles).
        func identity(tenantID: String, principalID: String, roles: Set<String>, credential: CallerIdentity.Credential) -> CallerIdentity? {
            guard let tenant = identities.tenants[tenantID], !tenant.disabled else { return nil }
            let principal = identities.principal(principalID, of: tenantID)
            return CallerIdentity(
                tenantID: tenantID, principalID: principalID, credential: credential,
                roles: principal.map { $0.roles.union(roles) } ?? roles, models: tenant.models,
                principalLimits: (principal?.limits ?? .unlimited).merged(over: defaults.principal),
                tenantLimits: tenant.limits.merged(over: defaults.tenant))
        }

    }

    private struct Sources {
        var stored = IdentitySnapshot.empty
        var configured = IdentitySnapshot.empty
        var defaults = AdmissionSettings()
        var generation = 0
    }

    private let sources = Mutex(Sources())
    private let current: Mutex<Index>

    init(configured: IdentitySnapshot = .empty, defaults: AdmissionSettings = .init()) {
        current = Mutex(Index(generation: 0, identities: configured, defaults: defaults))
        sources.withLock {
            $0.configured = configured
            $0.defaults = defaults
        }
    }

    /// The index requests read now.
    var index: Index { current.withLock { $0 } }

    /// Replaces the store's part of the directory (the store's `identitySnapshot()`): tenants,
    /// principals and keys. Keys revoked or removed in `snapshot` stop working with the next request.
    func replace(with snapshot: IdentitySnapshot) {
        rebuild { $0.stored = snapshot }
    }

    /// Takes the configuration's tenants, principals and default limits (at start and on a reload).
    func configure(_ configuration: ProximaConfiguration) {
        rebuild {
            $0.configured = configuration.auth.identities
            $0.defaults = configuration.limits
        }
    }

    private func rebuild(_ change: (inout Sources) -> Void) {
        // Built under the sources' lock so that two changes cannot swap in their indexes out of
        // order; requests only take the short lock of `current`.
        sources.withLock { sources in
            change(&sources)
            sources.generation += 1
            let index = Index(
                generation: sources.generation, identities: sources.stored.layered(over: sources.configured), defaults: sources.defaults)
            current.withLock { $0 = index }
        }
    }
}
