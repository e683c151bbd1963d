import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ProximaCore
import Synchronization
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

#if canImport(Glibc)
import Glibc
#endif

/// Endpoint claims end exactly once whatever the caller or the upstream does, and an endpoint is
/// blamed only for its own failures.
@Suite(.serialized) struct ClaimLifecycleTests {
    static let chatBody = GatewayProxyTests.chatBody
    static let streamBody = GatewayProxyTests.streamBody

    /// Every endpoint's own counts (not the global gauge, which hides a leak).
    static func counts(_ gateway: RunningGateway) -> [(inFlight: Int, awaiting: Int, prefill: Int)] {
        let (snapshot, telemetry, _) = gateway.gateway.state.current()
        return snapshot.fleet.endpoints.map { endpoint in
            let status = telemetry[endpoint.index]
            return (status.inFlight, status.awaitingFirstToken, status.pendingPrefillTokens)
        }
    }

    static func settled(_ gateway: RunningGateway) async throws -> Bool {
        try await eventually { counts(gateway).allSatisfy { $0.inFlight == 0 && $0.awaiting == 0 && $0.prefill == 0 } }
    }

    /// Requests the gateway has finished recording (whatever their outcome).
    static func recorded(_ gateway: RunningGateway) -> Int {
        let lines = String(decoding: gateway.gateway.metrics.exposition(), as: UTF8.self).split(separator: "\n")
        return lines.filter { $0.hasPrefix("proxima_requests_total{") }.reduce(0) { total, line in
            total + (Int(Double(line.split(separator: " ").last ?? "") ?? 0))
        }
    }

    // MARK: claims, unit

