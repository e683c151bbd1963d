import Foundation
import JWTKit
import ProximaCore
import ProximaStore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

extension FuzzSuites {
    /// The identify stage's parsers are total and exact: every truncation and thousands of
    /// mutations of real `Authorization` values (an API key, JWTs of three algorithms) end in a
    /// refusal or in the one identity the unmutated credential has, never a trap; and base64url
    /// decoding has one encoding per byte string.
    @Suite struct CredentialFuzzTests {
        static let now = Date().timeIntervalSince1970

        @Test func credentialsParseTotallyAndOnlyTheGenuineOneIsAccepted() async throws {
            let signers = try await JWTAuthenticationTests.Signers.make()
            let keys = try await JWTKeySet.load(
                jwks: Array(signers.jwks.utf8), algorithms: JWTSettings.supportedAlgorithms, loadedAt: Self.now, generation: 1)
            let verifier = JWTVerifier(
                settings: JWTSettings(jwksFile: "unused", issuer: JWTAuthenticationTests.issuer, audience: ["proxima"], clockSkewSeconds: 5))
            verifier.install(keys)
            let (key, keyToken) = APIKeySecret.mint(tenantID: "acme", principalID: "dev", createdAt: Self.now)
            var roles = JWTAuthenticationTests.Claims()
            roles.roles = ["admin", "steering"]
            roles.aud = ["other", "proxima"]
            let jwts = [
                try await signers.token(kid: "rs"), try await signers.token(kid: "es"), try await signers.token(roles, kid: "ed"),
            ]
            let directory = IdentityDirectory(
                configured: IdentitySnapshot(tenants: [Tenant(id: "acme")], principals: [Principal(id: "dev", tenantID: "acme")]))
            directory.replace(with: IdentitySnapshot(keys: [key]))
            let identification = CallerIdentification(directory: directory, verifier: verifier, metrics: GatewayMetrics())
            let genuine = Set([keyToken] + jwts)
            let seeds = ([keyToken] + jwts).map { Array("Bearer \($0)".utf8) }
            var accepted = 0
            await Fuzzing.run("credentials", seeds: seeds, iterations: Fuzzing.iterations(default: 4_000), cutEveryByteUpTo: 96) {
                input, label in
                let value = String(decoding: input, as: UTF8.self)
                guard let token = BearerCredential.token(inFieldValue: value[...]) else { return }
                #expect(BearerCredential.isToken68(token), "\(label)")
                if let parsed = APIKeyToken(parsing: token) {
                    #expect(parsed.id.utf8.count == APIKeyToken.idLength && parsed.secret.utf8.count == APIKeyToken.secretLength, "\(label)")
                }
                if let identity = identification.identity(token: token, mode: .keysAndJWT, index: directory.index, at: Self.now) {
                    accepted += 1
                    #expect(genuine.contains(String(token)), "\(label): accepted a forged credential: \(Fuzzing.describe(input))")
                    #expect(identity.tenantID == "acme", "\(label)")
                }
                if BearerCredential.kind(of: token) == .jwt, let claims = verifier.check(token, keys: keys, at: Self.now) {
                    #expect(genuine.contains(String(token)), "\(label): verified a forged token")
                    #expect(claims.tenantID == "acme" && claims.principalID == "svc", "\(label)")
                }
            }
            #expect(accepted > 0, "the unmutated seeds are accepted")
        }

        @Test func base64URLHasOneEncodingPerByteString() async throws {
            let seeds = ["eyJhbGciOiJFUzI1NiJ9", "AQIDBAUGBwgJCgsMDQ4P", "_-_-", "QQ", "QUI", ""].map { Array($0.utf8) }
            await Fuzzing.run("base64url", seeds: seeds, iterations: Fuzzing.iterations(default: 8_000)) { input, label in
                let text = String(decoding: input, as: UTF8.self)
                guard let bytes = Base64URL.decode(text[...]) else { return }
                #expect(Base64URL.encode(bytes) == text, "\(label): \(Fuzzing.describe(input)) is not the canonical encoding")
            }
            var random = SplitMix64(seed: 7)
            for length in 0..<64 {
                let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                #expect(Base64URL.decode(Base64URL.encode(bytes)[...]) == bytes)
            }
        }
    }
}
