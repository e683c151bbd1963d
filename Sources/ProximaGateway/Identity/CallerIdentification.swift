import HTTPTypes
import ProximaCore
import ProximaStore

/// The identify stage: who is calling. With authentication off every request is the anonymous
/// caller; otherwise the request's bearer credential must be a valid API key (looked up by its
/// public id in the ``IdentityDirectory``, its secret checked against the stored hash, not revoked
/// or expired, its tenant enabled) or a valid JWT (``JWTVerifier``, its tenant known and enabled),
/// as the auth mode allows. Every failure is the same 401 (``GatewayError/unauthorized()``).
///
/// It also decides what the caller may say about routing (``CallerTrust``): steering headers are
/// kept for principals with the `steering` role and for requests from trusted proxies, and ignored
/// (and counted) for the rest.
struct CallerIdentification: Sendable {
    let directory: IdentityDirectory
    let verifier: JWTVerifier?
    let metrics: GatewayMetrics

    struct Caller: Sendable {
        var identity: CallerIdentity
        var hints: RouteHints
    }

    /// Identifies the caller of a request whose peer is `peer`; `now` is Unix seconds.
    func identify(_ headers: HTTPFields, peer: IPAddress?, trust: CallerTrust, at now: Double) throws(GatewayError) -> Caller {
        let identity = try identity(headers, mode: trust.mode, publicTenant: trust.publicTenant, at: now)
        return Caller(identity: identity, hints: trust.hints(headers, peer: peer, identity: identity, metrics: metrics))
    }

    /// The caller's identity alone. With a `publicTenant` (`edge.public_tenant`), a request without
    /// any `Authorization` field is that tenant's anonymous principal rather than a 401.
    func identity(_ headers: HTTPFields, mode: AuthMode, publicTenant: String? = nil, at now: Double) throws(GatewayError) -> CallerIdentity {
        let index = directory.index
        guard mode.isRequired else { return index.anonymous }
        if let publicTenant, headers[.authorization] == nil {
            guard let identity = index.identity(tenantID: publicTenant, principalID: "anonymous", roles: [], credential: .anonymous) else {
                metrics.recordRefusal(stage: "identify", reason: "credentials")
                throw .unauthorized()
            }
            return identity
        }
        guard let token = BearerCredential.token(in: headers), let identity = identity(token: token, mode: mode, index: index, at: now)
        else {
            metrics.recordRefusal(stage: "identify", reason: "credentials")
            throw .unauthorized()
        }
        return identity
    }

    /// The identity a bearer token stands for, or nil.
    func identity(token: Substring, mode: AuthMode, index: IdentityDirectory.Index, at now: Double) -> CallerIdentity? {
        switch BearerCredential.kind(of: token) {
        case .apiKey where mode.keys:
            guard let parsed = APIKeyToken(parsing: token), let entry = index.keys[String(parsed.id)], let identity = entry.identity,
                APIKeySecret.matches(parsed.secret, entry.key), entry.key.isUsable(at: now)
            else { return nil }
            return identity
        case .jwt where mode.jwt:
            guard let claims = verifier?.verify(token, at: now) else { return nil }
            return index.identity(tenantID: claims.tenantID, principalID: claims.principalID, roles: claims.roles, credential: .jwt)
        default:
            return nil
        }
    }
}

/// What a configuration says about trusting callers, prepared once per configuration: the auth
/// mode, the trusted proxy networks and the network-to-location table.
struct CallerTrust: Sendable {
    let mode: AuthMode
    /// `edge.public_tenant` when the edge is on.
    let publicTenant: String?
    let trustedProxies: [IPNetwork]
    let networks: [(network: IPNetwork, location: Coordinates)]

    init(configuration: ProximaConfiguration, fleet: Fleet) {
        mode = configuration.auth.mode
        publicTenant = configuration.edge.enabled ? configuration.edge.publicTenant : nil
        trustedProxies = configuration.auth.trustedProxyNetworks
        networks = configuration.routing.networks.compactMap { entry in
            guard let network = try? IPNetwork(parsing: entry.network) else { return nil }
            let location =
                configuration.routing.regions[entry.location] ?? fleet.sites[entry.location]?.location
                ?? Coordinates(parsing: entry.location)
            return location.map { (network, $0) }
        }
    }

    /// Whether the peer's address matters (trusted proxies or a network table are configured).
    var needsPeerAddress: Bool { !trustedProxies.isEmpty || !networks.isEmpty }

    /// The client's address: the peer's, or behind trusted proxies the rightmost untrusted hop of
    /// `X-Forwarded-For`.
    func client(_ headers: HTTPFields, peer: IPAddress?) -> IPAddress? {
        guard let peer, !trustedProxies.isEmpty, trustedProxies.containsAddress(peer) else { return peer }
        let forwarded = headers[values: .xForwardedFor].map { $0[...] }
        return ForwardedClient.address(peer: peer, forwardedFor: forwarded, trusted: trustedProxies)
    }

    /// The routing hints a request may give: its steering headers when the caller may steer (a
    /// principal with the `steering` role, anyone when authentication is off, or a request from a
    /// trusted proxy), else none, counted; and where its client is by the network table (the
    /// client behind trusted proxies is the rightmost untrusted hop of `X-Forwarded-For`).
    func hints(_ headers: HTTPFields, peer: IPAddress?, identity: CallerIdentity, metrics: GatewayMetrics) -> RouteHints {
        let policy = headers[.proximaPolicy]
        let location = headers[.proximaClientLocation]
        var client = peer
        var fromTrustedProxy = false
        if let peer, !trustedProxies.isEmpty, trustedProxies.containsAddress(peer) {
            fromTrustedProxy = true
            let forwarded = headers[values: .xForwardedFor].map { $0[...] }
            client = ForwardedClient.address(peer: peer, forwardedFor: forwarded, trusted: trustedProxies)
        }
        var hints = RouteHints()
        if identity.maySteer || fromTrustedProxy {
            hints.policy = policy
            hints.location = location
        } else {
            if policy != nil { metrics.recordIgnoredSteering(header: "x-proxima-policy") }
            if location != nil { metrics.recordIgnoredSteering(header: "x-proxima-client-location") }
        }
        if hints.location == nil, let client {
            for entry in networks where entry.network.contains(client) {
                hints.networkLocation = entry.location
                break
            }
        }
        return hints
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("x-forwarded-for")!
}
