import AsyncHTTPClient
import Foundation
import NIOCore
import ProximaCore
import ProximaStore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// The identify stage over HTTP: API keys open the models of their scope and nothing else; every
/// bad credential gets the same 401; steering headers count only from callers allowed to steer.
@Suite(.serialized) struct AuthenticationTests {
    static let now = Date().timeIntervalSince1970

    /// Two logical models on one upstream; tenant `acme` may use `chat` only.
    static func configuration(upstream: String, mode: AuthMode = .keys) -> ProximaConfiguration {
        var configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "lab", latitude: 1, longitude: 2), SiteSettings(name: "far", latitude: -40, longitude: 170)],
            endpoints: [
                EndpointSettings(
                    name: "ep0", url: upstream, site: "lab", engine: .openai,
                    models: [.init(name: "chat", upstream: "ok"), .init(name: "secret", upstream: "ok")])
            ])
        configuration.auth = AuthSettings(
            mode: mode,
            tenants: [TenantSettings(id: "acme", models: .only(["chat"])), TenantSettings(id: "gone", disabled: true)],
            principals: [
                PrincipalSettings(id: "dev", tenant: "acme"), PrincipalSettings(id: "router", tenant: "acme", roles: [Role.steering]),
                PrincipalSettings(id: "ops", tenant: "acme", roles: [Role.admin]),
            ])
        return configuration
    }

    struct Keys {
        var dev: String
        var steering: String
        var admin: String
        var revoked: String
        var expired: String
        var disabledTenant: String
        var snapshot: IdentitySnapshot
    }

    static func keys() -> Keys {
        let dev = APIKeySecret.mint(tenantID: "acme", principalID: "dev", createdAt: now)
        let steering = APIKeySecret.mint(tenantID: "acme", principalID: "router", createdAt: now)
        let admin = APIKeySecret.mint(tenantID: "acme", principalID: "ops", createdAt: now)
        var revoked = APIKeySecret.mint(tenantID: "acme", principalID: "dev", createdAt: now)
        revoked.key.revokedAt = now - 1
        let expired = APIKeySecret.mint(tenantID: "acme", principalID: "dev", createdAt: now - 100, expiresAt: now - 10)
        let disabled = APIKeySecret.mint(tenantID: "gone", principalID: "dev", createdAt: now)
        let snapshot = IdentitySnapshot(keys: [dev.key, steering.key, admin.key, revoked.key, expired.key, disabled.key])
        return Keys(
            dev: dev.token, steering: steering.token, admin: admin.token, revoked: revoked.token, expired: expired.token,
            disabledTenant: disabled.token, snapshot: snapshot)
    }

    static func chat(_ model: String = "chat") -> String { #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}]}"# }

    func withGateway(
        mode: AuthMode = .keys, configure: (inout ProximaConfiguration) -> Void = { _ in }, environment: [String: String] = [:],
        _ body: (RunningGateway, Keys, FaultyUpstream) async throws -> Void
    ) async throws {
        let upstream = try await FaultyUpstream.start()
        var configuration = Self.configuration(upstream: upstream.baseURL, mode: mode)
        configure(&configuration)
        let gateway = try await RunningGateway.start(configuration, environment: environment)
        let keys = Self.keys()
        gateway.gateway.replaceIdentities(with: keys.snapshot)
        try await gateway.run(stoppingAfter: upstream) {
            try await body(gateway, keys, upstream)
        }
    }

    @Test func aKeyOpensTheModelsOfItsScopeAndNoOthers() async throws {
        try await withGateway { gateway, keys, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            let allowed = try await TestHTTP.post(url, json: Self.chat(), headers: [("authorization", "Bearer \(keys.dev)")])
            #expect(allowed.status == 200)
            let refused = try await TestHTTP.post(url, json: Self.chat("secret"), headers: [("authorization", "Bearer \(keys.dev)")])
            #expect(refused.status == 403)
            #expect(refused.errorObject?["code"] as? String == "model_not_allowed")
            #expect(upstream.received.load(ordering: .relaxed) == 1, "the refused request never left the gateway")
            // The caller's key is never sent upstream: the endpoint gets no authorization at all here.
            #expect(upstream.lastHeaders.withLock { $0 }[.authorization] == nil)
            // /v1/models lists only what the caller may use.
            var request = HTTPClientRequest(url: gateway.baseURL + "/v1/models")
            request.headers.add(name: "authorization", value: "Bearer \(keys.dev)")
            let models = try await TestHTTP.send(request)
            let ids = (models.json?["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
            #expect(ids == ["chat"])
            var one = HTTPClientRequest(url: gateway.baseURL + "/v1/models/secret")
            one.headers.add(name: "authorization", value: "Bearer \(keys.dev)")
            #expect(try await TestHTTP.send(one).status == 403)
            #expect(try await TestHTTP.get(gateway.baseURL + "/v1/models").status == 401)
        }
    }

    @Test func everyBadCredentialGetsTheSame401() async throws {
        try await withGateway { gateway, keys, upstream in
            let url = gateway.baseURL + "/v1/chat/completions"
            let unknown = APIKeySecret.mint(tenantID: "acme", principalID: "dev", createdAt: Self.now).token
            let wrongSecret = String(keys.dev.dropLast(4)) + "aaaa"
            let credentials: [[(String, String)]] = [
                [],
                [("authorization", "Bearer")],
                [("authorization", "Bearer ")],
                [("authorization", "Basic dXNlcjpwYXNz")],
                [("authorization", "Bearer pxk_short")],
                [("authorization", "Bearer \(unknown)")],
                [("authorization", "Bearer \(wrongSecret)")],
                [("authorization", "Bearer \(keys.revoked)")],
                [("authorization", "Bearer \(keys.expired)")],
                [("authorization", "Bearer \(keys.disabledTenant)")],
                [("authorization", "Bearer \(keys.dev) extra")],
                [("authorization", "Bearer a.b.c")],  // a JWT shape, but JWTs are not accepted here
                [("authorization", "Bearer \(keys.dev)"), ("authorization", "Bearer \(keys.dev)")],
                [("authorization", "Bearer " + String(repeating: "A", count: 20_000))],
            ]
            var bodies = Set<String>()
            for headers in credentials {
                let reply = try await TestHTTP.post(url, json: Self.chat(), headers: headers)
                #expect(reply.status == 401, "\(headers.map(\.0))")
                #expect(reply.headers.first(name: "www-authenticate") == #"Bearer realm="proxima""#)
                bodies.insert(reply.body)
            }
            #expect(bodies.count == 1, "one body for every failure: \(bodies)")
            #expect(bodies.first?.contains("invalid_api_key") == true)
            #expect(upstream.received.load(ordering: .relaxed) == 0)
            // The open endpoints stay open.
            for path in ["/healthz", "/readyz", "/metrics"] {
                #expect(try await TestHTTP.get(gateway.baseURL + path).status == 200, "\(path)")
            }
            // The key starts working as soon as the directory has it, and stops when revoked.
            var snapshot = keys.snapshot
            let fresh = APIKeySecret.mint(tenantID: "acme", principalID: "dev", createdAt: Self.now)
            snapshot = IdentitySnapshot(keys: Array(snapshot.keys.values) + [fresh.key])
            gateway.gateway.replaceIdentities(with: snapshot)
            let header = [("authorization", "Bearer \(fresh.token)")]
            #expect(try await TestHTTP.post(url, json: Self.chat(), headers: header).status == 200)
            var revoked = fresh.key
            revoked.revokedAt = Self.now
            gateway.gateway.replaceIdentities(with: IdentitySnapshot(keys: Array(snapshot.keys.values) + [revoked]))
            #expect(try await TestHTTP.post(url, json: Self.chat(), headers: header).status == 401)
        }
    }

    @Test func hostileAuthorizationHeadersAreRefusedNotFatal() async throws {
        try await withGateway { gateway, keys, _ in
            var values: [String] = [
                "Bearer  \(keys.dev)x", "bearer\t\(keys.dev)", "Bearer \u{7F}", "Bearer ===", "Bearer a==b",
                "Bearer \(keys.dev)\u{0}", "Bearer é", "Bearer pxk_" + String(repeating: "7", count: 65),
            ]
            values.append("Bearer " + String(repeating: "x.", count: 3_000))
            for value in values {
                let reply = try? await TestHTTP.post(
                    gateway.baseURL + "/v1/chat/completions", json: Self.chat(), headers: [("authorization", value)])
                if let reply { #expect(reply.status == 401 || reply.status == 400, "\(value.prefix(20))") }
            }
            // Many authorization fields at once.
            let many = (0..<50).map { _ in ("authorization", "Bearer \(keys.dev)") }
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.chat(), headers: many)
            #expect(reply.status == 401)
            // Still serving.
            let good = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions", json: Self.chat(), headers: [("authorization", "Bearer  \(keys.dev)")])
            #expect(good.status == 200, "several spaces after Bearer are allowed (RFC 6750 1*SP)")
        }
    }

    @Test func theAdminAPIAcceptsItsTokenOrAnAdminPrincipal() async throws {
        try await withGateway(environment: ["PROXIMA_ADMIN_TOKEN": "admin-secret"]) { gateway, keys, _ in
            func fleet(_ authorization: String?) async throws -> Int {
                var request = HTTPClientRequest(url: gateway.baseURL + "/admin/fleet")
                if let authorization { request.headers.add(name: "authorization", value: authorization) }
                return try await TestHTTP.send(request).status
            }
            let byToken = try await fleet("Bearer admin-secret")
            let byRole = try await fleet("Bearer \(keys.admin)")
            let byOther = try await fleet("Bearer \(keys.dev)")
            let byNobody = try await fleet(nil)
            #expect(byToken == 200 && byRole == 200)
            #expect(byOther == 401 && byNobody == 401)
        }
    }

    @Test func steeringHeadersCountOnlyFromCallersAllowedToSteer() async throws {
        try await withGateway(configure: { configuration in
            configuration.routing.networks = [NetworkLocationSettings(network: "127.0.0.0/8", location: "far")]
        }) { gateway, keys, _ in
            let explain = gateway.baseURL + "/v1/route/explain"
            func location(_ key: String, _ headers: [(String, String)]) async throws -> Double? {
                let reply = try await TestHTTP.post(explain, json: Self.chat(), headers: [("authorization", "Bearer \(key)")] + headers)
                #expect(reply.status == 200, "\(reply.body)")
                return (reply.json?["client_location"] as? [String: Any])?["latitude"] as? Double
            }
            let steer = [("x-proxima-client-location", "10,20"), ("x-proxima-policy", "no-such-policy")]
            // An ordinary caller: both headers ignored (an unknown policy would be a 400) and counted;
            // the caller is placed by the network table.
            let ordinary = try await location(keys.dev, steer)
            #expect(ordinary == -40)
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_steering_headers_ignored_total{header="x-proxima-policy"} 1"#))
            #expect(metrics.contains(#"proxima_steering_headers_ignored_total{header="x-proxima-client-location"} 1"#))
            // A principal with the steering role: honoured (so the unknown policy is refused).
            let reply = try await TestHTTP.post(
                explain, json: Self.chat(), headers: [("authorization", "Bearer \(keys.steering)")] + steer)
            #expect(reply.status == 400 && reply.body.contains("no-such-policy"))
            let placed = try await location(keys.steering, [("x-proxima-client-location", "10,20")])
            #expect(placed == 10)
        }
    }

    @Test func trustedProxiesMaySteerAndNameTheClient() async throws {
        try await withGateway(configure: { configuration in
            configuration.auth.trustedProxies = ["127.0.0.1/32"]
            configuration.routing.networks = [NetworkLocationSettings(network: "203.0.113.0/24", location: "far")]
        }) { gateway, keys, _ in
            let explain = gateway.baseURL + "/v1/route/explain"
            let auth = ("authorization", "Bearer \(keys.dev)")
            // From the trusted proxy: the steering header is honoured.
            let steered = try await TestHTTP.post(explain, json: Self.chat(), headers: [auth, ("x-proxima-policy", "no-such-policy")])
            #expect(steered.status == 400)
            // The client named by X-Forwarded-For (rightmost untrusted hop) is placed by the table.
            let placed = try await TestHTTP.post(
                explain, json: Self.chat(), headers: [auth, ("x-forwarded-for", "198.51.100.1, 203.0.113.5")])
            #expect(placed.status == 200)
            #expect((placed.json?["client_location"] as? [String: Any])?["latitude"] as? Double == -40, "\(placed.body.prefix(300))")
            // Without the header the client is the proxy itself, outside the table: no location.
            let unplaced = try await TestHTTP.post(explain, json: Self.chat(), headers: [auth])
            #expect(unplaced.json?["client_location"] is NSNull)
        }
    }
}
