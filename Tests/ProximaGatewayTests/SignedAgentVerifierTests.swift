import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import ProximaCore
import ProximaGuard
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// Requests signed with a test Ed25519 key, the agent's directory served from a loopback origin.
enum SignedAgentFixture {
    static let key = Curve25519.Signing.PrivateKey()
    static let signer = WebBotAuthSigner(key: key)
    static var directory: String { #"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"\#(signer.publicKey.x)"}]}"# }
    static let path = "/v1/chat/completions"

    /// The headers that sign a POST to `path` at `authority` for the agent at `origin`.
    static func headers(
        origin: String?, authority: String, created: Double, expires: Double, nonce: String?, signer: WebBotAuthSigner = signer,
        path: String = path
    ) throws -> [(String, String)] {
        var fields: [(String, String)] = [("host", authority)]
        if let origin { fields.append(("signature-agent", "\"\(origin)\"")) }
        let message = SignedMessage(
            method: "POST", scheme: "http", authority: authority, target: path, fields: fields.map { .init(name: $0.0, value: $0.1) })
        let components = origin == nil ? ["@authority", "@method", "@path"] : ["@authority", "signature-agent", "@method", "@path"]
        let signed = try signer.sign(message, components: components, created: Int64(created), expires: Int64(expires), nonce: nonce)
        return fields.filter { $0.0 != "host" } + [("signature-input", signed.signatureInput), ("signature", signed.signature)]
    }

    static func edgeRequest(_ headers: [(String, String)], authority: String = "gateway.test") -> EdgeRequest {
        var fields = HTTPFields()
        fields[HTTPField.Name("Host")!] = authority
        for (name, value) in headers { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return EdgeRequest(method: .post, authority: authority, path: path, scheme: "http", headers: fields, peer: nil)
    }
}

/// The gateway's verifier against a real directory origin: fetched once and cached, single flight,
/// failures cached, private origins refused unless allowed, configured directories never fetched.
@Suite(.serialized) struct SignedAgentVerifierTests {
    static let now: Double = 1_900_000_000

    func withVerifier(
        _ mode: AgentDirectoryServer.Mode, change: (inout SignedAgentSettings, String) -> Void = { _, _ in },
        _ body: (SignedAgentVerifier, AgentDirectoryServer) async throws -> Void
    ) async throws {
        let server = try await AgentDirectoryServer.start(mode)
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: .init(redirectConfiguration: .disallow))
        var settings = SignedAgentSettings(directoryTimeoutSeconds: 0.25, clockSkewSeconds: 5, allowPrivateOrigins: true)
        change(&settings, server.origin)
        let verifier = SignedAgentVerifier(settings: settings, client: client, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        do {
            try await body(verifier, server)
        } catch {
            try? await client.shutdown()
            await server.stop()
            throw error
        }
        try await client.shutdown()
        await server.stop()
    }

    func classify(_ verifier: SignedAgentVerifier, origin: String?, nonce: String?, created: Double = now - 1, expires: Double = now + 59, at now: Double = now)
        async throws -> CallerClassification?
    {
        let headers = try SignedAgentFixture.headers(origin: origin, authority: "gateway.test", created: created, expires: expires, nonce: nonce)
        return await verifier.classify(SignedAgentFixture.edgeRequest(headers), now: now)
    }

    @Test func manySignedRequestsAreSignedAgentsAndTheDirectoryIsFetchedOnce() async throws {
        try await withVerifier(.keys(json: SignedAgentFixture.directory, maxAge: 300)) { verifier, server in
            // Concurrent first requests share one fetch.
            let found = try await withThrowingTaskGroup(of: CallerClassification?.self) { group in
                for index in 0..<20 {
                    group.addTask { try await self.classify(verifier, origin: server.origin, nonce: "n\(index)") }
                }
                return try await group.reduce(into: [CallerClassification?]()) { $0.append($1) }
            }
            #expect(found.allSatisfy { $0 == CallerClassification(.signedAgent, name: server.origin) }, "\(found)")
            for index in 20..<30 {
                #expect(try await classify(verifier, origin: server.origin, nonce: "n\(index)")?.callerClass == .signedAgent)
            }
            #expect(server.fetches.load(ordering: .relaxed) == 1)
            #expect(verifier.directoryFetches == 1)
            // Past its max-age the directory is fetched again.
            let later = Self.now + 301
            let again = try await classify(verifier, origin: server.origin, nonce: "later", created: later - 1, expires: later + 59, at: later)
            #expect(again?.callerClass == .signedAgent)
            #expect(server.fetches.load(ordering: .relaxed) == 2)
        }
    }

    @Test func replayedExpiredAndForeignSignaturesAreImpersonators() async throws {
        try await withVerifier(.keys(json: SignedAgentFixture.directory, maxAge: nil)) { verifier, server in
            let headers = try SignedAgentFixture.headers(
                origin: server.origin, authority: "gateway.test", created: Self.now - 1, expires: Self.now + 59, nonce: "once")
            let request = SignedAgentFixture.edgeRequest(headers)
            #expect(await verifier.classify(request, now: Self.now)?.callerClass == .signedAgent)
            #expect(await verifier.classify(request, now: Self.now + 1) == CallerClassification(.impersonator, name: server.origin, reason: "replayed"))
            let expired = try await classify(verifier, origin: server.origin, nonce: "old", created: Self.now - 120, expires: Self.now - 60)
            #expect(expired == CallerClassification(.impersonator, reason: "expired"))
            // Signed by a key the agent's directory does not list.
            let stranger = WebBotAuthSigner(key: Curve25519.Signing.PrivateKey())
            let foreign = try SignedAgentFixture.headers(
                origin: server.origin, authority: "gateway.test", created: Self.now - 1, expires: Self.now + 59, nonce: "x", signer: stranger)
            #expect(await verifier.classify(SignedAgentFixture.edgeRequest(foreign), now: Self.now)
                == CallerClassification(.impersonator, name: server.origin, reason: "unknown_key"))
            // Signed for another host.
            let elsewhere = SignedAgentFixture.edgeRequest(headers, authority: "other.test")
            #expect(await verifier.classify(elsewhere, now: Self.now)?.reason == "bad_signature")
            // Unsigned: no finding.
            #expect(await verifier.classify(SignedAgentFixture.edgeRequest([("user-agent", "curl/8")]), now: Self.now) == nil)
        }
    }

    @Test(arguments: [AgentDirectoryServer.Mode.slow(seconds: 5), .garbage, .notFound])
    func aDirectoryThatCannotBeHadLeavesADeclaredBotPromptlyAndIsNotRetriedAtOnce(_ mode: AgentDirectoryServer.Mode) async throws {
        try await withVerifier(mode) { verifier, server in
            let started = ContinuousClock.now
            let found = try await classify(verifier, origin: server.origin, nonce: "a")
            #expect(found == CallerClassification(.declaredBot, name: server.origin, reason: "directory_unavailable"))
            // Bounded by the 0.25 s directory timeout, not by the 5 s the slow origin takes.
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(try await classify(verifier, origin: server.origin, nonce: "b")?.reason == "directory_unavailable")
            #expect(server.fetches.load(ordering: .relaxed) == 1)
        }
    }

    @Test func aFullReplayGuardLeavesADeclaredBotRatherThanGrowing() async throws {
        try await withVerifier(.keys(json: SignedAgentFixture.directory, maxAge: nil), change: { settings, _ in settings.maxRememberedSignatures = 1 }) {
            verifier, server in
            #expect(try await classify(verifier, origin: server.origin, nonce: "a")?.callerClass == .signedAgent)
            #expect(try await classify(verifier, origin: server.origin, nonce: "b")
                == CallerClassification(.declaredBot, name: server.origin, reason: "replay_cache_full"))
            // Once the first has expired, there is room again.
            let later = Self.now + 120
            let again = try await classify(verifier, origin: server.origin, nonce: "c", created: later - 1, expires: later + 59, at: later)
            #expect(again?.callerClass == .signedAgent)
        }
    }

