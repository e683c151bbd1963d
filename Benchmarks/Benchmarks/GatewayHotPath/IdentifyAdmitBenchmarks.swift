import Benchmark
import CryptoExtras
import Foundation
import JWTKit
@_spi(Benchmarks) import ProximaGateway

// MARK: - 6. The identify and admit stages

// What the pipeline's identify and admit stages cost per request, stage by stage, on a directory of
// 10,000 keys: identify by API key (look-up and secret check), identify by JWT (a token seen before,
// and the full check of a new one per algorithm), steering trust (trusted proxy, X-Forwarded-For,
// network table), admission over three scopes with its settlement, and all of it for one request.

struct ProbeClaims: JWTPayload {
    var iss = "https://idp.bench"
    var aud = ["proxima"]
    var sub = "svc"
    var tenant = "acme"
    var roles = ["steering"]
    var exp = Date().timeIntervalSince1970 + 86_400
    func verify(using algorithm: some JWTAlgorithm) throws {}
}

/// Made once, before the first measurement: keys of three algorithms, their JWKS, a token each.
let identifyAdmitProbe = Task<IdentifyAdmitProbe, any Error> {
    let rsa = try Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
    let ecdsa = ES256PrivateKey()
    let eddsa = try EdDSA.PrivateKey()
    let keys = JWTKeyCollection()
    await keys.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rs")
    await keys.add(ecdsa: ecdsa, kid: "es")
    await keys.add(eddsa: eddsa, kid: "ed")
    let (modulus, exponent) = try rsa.publicKey.getKeyPrimitives()
    guard let ec = ecdsa.publicKey.parameters else { fatalError("no EC parameters") }
    func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
    let jwks = """
        {"keys":[{"kty":"RSA","kid":"rs","alg":"RS256","n":"\(base64URL(modulus))","e":"\(base64URL(exponent))"},
        {"kty":"EC","kid":"es","crv":"P-256","x":"\(ec.x)","y":"\(ec.y)"},
        {"kty":"OKP","kid":"ed","crv":"Ed25519","x":"\(base64URL(eddsa.publicKey.rawRepresentation))"}]}
        """
    var tokens: [String: String] = [:]
    for (algorithm, kid) in [("RS256", "rs"), ("ES256", "es"), ("EdDSA", "ed")] {
        tokens[algorithm] = try await keys.sign(ProbeClaims(), kid: JWKIdentifier(string: kid))
    }
    return try await IdentifyAdmitProbe(keyCount: 10_000, jwks: jwks, jwts: tokens, issuer: "https://idp.bench", audience: "proxima")
}

func identifyAdmitBenchmarks() {
    func probeBenchmark(_ name: String, scaled: Bool = true, _ work: @escaping @Sendable (IdentifyAdmitProbe) -> Bool) {
        Benchmark(name, configuration: .init(scalingFactor: scaled ? .kilo : .one)) { benchmark in
            let probe = try await identifyAdmitProbe.value
            precondition(work(probe), "\(name): the probe did not come out as expected")
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(work(probe))
            }
        }
    }
    probeBenchmark("Identify API key (10,000 keys)") { $0.identifyAPIKey() }
    for algorithm in ["RS256", "ES256", "EdDSA"] {
        probeBenchmark("Identify JWT \(algorithm), token seen before") { $0.identifyKnownJWT(algorithm) }
        probeBenchmark("Identify JWT \(algorithm), new token (full check)", scaled: false) { $0.verifyNewJWT(algorithm) }
    }
    probeBenchmark("Steering trust: proxy, X-Forwarded-For, network table") { $0.steeringHints() }
    probeBenchmark("Admit and settle, 3 scopes, with headers") { $0.admitAndSettle() }
    probeBenchmark("Identify + admit + settle, API key") { $0.identifyAdmitSettle() }
}