    static func state(endpoints: Int = 1) throws -> RoutingState {
        let configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "lab", latitude: 0, longitude: 0)],
            endpoints: (0..<endpoints).map {
                EndpointSettings(name: "ep\($0)", url: "http://127.0.0.1:9/v1", site: "lab", models: [.init(name: "chat")])
            })
        return try RoutingState(configuration: configuration, environment: [:])
    }

    static func ref(_ state: RoutingState, prefill: Int = 0) -> EndpointRef {
        EndpointRef(index: 0, name: "ep0", generation: state.snapshot.generation, prefillTokens: prefill)
    }

    @Test func aClaimEndsOnceHoweverOftenItIsEnded() throws {
        let state = try Self.state()
        let claim = try #require(state.claim(Self.ref(state, prefill: 40), prefixBlocks: []))
        #expect(state.current().1[0].inFlight == 1)
        #expect(state.current().1[0].pendingPrefillTokens == 40)
        claim.firstToken(ttft: 0.1, predicted: nil)
        claim.firstToken(ttft: 0.1, predicted: nil)
        claim.succeed()
        claim.fail()
        claim.abandon()
        let status = state.current().1[0]
        #expect(status.inFlight == 0 && status.awaitingFirstToken == 0 && status.pendingPrefillTokens == 0)
        #expect(status.failures == 0, "the first end counts; a later fail is ignored")
    }

    @Test func aDroppedClaimAbandonsItself() throws {
        let state = try Self.state()
        do {
            let claim = state.claim(Self.ref(state, prefill: 10), prefixBlocks: [])
            #expect(claim != nil)
            #expect(state.current().1[0].awaitingFirstToken == 1)
        }
        let status = state.current().1[0]
        #expect(status.inFlight == 0 && status.awaitingFirstToken == 0 && status.pendingPrefillTokens == 0)
        #expect(status.failures == 0 && status.breaker.storedState == .closed)
    }

    @Test func aDroppedProbeFreesTheHalfOpenSlot() throws {
        let state = try Self.state()
        for _ in 0..<3 { try #require(state.claim(Self.ref(state), prefixBlocks: [])).fail() }
        #expect(state.claim(Self.ref(state), prefixBlocks: []) == nil, "the breaker is open")
        state.recordCheck(Self.ref(state), succeeded: true)  // half-open: one probe may go
        do {
            let probe = state.claim(Self.ref(state), prefixBlocks: [])
            #expect(probe != nil)
            #expect(state.claim(Self.ref(state), prefixBlocks: []) == nil, "the only probe slot is taken")
        }
        // The probe was dropped (its caller vanished): the healthy endpoint can be probed again.
        let next = state.claim(Self.ref(state), prefixBlocks: [])
        #expect(next != nil)
        next?.succeed()
        #expect(state.current().1[0].breaker.storedState == .closed)
    }

    @Test func aRequestAccountIsBookedOnce() throws {
        let metrics = GatewayMetrics()
        let endpoint = try Self.state().snapshot.fleet.endpoints[0]
        do {
            let account = RequestAccount(
                requestID: "r1", operation: .chatCompletions, arrival: .now, measuredByConnection: true, metrics: metrics,
                logger: Logger(label: "test"))
            account.describe(model: "chat", stream: false)
            account.finish(status: 200, endpoint: endpoint)
            account.finish(status: 499, endpoint: endpoint)
        }
        do {
            // Dropped unfinished (a response body never written): it books itself as 499.
            _ = RequestAccount(
                requestID: "r2", operation: .chatCompletions, arrival: .now, measuredByConnection: true, metrics: metrics,
                logger: Logger(label: "test"))
        }
        let lines = String(decoding: metrics.exposition(), as: UTF8.self).split(separator: "\n")
        let requests = lines.filter { $0.hasPrefix("proxima_requests_total{") }
        #expect(requests.count == 2, "one line per outcome: \(requests)")
        #expect(requests.contains { $0.contains(#"endpoint="ep0""#) && $0.contains(#"status="200""#) && $0.hasSuffix(" 1") })
        #expect(requests.contains { $0.contains(#"endpoint="none""#) && $0.contains(#"status="499""#) && $0.hasSuffix(" 1") })
        #expect(lines.contains { $0.hasPrefix("proxima_requests_in_flight 0") })
    }

    @Test func theAccountEndsTheServingClaimWithItsVerdictOnce() throws {
        let state = try Self.state()
        let endpoint = state.snapshot.fleet.endpoints[0]
        let claim = try #require(state.claim(Self.ref(state), prefixBlocks: []))
        let account = RequestAccount(
            requestID: "r1", operation: .chatCompletions, arrival: .now, measuredByConnection: true, metrics: GatewayMetrics(),
            logger: Logger(label: "test"))
        account.finish(status: 502, endpoint: endpoint, claim: claim, verdict: .failed)
        account.finish(status: 200, endpoint: endpoint, claim: claim, verdict: .succeeded(timePerOutputToken: nil))
        let status = state.current().1[0]
        #expect(status.inFlight == 0 && status.awaitingFirstToken == 0)
        #expect(status.failures == 1, "the first booking's verdict counts; the second is ignored")
        #expect(claim.isEnded && account.isFinished)
    }

    // MARK: callers that leave

    /// Sends `request` on a raw socket, then half-closes, closes or resets it.
    enum Departure { case halfClose, close, reset }

    static func send(_ request: String, port: Int, then departure: Departure, readAnswer: Bool = false) throws -> String {
        let caller = try RawCaller(port: port)
        caller.send(request)
        switch departure {
        case .halfClose:
            caller.shutdownWrite()
            return readAnswer ? caller.readUntilClosed(timeout: 10).text : ""
        case .close:
            return ""
        case .reset:
            caller.reset()
            return ""
        }
    }

    static func httpRequest(_ body: String, path: String = "/v1/chat/completions") -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    @Test func aHalfClosingCallerGetsItsAnswerAndLeavesNoClaim() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await GatewayProxyTests().withGateway([(upstream.baseURL, "ok")]) { gateway in
            for body in [Self.chatBody, Self.streamBody] {
                let port = gateway.port
                let answer = try await onThread {
                    try Self.send(Self.httpRequest(body), port: port, then: .halfClose, readAnswer: true)
                }
                #expect(answer.contains("HTTP/1.1 200 OK"), "half-closing is legal HTTP: the caller is still reading")
                #expect(answer.contains("Hello!") || answer.contains("data: [DONE]"))
            }
            #expect(try await Self.settled(gateway))
        }
    }

    @Test func callersThatCloseOrResetRightAfterSendingLeaveNoClaim() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        var configuration = GatewayProxyTests.configuration([(upstream.baseURL, "slow-stream")])
        configuration.endpoints[0].maxConcurrency = 4
        let gateway = try await RunningGateway.start(configuration, environment: ["UPSTREAM_KEY": "k"])
        defer { Task { await gateway.stop() } }
        let port = gateway.port
        for departure in [Departure.close, .reset, .halfClose] {
            for body in [Self.chatBody, Self.streamBody] {
                for _ in 0..<6 {
                    _ = try await onThread { try Self.send(Self.httpRequest(body), port: port, then: departure) }
                }
            }
        }
        // The requests must have been seen through before the counts mean anything: one still being read
        // would claim its endpoint after the counts were found at zero. (A reset may discard a request
        // unread, so the count is awaited until it stops moving rather than until it reaches 36.)
        var last = -1
        #expect(try await eventually {
            try await Task.sleep(for: .milliseconds(300))
            let now = Self.recorded(gateway)
            defer { last = now }
            return now == last && now > 0 && Self.counts(gateway).allSatisfy { $0.inFlight == 0 }
        })
        #expect(try await Self.settled(gateway), "every claim ended: \(Self.counts(gateway))")
        // With a limit of 4 concurrent requests, a leak of four would refuse everything from here on.
        let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody)
        #expect(reply.status == 200)
        #expect(try await Self.settled(gateway))
    }

    @Test func bothLegsOfAHedgeAnsweringTogetherLeaveNoClaim() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        var configuration = GatewayProxyTests.configuration([(upstream.baseURL, "stream-late"), (upstream.baseURL, "stream-late")])
        // The hedge leaves at once and both legs take 50 ms to their first event: they race on every request.
        configuration.routing.hedging = HedgingSettings(enabled: true, delayFactor: 1, minimumDelaySeconds: 0)
        let gateway = try await RunningGateway.start(configuration, environment: ["UPSTREAM_KEY": "k"])
        defer { Task { await gateway.stop() } }
        for _ in 0..<30 {
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody)
            #expect(reply.status == 200)
        }
        #expect(try await Self.settled(gateway), "the losing legs were abandoned: \(Self.counts(gateway))")
    }

    // MARK: blame

    @Test(arguments: UpstreamClientKind.allCases)
    func aLongPlainGenerationIsNotAnEndpointFailure(_ client: UpstreamClientKind) async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        // The upstream answers after 2 s; idle and first-byte limits are 1 s, but 40 tokens at 0.1 s
        // each give the plain request 5 s.
        var configuration = GatewayProxyTests.configuration(
            [(upstream.baseURL, "slow-plain"), (upstream.baseURL, "slow-plain")],
            timeouts: TimeoutSettings(connect: 1, firstByte: 1, idle: 1, total: 30, perOutputToken: 0.1))
        configuration.server.upstreamClient = client
        let gateway = try await RunningGateway.start(configuration, environment: ["UPSTREAM_KEY": "k"])
        defer { Task { await gateway.stop() } }
        let body = #"{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":40}"#
        let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: body)
        #expect(reply.status == 200)
        #expect(upstream.received.load(ordering: .relaxed) == 1, "generated once, not again on another endpoint")
        #expect(gateway.gateway.state.current().1.statuses.allSatisfy { $0.failures == 0 })
    }

    @Test func aPlainRequestIsBoundByTheTotalLimitAndNotRetried() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        let timeouts = TimeoutSettings(connect: 1, firstByte: 60, idle: 60, total: 1, perOutputToken: 0.1)
        try await GatewayProxyTests().withGateway([(upstream.baseURL, "slow-plain"), (upstream.baseURL, "slow-plain")], timeouts: timeouts) {
            gateway in
            let started = ContinuousClock.now
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.chatBody)
            #expect(reply.status == 504)
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(upstream.received.load(ordering: .relaxed) == 1)
            #expect(gateway.gateway.state.current().1.statuses.allSatisfy { $0.failures == 0 }, "the request's own limit is not the endpoint's fault")
            #expect(try await Self.settled(gateway))
        }
    }

    @Test func anAnswerOverTheSizeLimitIsNeitherRetriedNorBlamed() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        var configuration = GatewayProxyTests.configuration([(upstream.baseURL, "big"), (upstream.baseURL, "big")])
        configuration.server.maxResponseBodyBytes = 64 * 1024
        let gateway = try await RunningGateway.start(configuration, environment: ["UPSTREAM_KEY": "k"])
        defer { Task { await gateway.stop() } }
        let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.chatBody)
        #expect(reply.status == 502)
        #expect((reply.errorObject?["message"] as? String)?.contains("larger than") == true)
        #expect(upstream.received.load(ordering: .relaxed) == 1)
        #expect(gateway.gateway.state.current().1.statuses.allSatisfy { $0.failures == 0 })
        #expect(try await Self.settled(gateway))
    }

    @Test func anErrorEventInsideAStreamIsTheEndpointsFailure() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await GatewayProxyTests().withGateway([(upstream.baseURL, "stream-error")]) { gateway in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody)
            #expect(reply.status == 200)
            #expect(reply.body.contains("engine overloaded"))
            #expect(try await eventually { gateway.gateway.state.current().1[0].failures == 1 })
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"status="502""#))
        }
    }

    @Test func aStreamThatOpensWithAnErrorIsServedByTheNextEndpoint() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await GatewayProxyTests().withGateway([(upstream.baseURL, "stream-error-first"), (upstream.baseURL, "ok")]) { gateway in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "x-proxima-endpoint") == "ep1")
            #expect(!reply.body.contains("engine overloaded"))
            #expect(reply.body.hasSuffix("data: [DONE]\n\n"))
        }
    }

    @Test func aKeepAliveCommentIsNotTheFirstToken() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await GatewayProxyTests().withGateway([(upstream.baseURL, "stream-comment-first")]) { gateway in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody)
            #expect(reply.status == 200)
            #expect(reply.body.hasPrefix(": keep-alive\n\n"), "the comment is still relayed")
            let ttft = try #require(gateway.gateway.state.current().1[0].ttft)
            #expect(ttft >= 0.9, "time to first token counts to the first data, not to the keep-alive (got \(ttft) s)")
        }
    }
}