    @Test func onlyAllowedHostsAreFetchedAndNewFetchesShareABudget() async throws {
        try await withVerifier(.keys(json: SignedAgentFixture.directory, maxAge: nil), change: { settings, _ in
            settings.allowedOrigins = ["agents.example"]
        }) { verifier, server in
            let found = try await classify(verifier, origin: server.origin, nonce: "a")
            #expect(found == CallerClassification(.declaredBot, name: server.origin, reason: "directory_unavailable"))
            #expect(verifier.directoryFetches == 0)
        }
        try await withVerifier(.keys(json: SignedAgentFixture.directory, maxAge: nil), change: { settings, _ in
            settings.maxFetchesPerMinute = 2
            settings.directoryFailureTTLSeconds = 0
        }) { verifier, server in
            // Made-up origins (nothing listens there) use up the budget; the real one then waits its turn.
            for port in [1, 2, 3] {
                _ = try await classify(verifier, origin: "http://127.0.0.1:\(port)", nonce: "made-up-\(port)")
            }
            #expect(verifier.directoryFetches == 2)
            let refused = try await classify(verifier, origin: server.origin, nonce: "b")
            #expect(refused?.reason == "directory_unavailable")
            #expect(server.fetches.load(ordering: .relaxed) == 0)
            // Thirty seconds later one fetch has been earned back.
            let later = try await classify(verifier, origin: server.origin, nonce: "c", at: Self.now + 30)
            #expect(later?.callerClass == .signedAgent)
            #expect(server.fetches.load(ordering: .relaxed) == 1)
        }
    }

