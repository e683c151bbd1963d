import Foundation
import HTTPTypes
import NIOCore
import ProximaCore
import ProximaStore

/// The identify and admit stages set up as on a gateway with many keys, for the microbenchmarks
/// (`Benchmarks/`), which cannot reach the stages' internal types: each method runs one stage's
/// work for one request and says whether it came out as expected.
@_spi(Benchmarks) public final class IdentifyAdmitProbe: Sendable {
    let identification: CallerIdentification
    let admission: AdmissionStage
    let ledger: LocalAdmissionLedger
    let verifier: JWTVerifier
    let keySet: JWTKeySet
    let trust: CallerTrust
    let metrics = GatewayMetrics()
    let keyHeaders: HTTPFields
    let jwtHeaders: [String: HTTPFields]
    let jwts: [String: String]
    let inference: InferenceRequest
    let price = TokenPrice(inputPerMillion: 0.15, outputPerMillion: 0.60)
    let peer: IPAddress
    let keyCaller: CallerIdentity

    /// `keyCount` stored keys over 100 tenants; the probe's own key has limits on all three scopes
    /// (high enough to admit every request). `jwks` holds the keys that signed `jwts` (algorithm
    /// name to token), issued by `issuer` for `audience`.
    public init(keyCount: Int, jwks: String, jwts: [String: String], issuer: String, audience: String) async throws {
        let now = Date().timeIntervalSince1970
        let limits = ScopeLimits(requestsPerMinute: 1_000_000_000, tokensPerMinute: 1_000_000_000_000, concurrentRequests: 1_000, maxTokens: 4_096)
        var tenants = (0..<100).map { Tenant(id: "tenant-\($0)", limits: ScopeLimits(dailyBudgetUSD: 1_000_000_000)) }
        tenants.append(Tenant(id: "acme", models: .only(["llama-3.1-8b", "qwen-*"]), limits: ScopeLimits(requestsPerMinute: 1_000_000_000, dailyBudgetUSD: 1_000_000_000)))
        var keys: [APIKey] = []
        for index in 0..<max(keyCount - 1, 0) {
            keys.append(APIKeySecret.mint(tenantID: "tenant-\(index % 100)", principalID: "p\(index)", createdAt: now).key)
        }
        let (key, token) = APIKeySecret.mint(tenantID: "acme", principalID: "svc", models: .only(["llama-*"]), limits: limits, createdAt: now)
        keys.append(key)
        let directory = IdentityDirectory(
            configured: IdentitySnapshot(
                tenants: tenants, principals: [Principal(id: "svc", tenantID: "acme", roles: [Role.steering], limits: ScopeLimits(tokensPerMinute: 1_000_000_000_000))]))
        directory.replace(with: IdentitySnapshot(keys: keys))
        let settings = JWTSettings(jwksFile: "unused", issuer: issuer, audience: [audience])
        verifier = JWTVerifier(settings: settings)
        keySet = try await JWTKeySet.load(jwks: Array(jwks.utf8), algorithms: JWTSettings.supportedAlgorithms, loadedAt: now, generation: 1)
        verifier.install(keySet)
        identification = CallerIdentification(directory: directory, verifier: verifier, metrics: metrics)
        ledger = LocalAdmissionLedger()
        admission = AdmissionStage(ledger: ledger, metrics: metrics)
        var configuration = ProximaConfiguration()
        configuration.auth = AuthSettings(mode: .keys, trustedProxies: ["10.0.0.0/8", "fd00::/8"])
        configuration.routing.networks = [
            NetworkLocationSettings(network: "192.0.2.0/24", location: "48.1,11.6"),
            NetworkLocationSettings(network: "198.51.100.0/24", location: "40.7,-74.0"),
        ]
        trust = CallerTrust(configuration: configuration, fleet: try Fleet(configuration: configuration))
        peer = IPAddress("10.1.2.3")!
        var fields = HTTPFields()
        fields[.authorization] = "Bearer \(token)"
        fields[.contentType] = "application/json"
        fields[.xForwardedFor] = "192.0.2.44, 10.9.9.9"
        fields[.proximaPolicy] = "balanced"
        keyHeaders = fields
        var byAlgorithm: [String: HTTPFields] = [:]
        for (algorithm, jwt) in jwts {
            var fields = HTTPFields()
            fields[.authorization] = "Bearer \(jwt)"
            byAlgorithm[algorithm] = fields
        }
        jwtHeaders = byAlgorithm
        self.jwts = jwts
        keyCaller = try identification.identity(fields, mode: .keysAndJWT, at: now)
        let body = #"{"model":"llama-3.1-8b","messages":[{"role":"user","content":"Summarize the incident report in three lines."}],"max_tokens":256,"stream":true}"#
        inference = try InferenceRequest(operation: .chatCompletions, body: ByteBuffer(string: body))
    }

    /// Identify by API key: the header read, the token parsed, the key looked up and its secret
    /// hashed and compared.
    public func identifyAPIKey() -> Bool {
        (try? identification.identity(keyHeaders, mode: .keysAndJWT, at: Date().timeIntervalSince1970))?.keyID != nil
    }

    /// Identify by a JWT seen before (the verified-token cache).
    public func identifyKnownJWT(_ algorithm: String) -> Bool {
        guard let headers = jwtHeaders[algorithm] else { return false }
        return (try? identification.identity(headers, mode: .keysAndJWT, at: Date().timeIntervalSince1970)) != nil
    }

    /// The full check of a JWT not seen before: parsing, signature, claims.
    public func verifyNewJWT(_ algorithm: String) -> Bool {
        guard let token = jwts[algorithm] else { return false }
        return verifier.check(token[...], keys: keySet, at: Date().timeIntervalSince1970) != nil
    }

    /// Steering trust: the peer is a trusted proxy, the client taken from `X-Forwarded-For` and
    /// placed by the network table.
    public func steeringHints() -> Bool {
        trust.hints(keyHeaders, peer: peer, identity: .anonymous, metrics: metrics).networkLocation != nil
    }

    /// Admission over key, principal and tenant (with its rate-limit header fields), then its
    /// settlement with the real usage.
    public func admitAndSettle() -> Bool {
        admitAndSettle(keyCaller)
    }

    private func admitAndSettle(_ caller: CallerIdentity) -> Bool {
        let now = Date().timeIntervalSince1970
        // The local ledger decides without waiting: its own call, not the protocol's async one.
        let request = AdmissionStage.request(inference, caller: caller, expectedOutputTokens: 256)
        let (decision, decided) = ledger.admit(request, caller: caller, at: now)
        guard let admitted = try? admission.conclude(decision, pass: decided), let pass = admitted.pass
        else { return false }
        ledger.finish(pass, promptTokens: 412, completionTokens: 198, price: price, at: now)
        return !AdmissionStage.fields(admitted.headers).isEmpty
    }

    /// What the two stages add to one request with an API key: identify (key and steering), the
    /// model scope check, admission with its rate-limit header fields, and the settlement.
    public func identifyAdmitSettle() -> Bool {
        guard let caller = try? identification.identify(keyHeaders, peer: peer, trust: trust, at: Date().timeIntervalSince1970),
            caller.identity.models.allows(inference.model)
        else { return false }
        return admitAndSettle(caller.identity)
    }
}
