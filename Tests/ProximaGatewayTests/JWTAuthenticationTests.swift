import AsyncHTTPClient
import CryptoExtras
import Foundation
import Hummingbird
import JWTKit
import Logging
import NIOCore
import ProximaCore
import ServiceLifecycle
import Synchronization
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// Bearer JWTs over HTTP: tokens signed with RS256, ES256 and EdDSA keys made here, checked against
/// a JWKS served from a file and from a loopback HTTP server; every invalid token gets the 401 of
/// a bad credential; a JWKS that stops answering is used until its maximum age, then nothing is.
@Suite(.serialized) struct JWTAuthenticationTests {
    static let issuer = "https://idp.test"

    struct Claims: JWTPayload {
        var iss: String? = JWTAuthenticationTests.issuer
        var aud: [String]? = ["proxima"]
        var sub: String? = "svc"
        var tenant: String? = "acme"
        var roles: [String]? = nil
        var exp: Double? = Date().timeIntervalSince1970 + 300
        var nbf: Double? = nil
        func verify(using algorithm: some JWTAlgorithm) throws {}
    }

    /// Signing keys of the three algorithms, their JWKS, and a stranger key under a known kid.
    struct Signers: Sendable {
        let keys: JWTKeyCollection
        let stranger: JWTKeyCollection
        let jwks: String

        static func make() async throws -> Signers {
            let rsa = try Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
            let ecdsa = ES256PrivateKey()
            let eddsa = try EdDSA.PrivateKey()
            let keys = JWTKeyCollection()
            await keys.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rs")
            await keys.add(ecdsa: ecdsa, kid: "es")
            await keys.add(eddsa: eddsa, kid: "ed")
            let stranger = JWTKeyCollection()
            await stranger.add(ecdsa: ES256PrivateKey(), kid: "es")
            let (modulus, exponent) = try rsa.publicKey.getKeyPrimitives()
            let ec = try #require(ecdsa.publicKey.parameters)
            let jwks = """
                {"keys":[
                 {"kty":"RSA","kid":"rs","alg":"RS256","use":"sig","n":"\(Base64URL.encode(modulus))","e":"\(Base64URL.encode(exponent))"},
                 {"kty":"EC","kid":"es","crv":"P-256","x":"\(ec.x)","y":"\(ec.y)"},
                 {"kty":"OKP","kid":"ed","crv":"Ed25519","x":"\(Base64URL.encode(eddsa.publicKey.rawRepresentation))"}
                ]}
                """
            return Signers(keys: keys, stranger: stranger, jwks: jwks)
        }

        func token(_ claims: Claims = Claims(), kid: String = "es") async throws -> String {
            try await keys.sign(claims, kid: JWKIdentifier(string: kid))
        }
    }