    @Test func privateOriginsAreNotFetchedUnlessAllowed() async throws {
        try await withVerifier(.keys(json: SignedAgentFixture.directory, maxAge: nil), change: { settings, _ in settings.allowPrivateOrigins = false }) {
            verifier, server in
            let found = try await classify(verifier, origin: server.origin, nonce: "a")
            #expect(found == CallerClassification(.declaredBot, name: server.origin, reason: "directory_unavailable"))
            #expect(server.fetches.load(ordering: .relaxed) == 0)
        }
    }

    @Test func configuredDirectoriesAreUsedWithoutFetching() async throws {
        try await withVerifier(.notFound, change: { settings, origin in
            settings.fetchDirectories = false
            settings.directories = [AgentDirectorySettings(origin: origin, keys: [AgentKey(x: SignedAgentFixture.signer.publicKey.x)])]
        }) { (verifier: SignedAgentVerifier, server: AgentDirectoryServer) async throws in
            #expect(try await classify(verifier, origin: server.origin, nonce: "a") == CallerClassification(.signedAgent, name: server.origin))
            // Without a Signature-Agent header, the configured key names its agent.
            #expect(try await classify(verifier, origin: nil, nonce: "b") == CallerClassification(.signedAgent, name: server.origin))
            // An agent neither configured nor fetched cannot be checked.
            #expect(try await classify(verifier, origin: "https://unknown-agent.example", nonce: "c")?.reason == "directory_unavailable")
            #expect(server.fetches.load(ordering: .relaxed) == 0)
        }
    }

    @Test func cacheControlSetsHowLongADirectoryIsKept() async throws {
        try await withVerifier(.notFound, change: { settings, _ in
            settings.directoryMaxTTLSeconds = 600
            settings.directoryDefaultTTLSeconds = 120
        }) { verifier, _ in
            let cache = AgentDirectoryCache(settings: verifier.settings, client: HTTPClient.shared, logger: Logger(label: "x"))
            #expect(cache.timeToLive(cacheControl: ["public, max-age=300"]) == 300)
            #expect(cache.timeToLive(cacheControl: ["max-age=86400"]) == 600)
            #expect(cache.timeToLive(cacheControl: []) == 120)
            #expect(cache.timeToLive(cacheControl: ["no-store"]) == 1)
            #expect(cache.timeToLive(cacheControl: ["max-age=-5, private"]) == 120)
        }
    }
}

/// Signed agents through a running gateway: the class each scenario gets, in the response's
/// `x-proxima-caller-class` and the verification-failure metric (docs/security.md, "Signed agents").
@Suite(.serialized) struct SignedAgentHTTPTests {
    static let question = #"{"model":"chat","messages":[{"role":"user","content":"What are your opening hours?"}]}"#

    func withGateway(_ mode: AgentDirectoryServer.Mode, _ body: (RunningGateway, AgentDirectoryServer) async throws -> Void) async throws {
        let directory = try await AgentDirectoryServer.start(mode)
        let upstream = try await FaultyUpstream.start()
        let gateway = try await RunningGateway.start(
            EdgePolicyTests.configuration(upstream: upstream) {
                $0.edge.agents.allowPrivateOrigins = true
                $0.edge.agents.directoryTimeoutSeconds = 0.25
            })
        do {
            try await gateway.run(stoppingAfter: upstream) { try await body(gateway, directory) }
        } catch {
            await directory.stop()
            throw error
        }
        await directory.stop()
    }

    func post(_ gateway: RunningGateway, origin: String, nonce: String, created: Double? = nil, expires: Double? = nil) async throws -> (TestHTTP.Reply, [(String, String)]) {
        let now = Date().timeIntervalSince1970
        let headers = try SignedAgentFixture.headers(
            origin: origin, authority: "127.0.0.1:\(gateway.port)", created: created ?? now - 1, expires: expires ?? now + 60, nonce: nonce)
        let reply = try await TestHTTP.post(gateway.baseURL + SignedAgentFixture.path, json: Self.question, headers: headers + [("user-agent", "agent/1.0")])
        return (reply, headers)
    }

