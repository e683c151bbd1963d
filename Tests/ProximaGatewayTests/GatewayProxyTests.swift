import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ProximaCore
import Synchronization
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// The gateway over real HTTP in front of `FaultyUpstream`, for the failure modes a real engine cannot
/// be made to show on demand.
@Suite(.serialized) struct GatewayProxyTests {
    /// `chat` is served by every endpoint under the upstream name given; the faulty upstream acts on it.
    static func configuration(_ endpoints: [(url: String, upstreamModel: String)], timeouts: TimeoutSettings = .init())
        -> ProximaConfiguration
    {
        var configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "lab", latitude: 1, longitude: 2)],
            endpoints: endpoints.enumerated().map { index, endpoint in
                EndpointSettings(
                    name: "ep\(index)", url: endpoint.url, site: "lab", engine: .openai,
                    models: [.init(name: "chat", upstream: endpoint.upstreamModel)],
                    apiKeyEnv: index == 0 ? "UPSTREAM_KEY" : nil)
            })
        configuration.server.timeouts = timeouts
        configuration.server.maxRequestBodyBytes = 64 * 1024
        return configuration
    }

    static let chatBody = #"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#
    static let streamBody = #"{"model":"chat","messages":[{"role":"user","content":"hi"}],"stream":true}"#

    func withGateway(
        _ endpoints: [(url: String, upstreamModel: String)], timeouts: TimeoutSettings = .init(),
        _ body: (RunningGateway) async throws -> Void
    ) async throws {
        let gateway = try await RunningGateway.start(
            Self.configuration(endpoints, timeouts: timeouts), environment: ["UPSTREAM_KEY": "endpoint-secret"])
        do {
            try await body(gateway)
        } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }

    @Test func proxiesAPlainRequestWithTheEndpointsKeyNotTheCallers() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "ok")]) { gateway in
            let reply = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions", json: Self.chatBody,
                headers: [("authorization", "Bearer caller-secret"), ("x-request-id", "req-123"), ("x-proxima-client-location", "1,2")])
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "x-request-id") == "req-123")
            #expect(reply.headers.first(name: "x-proxima-endpoint") == "ep0")
            #expect(reply.headers.first(name: "x-proxima-site") == "lab")
            #expect(((reply.json?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String == "Hello!")
            let sent = upstream.lastHeaders.withLock { $0 }
            #expect(sent[.authorization] == "Bearer endpoint-secret")
            #expect(sent[values: .authorization].count == 1)
            #expect(sent[.init("x-request-id")!] == "req-123")
            #expect(sent[.init("x-proxima-client-location")!] == nil, "caller headers reach only emulated endpoints")
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_tokens_total{model="chat",kind="completion",source="reported"} 3"#))
            #expect(metrics.contains("proxima_gateway_overhead_seconds_count 1"))
            #expect(!metrics.contains("caller-secret") && !metrics.contains("endpoint-secret"))
        }
    }

    @Test func overheadIsTimedFromTheConnectionAndItsStampsNeverLeaveTheGateway() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "ok")]) { gateway in
            // A caller's forged stamps (an arrival days ahead, a huge upstream wait) change nothing.
            let forged = [("x-proxima-received-ns", "999999999999999"), ("x-proxima-upstream-wait-ns", "999999999999")]
            for body in [Self.chatBody, Self.streamBody] {
                let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: body, headers: forged)
                #expect(reply.status == 200)
                #expect(reply.headers.first(name: "x-proxima-upstream-wait-ns") == nil)
                #expect(reply.headers.first(name: "x-proxima-received-ns") == nil)
            }
            let sent = upstream.lastHeaders.withLock { $0 }
            #expect(sent[.init("x-proxima-received-ns")!] == nil && sent[.init("x-proxima-upstream-wait-ns")!] == nil)
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains("proxima_gateway_overhead_seconds_count 2"))
            func sum(_ prefix: String) -> Double? {
                metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last ?? "") }
            }
            let overhead = sum("proxima_gateway_overhead_seconds_sum ")
            #expect(overhead != nil && overhead! > 0 && overhead! < 1, "overhead sum \(overhead ?? -1) s")
            // Durations run from the gateway's own stamp, so they are positive and short.
            let duration = sum("proxima_request_duration_seconds_sum{")
            #expect(duration != nil && duration! > 0 && duration! < 5, "duration sum \(duration ?? -1) s")
        }
    }

    @Test func streamsWithHiddenUsageChunkWhenTheCallerDidNotAskForIt() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "ok")]) { gateway in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "content-type") == "text/event-stream")
            #expect(upstream.lastBody.withLock { $0 }.contains(#""stream_options":{"include_usage":true}"#))
            let events = reply.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.count == 4)
            #expect(events.last == "data: [DONE]")
            #expect(!reply.body.contains("prompt_tokens"))
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_tokens_total{model="chat",kind="prompt",source="reported"} 5"#))

            let asked = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions",
                json: #"{"model":"chat","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#)
            #expect(asked.body.contains(#""completion_tokens":3"#))
        }
    }

    @Test func relaysEachEventAsItArrives() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "slow-stream")]) { gateway in
            var request = HTTPClientRequest(url: gateway.baseURL + "/v1/chat/completions")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: Self.streamBody))
            let start = ContinuousClock.now
            let response = try await TestHTTP.client.execute(request, timeout: .seconds(30))
            var arrivals: [Duration] = []
            for try await chunk in response.body where chunk.readableBytes > 0 {
                arrivals.append(ContinuousClock.now - start)
            }
            // The upstream paces 25 events 200 ms apart: a buffering proxy would deliver them in a few lumps.
            #expect(arrivals.count >= 20)
            #expect(arrivals[0] < .seconds(2))
            #expect(arrivals.last! - arrivals[0] > .seconds(3))
        }
    }

    @Test func retriesOnAnotherEndpointBeforeTheFirstByte() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        let closedPort = try freeLoopbackPort()
        try await withGateway([("http://127.0.0.1:\(closedPort)/v1", "ok"), (upstream.baseURL, "fail500"), (upstream.baseURL, "ok")]) { gateway in
            for _ in 0..<6 {
                let plain = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.chatBody)
                #expect(plain.status == 200)
                #expect(plain.headers.first(name: "x-proxima-endpoint") == "ep2")
                let stream = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody)
                #expect(stream.status == 200)
                #expect(stream.body.hasSuffix("data: [DONE]\n\n"))
            }
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_upstream_errors_total{endpoint="ep0",kind="connect"}"#))
            #expect(metrics.contains(#"proxima_upstream_errors_total{endpoint="ep1",kind="status_5xx"}"#))
        }
    }

    @Test func answers502WhenEveryEndpointFailsAnd504OnTimeout() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "fail500")]) { gateway in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.chatBody)
            #expect(reply.status == 502)
            #expect(reply.errorObject?["code"] as? String == "upstream_error")
            #expect((reply.errorObject?["message"] as? String)?.contains("500") == true)
        }
        try await withGateway([(upstream.baseURL, "hang")], timeouts: .init(firstByte: 0.5)) { gateway in
            // A plain request may take first_byte plus 0.2 s per token it may generate: 0.7 s here.
            let body = #"{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":1}"#
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: body)
            #expect(reply.status == 504)
            #expect(reply.errorObject?["code"] as? String == "upstream_timeout")
            #expect(reply.headers.first(name: "x-request-id") != nil)
            #expect(try await inFlight(gateway) == 0)
        }
    }

    @Test func endsABrokenStreamWithAnErrorEventNotASilentTruncation() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "stream-abort")]) { gateway in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody)
            #expect(reply.status == 200)
            let events = reply.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.count == 3)
            #expect(events.last?.hasPrefix("data: {\"error\":") == true)
            #expect(!reply.body.contains("[DONE]"))
        }
        try await withGateway([(upstream.baseURL, "stream-stall")], timeouts: .init(idle: 0.5)) { gateway in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody)
            let events = reply.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.count == 2)
            #expect(events.last?.contains("upstream_timeout") == true)
            #expect(try await inFlight(gateway) == 0)
        }
    }

    @Test func aCallerThatLeavesCancelsTheUpstreamStream() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "slow-stream")]) { gateway in
            let reader = Task {
                var request = HTTPClientRequest(url: gateway.baseURL + "/v1/chat/completions")
                request.method = .POST
                request.body = .bytes(ByteBuffer(string: Self.streamBody))
                let response = try await TestHTTP.client.execute(request, timeout: .seconds(30))
                var count = 0
                for try await _ in response.body {
                    count += 1
                    if count == 2 { return }
                }
            }
            _ = try? await reader.value
            #expect(try await eventually { upstream.received.load(ordering: .relaxed) == 1 })
            #expect(try await eventually { upstream.activeStreams.load(ordering: .relaxed) == 0 })
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_caller_disconnects_total{model="chat"} 1"#))
            #expect(try await eventually { try await inFlight(gateway) == 0 })
        }
    }

    @Test func aCallerThatLeavesBeforeAPlainAnswerCancelsItsUpstreamRequest() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "hang")]) { gateway in
            var request = HTTPClientRequest(url: gateway.baseURL + "/v1/chat/completions")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: Self.chatBody))
            // The caller gives up after 300 ms and closes its connection; the upstream would hang for 600 s.
            _ = try? await TestHTTP.client.execute(request, timeout: .milliseconds(300))
            #expect(try await eventually { try await inFlight(gateway) == 0 })
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_caller_disconnects_total{model="chat"} 1"#))
            #expect(upstream.received.load(ordering: .relaxed) == 1)
        }
    }

    @Test func aFullConnectionPoolRefusesWithoutOpeningTheBreaker() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        var configuration = Self.configuration([(upstream.baseURL, "hang")])
        configuration.server.maxConnectionsPerUpstream = 1
        let gateway = try await RunningGateway.start(configuration, environment: ["UPSTREAM_KEY": "k"])
        let url = gateway.baseURL + "/v1/chat/completions"
        // One request holds the only connection; the next ones find the pool full.
        let holder = Task { try await TestHTTP.post(url, json: Self.chatBody) }
        #expect(try await eventually { upstream.received.load(ordering: .relaxed) == 1 })
        for _ in 0..<6 {
            let reply = try await TestHTTP.post(url, json: Self.chatBody)
            #expect(reply.status == 503)
            #expect((reply.errorObject?["message"] as? String)?.contains("connections busy") == true)
        }
        // Six refusals, and the endpoint is still healthy: a full pool is not the endpoint's failure.
        let readiness = try await TestHTTP.get(gateway.baseURL + "/readyz")
        #expect(readiness.status == 200 && readiness.body.contains(#""breaker":"closed""#))
        let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
        #expect(metrics.contains(#"proxima_upstream_errors_total{endpoint="ep0",kind="pool_full"} 6"#))
        holder.cancel()
        await gateway.stop()
    }

    @Test func badInputGetsItsStatusAndAnOpenAIErrorBody() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "ok")]) { gateway in
            let url = gateway.baseURL + "/v1/chat/completions"
            let cases: [(String, Int, String, String?)] = [
                ("{not json", 400, "invalid_json", nil),
                (#"{"messages":[{"role":"user","content":"x"}]}"#, 400, "invalid_request", "model"),
                (#"{"model":"chat","messages":"x"}"#, 400, "invalid_request", "messages"),
                (#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#, 404, "model_not_found", "model"),
                (#"{"model":"chat","messages":[{"role":"user","content":""# + String(repeating: "x", count: 70_000) + #""}]}"#,
                 413, "request_too_large", nil),
            ]
            for (body, status, code, param) in cases {
                let reply = try await TestHTTP.post(url, json: body)
                #expect(reply.status == status, "\(code)")
                #expect(reply.errorObject?["code"] as? String == code)
                #expect(reply.errorObject?["param"] as? String == param)
                #expect(reply.errorObject?["message"] is String)
                #expect(reply.headers.first(name: "x-request-id") != nil)
            }
            let unknown = try await TestHTTP.get(gateway.baseURL + "/v1/unknown")
            #expect(unknown.status == 404)
            #expect(unknown.errorObject?["code"] as? String == "unknown_url")
            #expect(upstream.received.load(ordering: .relaxed) == 0)
            // The gateway is still serving after all of that, and has nothing left in flight.
            #expect(try await TestHTTP.post(url, json: Self.chatBody).status == 200)
            #expect(try await inFlight(gateway) == 0)
        }
    }

    @Test func listsModelsAndReportsHealth() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "ok")]) { gateway in
            let models = try await TestHTTP.get(gateway.baseURL + "/v1/models")
            #expect(((models.json?["data"] as? [[String: Any]])?.map { $0["id"] as? String }) == ["chat"])
            #expect(try await TestHTTP.get(gateway.baseURL + "/v1/models/chat").status == 200)
            #expect(try await TestHTTP.get(gateway.baseURL + "/v1/models/other").status == 404)
            #expect(try await TestHTTP.get(gateway.baseURL + "/healthz").status == 200)
            let ready = try await TestHTTP.get(gateway.baseURL + "/readyz")
            #expect(ready.status == 200)
            #expect(ready.body.contains(#""healthy":true"#))
        }
    }

    @Test func runServesUntilStoppedWithAndWithoutAConfigurationFile() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        for reloadable in [false, true] {
            var configuration = Self.configuration([(upstream.baseURL, "ok")])
            configuration.server.port = 0
            let fixed = configuration
            var source: (@Sendable () throws -> ProximaConfiguration)?
            if reloadable { source = { @Sendable in fixed } }
            let gateway = try Gateway(
                configuration: configuration, environment: ["UPSTREAM_KEY": "k"],
                logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }), reloadSource: source)
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            let running = Task { try await gateway.run { continuation.yield($0.localAddress?.port ?? 0) } }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            // Every service keeps running: none ends the group early.
            try await Task.sleep(for: .milliseconds(300))
            let reply = try await TestHTTP.post(
                "http://127.0.0.1:\(port)/v1/chat/completions", json: #"{"model":"chat","messages":[{"role":"user","content":"x"}]}"#)
            #expect(reply.status == 200, "reloadable: \(reloadable)")
            running.cancel()
            _ = try? await running.value
        }
    }

    @Test func aLateFirstEventIsHedgedOnTheRunnerUpAndTheLoserIsCancelled() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        var configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "near", latitude: 1, longitude: 2), SiteSettings(name: "far", latitude: 40, longitude: 2)],
            endpoints: [
                EndpointSettings(name: "hanging", url: upstream.baseURL, site: "near", models: [.init(name: "chat", upstream: "hang")]),
                EndpointSettings(name: "healthy", url: upstream.baseURL, site: "far", models: [.init(name: "chat", upstream: "ok")]),
            ])
        configuration.server.location = Coordinates(latitude: 1, longitude: 2)
        configuration.routing.policy = "nearest"
        configuration.routing.hedging = HedgingSettings(enabled: true, delayFactor: 1, minimumDelaySeconds: 0.2)
        let gateway = try await RunningGateway.start(configuration, environment: ["PROXIMA_ADMIN_TOKEN": "t"])
        defer { Task { await gateway.stop() } }
        let started = ContinuousClock.now
        let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody)
        #expect(ContinuousClock.now - started < .seconds(5), "answered by the hedge, not after the 120 s first-byte limit")
        #expect(reply.status == 200)
        #expect(reply.headers.first(name: "x-proxima-endpoint") == "healthy")
        #expect(reply.body.hasSuffix("data: [DONE]\n\n"))
        let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
        #expect(metrics.contains(#"proxima_hedges_total{model="chat",outcome="sent"} 1"#))
        #expect(metrics.contains(#"proxima_hedges_total{model="chat",outcome="hedge_won"} 1"#))
        let settled = try await eventually {
            var request = HTTPClientRequest(url: gateway.baseURL + "/admin/fleet")
            request.headers.add(name: "authorization", value: "Bearer t")
            let endpoints = try await TestHTTP.send(request).json?["endpoints"] as? [[String: Any]] ?? []
            return endpoints.allSatisfy { $0["in_flight"] as? Int == 0 }
        }
        #expect(settled, "the cancelled leg is no longer counted in flight")
    }

    @Test func theAdminAPIIsOffWithoutAToken() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        try await withGateway([(upstream.baseURL, "ok")]) { gateway in
            var request = HTTPClientRequest(url: gateway.baseURL + "/admin/fleet")
            request.headers.add(name: "authorization", value: "Bearer anything")
            let reply = try await TestHTTP.send(request)
            #expect(reply.status == 404)
            #expect(reply.errorObject?["code"] as? String == "admin_disabled")
            #expect((reply.errorObject?["message"] as? String)?.contains("PROXIMA_ADMIN_TOKEN") == true)
        }
    }

    @Test func gracefulShutdownLetsAnInFlightStreamFinish() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        let gateway = try await RunningGateway.start(
            Self.configuration([(upstream.baseURL, "slow-stream")]), environment: ["UPSTREAM_KEY": "k"])
        let reader = Task { try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.streamBody) }
        #expect(try await eventually { upstream.activeStreams.load(ordering: .relaxed) == 1 })
        await gateway.stop()
        let reply = try await reader.value
        #expect(reply.body.hasSuffix("data: [DONE]\n\n"))
        #expect(reply.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.count == 26)
    }
}

/// The gateway's `proxima_requests_in_flight` gauge.
func inFlight(_ gateway: RunningGateway) async throws -> Double {
    let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
    for line in metrics.split(separator: "\n") where line.hasPrefix("proxima_requests_in_flight ") {
        return Double(line.split(separator: " ").last ?? "") ?? -1
    }
    return -1
}

/// Polls `condition` every 20 ms for up to `timeout`; true as soon as it holds.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
