import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// Numbers from a caller, an engine or the admin API never stop the gateway: each is refused where it
/// enters or clamped, and the next ordinary request is served.
@Suite(.serialized) struct UntrustedNumberGatewayTests {
    static func start(_ upstream: FaultyUpstream, contextLength: Int? = 8_192) async throws -> RunningGateway {
        var configuration = GatewayProxyTests.configuration([(upstream.baseURL, "ok")])
        configuration.models = [ModelSettings(name: "chat", contextLength: contextLength)]
        return try await RunningGateway.start(configuration, environment: ["UPSTREAM_KEY": "k", "PROXIMA_ADMIN_TOKEN": "secret"])
    }

    static func admin(_ gateway: RunningGateway, _ method: HTTPMethod, _ path: String, body: String) async throws -> TestHTTP.Reply {
        var request = HTTPClientRequest(url: gateway.baseURL + "/admin" + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer secret")
        request.body = .bytes(ByteBuffer(string: body))
        return try await TestHTTP.send(request)
    }

    static func stillServes(_ gateway: RunningGateway) async throws {
        #expect(try await TestHTTP.get(gateway.baseURL + "/healthz").status == 200)
        #expect(try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: GatewayProxyTests.chatBody).status == 200)
        #expect(try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: GatewayProxyTests.streamBody).status == 200)
    }

    @Test(arguments: ["9223372036854775807", "9223372036854775806", "2147483648", "1e400", "-9223372036854775808"])
    func aHugeMaxTokensGets400AndTheProcessLives(value: String) async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        let gateway = try await Self.start(upstream)
        for path in ["/v1/chat/completions", "/v1/route/explain"] {
            let reply = try await TestHTTP.post(
                gateway.baseURL + path, json: #"{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":\#(value)}"#)
            #expect(reply.status == 400, "\(path): \(reply.body)")
            // Beyond a double it is not even JSON the gateway takes: refused as such.
            #expect(reply.errorObject?["param"] as? String == (value == "1e400" ? nil : "max_tokens"), "\(reply.body)")
        }
        try await Self.stillServes(gateway)
        await gateway.stop()
    }

    @Test(arguments: ["1e308", "+Inf", "NaN", "1.7976931348623157e308"])
    func anAbsurdEngineLoadDoesNotStopTheNextRequest(value: String) async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        let gateway = try await Self.start(upstream)
        let metrics = "vllm:num_requests_running \(value)\nvllm:num_requests_waiting \(value)\nvllm:kv_cache_usage_perc \(value)\n"
        let (snapshot, _, _) = gateway.gateway.state.current()
        gateway.gateway.state.recordEngineRead(
            EndpointRef(index: 0, name: "ep0", generation: snapshot.generation),
            snapshot: EngineLoadSnapshot(samples: PrometheusText.parse(metrics)))
        try await Self.stillServes(gateway)
        let explained = try await TestHTTP.post(gateway.baseURL + "/v1/route/explain", json: GatewayProxyTests.chatBody)
        #expect(explained.status == 200)
        await gateway.stop()
    }

    @Test(arguments: [
        (#"{"hedging":{"enabled":true,"delay_factor":1e300,"minimum_delay_seconds":0.1}}"#, "routing.hedging.delay_factor"),
        (#"{"hedging":{"enabled":true,"delay_factor":2,"minimum_delay_seconds":1e300}}"#, "routing.hedging.minimum_delay_seconds"),
        (#"{"expected_output_tokens":9223372036854775807}"#, "routing.expected_output_tokens"),
        (#"{"ttft_target_seconds":1e300,"policy":"slo"}"#, "routing.ttft_target_seconds"),
        (#"{"tie_tolerance":1e300}"#, "routing.tie_tolerance"),
        (#"{"weights":{"ttft":1e300,"cost":0,"affinity":0,"headroom":0,"proximity":0}}"#, "routing.weights.ttft"),
        (#"{"breaker":{"failure_threshold":1,"failure_rate_threshold":0.5,"minimum_requests":1,"open_seconds":1e300,"maximum_open_seconds":1e300,"half_open_probes":1}}"#, "routing.breaker.open_seconds"),
        (#"{"telemetry":{"scrape_interval_seconds":1e300,"stale_after_seconds":1e300,"observation_half_life_seconds":1e300}}"#, "routing.telemetry.scrape_interval_seconds"),
    ])
    func absurdRoutingNumbersFromTheAdminAPIAreRefused(patch: String, key: String) async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        let gateway = try await Self.start(upstream)
        let reply = try await Self.admin(gateway, .PATCH, "/routing", body: patch)
        #expect(reply.status == 400, "\(reply.body)")
        #expect((reply.errorObject?["message"] as? String)?.contains(key) == true, "\(reply.body)")
        try await Self.stillServes(gateway)
        await gateway.stop()
    }
}

/// The admin API adds endpoints only with a clean URL and a key variable the configuration allows it:
/// otherwise the admin token could be sent to a host of one's choice, or a URL could write headers.
@Suite(.serialized) struct AdminEndpointInputTests {
    @Test func anEndpointAddedByTheAdminAPIHasACleanURLAndAnAllowedKeyVariable() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        var configuration = GatewayProxyTests.configuration([(upstream.baseURL, "ok")])
        configuration.admin.allowedKeyEnv = ["HOSTED_KEY"]
        let gateway = try await RunningGateway.start(
            configuration, environment: ["UPSTREAM_KEY": "k", "PROXIMA_ADMIN_TOKEN": "secret", "HOSTED_KEY": "hosted"])
        func add(_ json: String) async throws -> TestHTTP.Reply {
            try await UntrustedNumberGatewayTests.admin(gateway, .POST, "/endpoints", body: json)
        }
        for variable in ["PROXIMA_ADMIN_TOKEN", "UPSTREAM_KEY", "HOME"] {
            let reply = try await add(#"{"name":"evil","url":"http://127.0.0.1:9/v1","models":["chat"],"api_key_env":"\#(variable)"}"#)
            #expect(reply.status == 400, "\(variable): \(reply.body)")
            #expect((reply.errorObject?["message"] as? String)?.contains("admin.allowed_key_env") == true, "\(reply.body)")
        }
        for url in [#"http://127.0.0.1:9/v1 HTTP/1.1\r\nX-Evil: 1\r\n"#, "http://127.0.0.1:9/a b", #"http://127.0.0.1:9/v1\n"#] {
            let reply = try await add(#"{"name":"evil","url":"\#(url)","models":["chat"]}"#)
            #expect(reply.status == 400, "\(url): \(reply.body)")
            #expect((reply.errorObject?["message"] as? String)?.contains("endpoints[1].url") == true, "\(reply.body)")
        }
        #expect(gateway.gateway.state.snapshot.fleet.endpoints.count == 1, "refused changes change nothing")
        let allowed = try await add(#"{"name":"hosted","url":"\#(upstream.baseURL)","models":["chat"],"api_key_env":"HOSTED_KEY"}"#)
        #expect(allowed.status == 201, "\(allowed.body)")
        #expect(gateway.gateway.state.snapshot.fleet.endpoints.map(\.name) == ["ep0", "hosted"])
        try await UntrustedNumberGatewayTests.stillServes(gateway)
        await gateway.stop()
    }
}