    @Test func signedReplayedAndExpiredRequestsMeetTheirClassesPolicies() async throws {
        try await withGateway(.keys(json: SignedAgentFixture.directory, maxAge: 60)) { gateway, directory in
            let (signed, headers) = try await post(gateway, origin: directory.origin, nonce: "first")
            #expect(signed.status == 200)
            #expect(signed.headers.first(name: "x-proxima-caller-class") == "signed_agent")
            for index in 0..<5 {
                let (again, _) = try await post(gateway, origin: directory.origin, nonce: "more-\(index)")
                #expect(again.headers.first(name: "x-proxima-caller-class") == "signed_agent")
            }
            #expect(directory.fetches.load(ordering: .relaxed) == 1)

            // The same signed headers again: a replay, and impersonators are blocked by default.
            let replayed = try await TestHTTP.post(
                gateway.baseURL + SignedAgentFixture.path, json: Self.question, headers: headers + [("user-agent", "agent/1.0")])
            #expect(replayed.status == 403)
            #expect(replayed.errorObject?["code"] as? String == "caller_blocked")
            #expect(replayed.headers.first(name: "x-proxima-caller-class") == "impersonator")

            let now = Date().timeIntervalSince1970
            let (expired, _) = try await post(gateway, origin: directory.origin, nonce: "old", created: now - 300, expires: now - 200)
            #expect(expired.status == 403)
            #expect(expired.headers.first(name: "x-proxima-caller-class") == "impersonator")

            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_edge_verification_failures_total{kind="signature",reason="replayed"} 1"#))
            #expect(metrics.contains(#"proxima_edge_verification_failures_total{kind="signature",reason="expired"} 1"#))
        }
    }

    @Test func mutatedSignatureHeadersAndUserAgentsOverHTTPGetAPromptAnswer() async throws {
        try await withGateway(.keys(json: SignedAgentFixture.directory, maxAge: 60)) { gateway, directory in
            let now = Date().timeIntervalSince1970
            let valid = try SignedAgentFixture.headers(
                origin: directory.origin, authority: "127.0.0.1:\(gateway.port)", created: now - 1, expires: now + 60, nonce: "seed")
                + [("user-agent", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")]
            var random = SplitMix64(seed: 9421)
            for round in 0..<150 {
                // One header mutated per request, kept to bytes a header value may hold.
                var headers = valid
                let target = round % headers.count
                let mutated = Fuzzing.mutate(Array(headers[target].1.utf8), using: &random).map { $0 < 0x20 || $0 > 0x7E ? UInt8(ascii: "?") : $0 }
                headers[target].1 = String(decoding: mutated, as: UTF8.self).trimmingCharacters(in: .whitespaces)
                let started = ContinuousClock.now
                let reply = try await TestHTTP.post(gateway.baseURL + SignedAgentFixture.path, json: Self.question, headers: headers)
                #expect([200, 403, 429].contains(reply.status), "\(headers[target]) -> \(reply.status)")
                #expect(ContinuousClock.now - started < .seconds(5))
            }
        }
    }

    @Test func anExplanationDoesNotUseUpASignature() async throws {
        try await withGateway(.keys(json: SignedAgentFixture.directory, maxAge: 60)) { gateway, directory in
            let now = Date().timeIntervalSince1970
            // The same nonce signed for the explanation and then for the request: had the explanation
            // remembered it, the request would be a replay.
            let explaining = try SignedAgentFixture.headers(
                origin: directory.origin, authority: "127.0.0.1:\(gateway.port)", created: now - 1, expires: now + 60, nonce: "explained",
                path: "/v1/route/explain")
            let headers = try SignedAgentFixture.headers(
                origin: directory.origin, authority: "127.0.0.1:\(gateway.port)", created: now - 1, expires: now + 60, nonce: "explained")
            let explained = try await TestHTTP.post(
                gateway.baseURL + "/v1/route/explain", json: Self.question, headers: explaining + [("user-agent", "agent/1.0")])
            #expect((explained.json?["caller"] as? [String: Any])?["class"] as? String == "signed_agent", "\(explained.body.suffix(300))")
            let sent = try await TestHTTP.post(
                gateway.baseURL + SignedAgentFixture.path, json: Self.question, headers: headers + [("user-agent", "agent/1.0")])
            #expect(sent.status == 200)
            #expect(sent.headers.first(name: "x-proxima-caller-class") == "signed_agent")
        }
    }

    @Test func aDirectoryThatTimesOutLeavesADeclaredBotAnsweredPromptly() async throws {
        try await withGateway(.slow(seconds: 5)) { gateway, directory in
            let started = ContinuousClock.now
            let (reply, _) = try await post(gateway, origin: directory.origin, nonce: "a")
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "x-proxima-caller-class") == "declared_bot")
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_edge_verification_failures_total{kind="signature",reason="directory_unavailable"} 1"#))
        }
    }
}
