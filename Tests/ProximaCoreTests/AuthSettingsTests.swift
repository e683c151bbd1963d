import Foundation
import Testing
@testable import ProximaCore

/// The `auth` section, `routing.networks` and `limits`: decoding and the problems validation names.
@Suite struct AuthSettingsTests {
    static func configuration(_ json: String) throws -> ProximaConfiguration {
        try JSONDecoder().decode(ProximaConfiguration.self, from: Data(json.utf8))
    }

    static let fleet = """
        "sites": [{"name": "lab", "latitude": 50, "longitude": 8}],
        "endpoints": [{"name": "e", "url": "http://127.0.0.1:9/v1", "site": "lab", "models": ["chat"]}]
        """

    @Test func authIsOffByDefault() throws {
        let configuration = try Self.configuration("{}")
        #expect(configuration.auth == AuthSettings())
        #expect(configuration.auth.mode == .none && !configuration.auth.mode.isRequired)
        #expect(configuration.limits == AdmissionSettings())
    }

    @Test func theModeIsAWordOrAList() throws {
        #expect(try Self.configuration(#"{"auth": {"mode": "keys"}}"#).auth.mode == .keys)
        #expect(try Self.configuration(#"{"auth": {"mode": ["keys", "jwt"]}}"#).auth.mode == .keysAndJWT)
        #expect(try Self.configuration(#"{"auth": {"mode": "none"}}"#).auth.mode == AuthMode.none)
        #expect(throws: DecodingError.self) { try Self.configuration(#"{"auth": {"mode": "password"}}"#) }
        #expect(throws: DecodingError.self) { try Self.configuration(#"{"auth": {"mode": ["none", "keys"]}}"#) }
    }

    @Test func declaredIdentitiesBecomeRecords() throws {
        let configuration = try Self.configuration(
            """
            {\(Self.fleet),
             "auth": {"mode": "keys",
                      "tenants": [{"id": "acme", "models": ["chat"], "limits": {"requests_per_minute": 60}}],
                      "principals": [{"id": "ops", "tenant": "acme", "roles": ["admin", "steering"]}]},
             "limits": {"key": {"concurrent_requests": 4}}}
            """)
        #expect(configuration.problems().isEmpty, "\(configuration.problems())")
        let identities = configuration.auth.identities
        #expect(identities.tenants["acme"]?.models == .only(["chat"]))
        #expect(identities.tenants["acme"]?.limits.requestsPerMinute == 60)
        #expect(identities.principal("ops", of: "acme")?.roles == [Role.admin, Role.steering])
        #expect(configuration.limits.key.concurrentRequests == 4)
    }

    @Test func everyBadValueIsNamedByItsKey() throws {
        let configuration = try Self.configuration(
            """
            {\(Self.fleet),
             "auth": {"mode": "jwt",
                      "tenants": [{"id": "Acme"}, {"id": "b"}, {"id": "b", "limits": {"requests_per_minute": 0}}],
                      "principals": [{"id": "p", "tenant": "nobody"}],
                      "trusted_proxies": ["10.0.0.0/8", "10.1.2.3/8", "nonsense"]},
             "routing": {"networks": [{"network": "192.0.2.0/24", "location": "lab"},
                                      {"network": "192.0.2.0/40", "location": "atlantis"}]},
             "limits": {"tenant": {"daily_budget_usd": -1}}}
            """)
        let paths = Set(configuration.problems().map(\.keyPath))
        for expected in [
            "auth.tenants[0].id", "auth.tenants[2].id", "auth.tenants[2].limits.requests_per_minute", "auth.principals[0].tenant",
            "auth.trusted_proxies[1]", "auth.trusted_proxies[2]", "auth.jwt", "routing.networks[1].network",
            "routing.networks[1].location", "limits.tenant.daily_budget_usd",
        ] {
            #expect(paths.contains(expected), "\(expected) missing from \(paths.sorted())")
        }
        #expect(!paths.contains("routing.networks[0].location"))
        #expect(configuration.problems().contains { $0.message.contains("did you mean 10.0.0.0/8") })
    }

    @Test func jwtSettingsNeedKeysAnIssuerAndAnAudience() throws {
        let configuration = try Self.configuration(
            """
            {\(Self.fleet),
             "auth": {"mode": ["keys", "jwt"],
                      "jwt": {"jwks_file": "a", "jwks_url": "ftp://x", "refresh_seconds": 60, "max_age_seconds": 10,
                              "clock_skew_seconds": 9999, "algorithms": ["HS256"], "claims": {"roles": ""}}}}
            """)
        let paths = Set(configuration.problems().map(\.keyPath))
        for expected in [
            "auth.jwt", "auth.jwt.clock_skew_seconds", "auth.jwt.issuer", "auth.jwt.audience", "auth.jwt.algorithms[0]",
            "auth.jwt.claims.roles",
        ] {
            #expect(paths.contains(expected), "\(expected) missing from \(paths.sorted())")
        }
        let good = try Self.configuration(
            """
            {\(Self.fleet),
             "auth": {"mode": "jwt", "jwt": {"jwks_url": "https://idp.example/jwks", "issuer": "https://idp.example",
                                              "audience": "proxima", "max_age_seconds": 600, "refresh_seconds": 60}}}
            """)
        #expect(good.problems().isEmpty, "\(good.problems())")
        #expect(good.auth.jwt?.audience == ["proxima"])
        #expect(good.auth.jwt?.claims == JWTClaimNames(tenant: "tenant", principal: "sub", roles: "roles"))
        let short = try Self.configuration(
            """
            {\(Self.fleet),
             "auth": {"mode": "jwt", "jwt": {"jwks_file": "/k", "issuer": "i", "audience": ["a"], "max_age_seconds": 10, "refresh_seconds": 60}}}
            """)
        #expect(short.problems().map(\.keyPath) == ["auth.jwt.max_age_seconds"])
    }

    @Test func coordinatesParseWithinRangeOnly() {
        #expect(Coordinates(parsing: " 48.1, 11.6 ") == Coordinates(latitude: 48.1, longitude: 11.6))
        for bad in ["91,0", "0,181", "nan,0", "1", "1,2,3", "a,b", ""] { #expect(Coordinates(parsing: bad) == nil, "\(bad)") }
    }
}