    static func configuration(upstream: String, jwt: JWTSettings) -> ProximaConfiguration {
        var configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "lab", latitude: 1, longitude: 2)],
            endpoints: [
                EndpointSettings(
                    name: "ep0", url: upstream, site: "lab", engine: .openai,
                    models: [.init(name: "chat", upstream: "ok"), .init(name: "secret", upstream: "ok")])
            ])
        configuration.auth = AuthSettings(
            mode: .jwt, tenants: [TenantSettings(id: "acme", models: .only(["chat"])), TenantSettings(id: "gone", disabled: true)],
            jwt: jwt)
        return configuration
    }

    static func settings(file: String? = nil, url: String? = nil, refresh: Double = 60, maxAge: Double = 600) -> JWTSettings {
        JWTSettings(
            jwksFile: file, jwksURL: url, refreshSeconds: refresh, maxAgeSeconds: maxAge, issuer: issuer, audience: ["proxima"],
            clockSkewSeconds: 5)
    }

    static let chat = #"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#

    static func post(_ gateway: RunningGateway, _ token: String?, body: String = chat) async throws -> TestHTTP.Reply {
        try await TestHTTP.post(
            gateway.baseURL + "/v1/chat/completions", json: body, headers: token.map { [("authorization", "Bearer \($0)")] } ?? [])
    }

    static func keysLoaded(_ gateway: RunningGateway) async throws -> Bool {
        try await eventually { gateway.gateway.verifier?.currentKeys(at: Date().timeIntervalSince1970) != nil }
    }

    func withJWKSFile(_ body: (RunningGateway, Signers) async throws -> Void) async throws {
        let signers = try await Signers.make()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("proxima-jwks-\(UInt32.random(in: 0...UInt32.max)).json").path
        try signers.jwks.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let upstream = try await FaultyUpstream.start()
        let gateway = try await RunningGateway.start(
            Self.configuration(upstream: upstream.baseURL, jwt: Self.settings(file: path)), environment: ["PROXIMA_ADMIN_TOKEN": "t"])
        try await gateway.run(stoppingAfter: upstream) {
            #expect(try await Self.keysLoaded(gateway))
            try await body(gateway, signers)
        }
    }

    @Test func tokensOfEveryAlgorithmFromAJWKSFileWork() async throws {
        try await withJWKSFile { gateway, signers in
            for kid in ["rs", "es", "ed"] {
                let reply = try await Self.post(gateway, try await signers.token(kid: kid))
                #expect(reply.status == 200, "\(kid): \(reply.body)")
            }
            // The tenant's scope holds for JWT callers too.
            let secret = try await Self.post(gateway, try await signers.token(), body: #"{"model":"secret","messages":[{"role":"user","content":"hi"}]}"#)
            #expect(secret.status == 403)
            // Within the clock skew (5 s) an expired token still passes.
            var late = Claims()
            late.exp = Date().timeIntervalSince1970 - 2
            #expect(try await Self.post(gateway, try await signers.token(late)).status == 200)
            // The same token again is served from the verified tokens.
            let token = try await signers.token(kid: "rs")
            #expect(try await Self.post(gateway, token).status == 200)
            #expect(try await Self.post(gateway, token).status == 200)
        }
    }

    @Test func invalidTokensGetTheSame401() async throws {
        try await withJWKSFile { gateway, signers in
            let now = Date().timeIntervalSince1970
            var expired = Claims()
            expired.exp = now - 60
            var early = Claims()
            early.nbf = now + 60
            var issuer = Claims()
            issuer.iss = "https://other.test"
            var audience = Claims()
            audience.aud = ["someone-else"]
            var noExpiry = Claims()
            noExpiry.exp = nil
            var unknownTenant = Claims()
            unknownTenant.tenant = "nobody"
            var disabledTenant = Claims()
            disabledTenant.tenant = "gone"
            var noSubject = Claims()
            noSubject.sub = nil
            let good = try await signers.token()
            let parts = good.split(separator: ".").map(String.init)
            let otherPayload = Base64URL.encode(Array(#"{"iss":"https://idp.test","aud":["proxima"],"sub":"root","tenant":"acme","exp":9999999999}"#.utf8))
            let none = Base64URL.encode(Array(#"{"alg":"none","kid":"es"}"#.utf8))
            let hs256 = Base64URL.encode(Array(#"{"alg":"HS256","kid":"es"}"#.utf8))
            var tokens: [(String, String)] = [
                ("expired", try await signers.token(expired)),
                ("not yet valid", try await signers.token(early)),
                ("wrong issuer", try await signers.token(issuer)),
                ("wrong audience", try await signers.token(audience)),
                ("no exp", try await signers.token(noExpiry)),
                ("unknown tenant", try await signers.token(unknownTenant)),
                ("disabled tenant", try await signers.token(disabledTenant)),
                ("no subject", try await signers.token(noSubject)),
                ("wrong signature", try await signers.stranger.sign(Claims(), kid: JWKIdentifier(string: "es"))),
                ("tampered payload", parts[0] + "." + otherPayload + "." + parts[2]),
                ("alg none", none + "." + parts[1] + "."),
                ("alg none with signature", none + "." + parts[1] + "." + parts[2]),
                ("HS256 header", hs256 + "." + parts[1] + "." + parts[2]),
                ("truncated", String(good.dropLast(5))),
                ("padding", good + "=="),
            ]
            // Signed properly, by a key the JWKS does not have.
            let elsewhere = JWTKeyCollection()
            await elsewhere.add(ecdsa: ES256PrivateKey(), kid: "zz")
            tokens.append(("unknown kid", try await elsewhere.sign(Claims(), kid: JWKIdentifier(string: "zz"))))
            var bodies = Set<String>()
            for (name, token) in tokens {
                let reply = try await Self.post(gateway, token)
                #expect(reply.status == 401, "\(name)")
                #expect(reply.headers.first(name: "www-authenticate") == #"Bearer realm="proxima""#, "\(name)")
                bodies.insert(reply.body)
            }
            #expect(bodies.count == 1)
            // API keys are not accepted when only JWTs are.
            #expect(try await Self.post(gateway, "pxk_" + String(repeating: "a", count: 12) + "_" + String(repeating: "b", count: 52)).status == 401)
        }
    }

    @Test func rolesComeFromTheToken() async throws {
        try await withJWKSFile { gateway, signers in
            var admin = Claims()
            admin.roles = ["admin"]
            var request = HTTPClientRequest(url: gateway.baseURL + "/admin/fleet")
            request.headers.add(name: "authorization", value: "Bearer \(try await signers.token(admin))")
            #expect(try await TestHTTP.send(request).status == 200)
            var plain = HTTPClientRequest(url: gateway.baseURL + "/admin/fleet")
            plain.headers.add(name: "authorization", value: "Bearer \(try await signers.token())")
            #expect(try await TestHTTP.send(plain).status == 401)
            // The steering role lets the caller pick a policy (an unknown one is then a 400).
            var steering = Claims()
            steering.roles = ["steering"]
            let steered = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions", json: Self.chat,
                headers: [("authorization", "Bearer \(try await signers.token(steering))"), ("x-proxima-policy", "no-such")])
            #expect(steered.status == 400)
            let ignored = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions", json: Self.chat,
                headers: [("authorization", "Bearer \(try await signers.token())"), ("x-proxima-policy", "no-such")])
            #expect(ignored.status == 200)
        }
    }

    @Test func aJWKSURLIsUsedUntilItsMaximumAgeThenNothingIs() async throws {
        let signers = try await Signers.make()
        let server = try await JWKSServer.start(document: signers.jwks)
        let upstream = try await FaultyUpstream.start()
        let gateway = try await RunningGateway.start(
            Self.configuration(upstream: upstream.baseURL, jwt: Self.settings(url: server.url, refresh: 0.2, maxAge: 1.5)))
        try await gateway.run(stoppingAfter: upstream) {
            #expect(try await Self.keysLoaded(gateway))
            let token = try await signers.token(kid: "ed")
            #expect(try await Self.post(gateway, token).status == 200)
            #expect(server.served.load(ordering: .relaxed) >= 1)
            // The server goes away: the keys read last keep working until their maximum age...
            await server.stop()
            let stoppedAt = ContinuousClock.now
            let fresh = try await signers.token(kid: "rs")
            let during = try await Self.post(gateway, fresh)
            if ContinuousClock.now - stoppedAt < .seconds(1) { #expect(during.status == 200) }
            // ...then every token is refused (fail closed), the cached one too.
            #expect(try await eventually(timeout: .seconds(5)) { try await Self.post(gateway, token).status == 401 })
            #expect(try await Self.post(gateway, fresh).status == 401)
            // And the gateway says it is not ready: it accepts nothing else.
            let readiness = try await TestHTTP.get(gateway.baseURL + "/readyz")
            #expect(readiness.status == 503 && readiness.body.contains(#""jwks":"unavailable""#))
        }
    }
}

/// A JWKS document on a loopback port, counting the reads.
final class JWKSServer: Sendable {
    let port: Int
    let served = Atomic<Int>(0)
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    var url: String { "http://127.0.0.1:\(port)/jwks.json" }

    static func start(document: String) async throws -> JWKSServer {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let box = Mutex<JWKSServer?>(nil)
        let router = Router()
        router.get("/jwks.json") { _, _ in
            box.withLock { $0 }?.served.add(1, ordering: .relaxed)
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: document)))
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: Logger(label: "jwks", factory: { _ in SwiftLogNoOpLogHandler() }))
        let group = ServiceGroup(services: [app], logger: Logger(label: "x", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let server = JWKSServer(port: await iterator.next() ?? 0, group: group, task: task)
        box.withLock { $0 = server }
        return server
    }

    private init(port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.group = group
        self.task = task
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}
