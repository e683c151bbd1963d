import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ProximaCore
import ProximaEmulator
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// The router at work in the gateway, in front of emulated endpoints over real HTTP.
@Suite(.serialized) struct RoutingOverEmulatorTests {
    static let quiet = Logger(label: "emu", factory: { _ in SwiftLogNoOpLogHandler() })
    static let frankfurt = "50.11,8.68"

    /// An emulated fleet and a gateway in front of it.
    struct Rig {
        let fleet: EmulatorFleet
        let gateway: RunningGateway
        let configuration: ProximaConfiguration

        func stop() async {
            await gateway.stop()
            await fleet.stop()
        }

        /// Sends a short streamed chat request; returns the status, the endpoint that answered and the
        /// route header.
        func chat(
            _ content: String = "hello there", policy: String? = nil, location: String = RoutingOverEmulatorTests.frankfurt,
            maxTokens: Int = 2
        ) async throws -> (status: Int, endpoint: String, route: String) {
            var headers = [("x-proxima-client-location", location)]
            if let policy { headers.append(("x-proxima-policy", policy)) }
            let body = #"{"model":"m","stream":true,"max_tokens":\#(maxTokens),"messages":[{"role":"user","content":\#(JSONScanner.quoted(content))}]}"#
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: body, headers: headers)
            return (
                reply.status, reply.headers.first(name: "x-proxima-endpoint") ?? "none",
                reply.headers.first(name: "x-proxima-route") ?? ""
            )
        }

        func fleetState() async throws -> [String: [String: Any]] {
            let reply = try await TestHTTP.send(
                {
                    var request = HTTPClientRequest(url: gateway.baseURL + "/admin/fleet")
                    request.headers.add(name: "authorization", value: "Bearer secret")
                    return request
                }())
            let endpoints = (reply.json?["endpoints"] as? [[String: Any]]) ?? []
            var result: [String: [String: Any]] = [:]
            for endpoint in endpoints { result[endpoint["name"] as? String ?? "?"] = endpoint }
            return result
        }

        func retries() async throws -> Double {
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            return metrics.split(separator: "\n").filter { $0.hasPrefix("proxima_retries_total{") }
                .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
        }
    }

    static func endpoint(_ name: String, site: String, profile: String = "H100-8B", gpuHour: Double = 3.5, limit: Int? = nil) throws
        -> EndpointSettings
    {
        EndpointSettings(
            name: name, url: "http://127.0.0.1:\(try freeLoopbackPort())/v1", site: site, engine: .emulated,
            models: [.init(name: "m")], gpu: .init(profile: profile), pricing: .init(gpuHour: gpuHour), maxConcurrency: limit)
    }

    static func start(_ endpoints: [EndpointSettings], routing: RoutingSettings = .init(), monitor: Bool = false) async throws -> Rig {
        let configuration = ProximaConfiguration(
            sites: [
                SiteSettings(name: "frankfurt", latitude: 50.11, longitude: 8.68, jurisdiction: "DE"),
                SiteSettings(name: "london", latitude: 51.51, longitude: -0.13, jurisdiction: "GB"),
                SiteSettings(name: "sydney", latitude: -33.87, longitude: 151.21, jurisdiction: "AU"),
            ],
            endpoints: endpoints, routing: routing)
        let fleet = try await EmulatorFleet.start(configuration: configuration, logger: quiet)
        let gateway = try await RunningGateway.start(configuration, environment: ["PROXIMA_ADMIN_TOKEN": "secret"], monitor: monitor)
        return Rig(fleet: fleet, gateway: gateway, configuration: configuration)
    }

    @Test func responsesCarryTheirRouteAndRequestsMayNameAPolicy() async throws {
        let rig = try await Self.start([try Self.endpoint("fra-1", site: "frankfurt"), try Self.endpoint("syd-1", site: "sydney")])
        defer { Task { await rig.stop() } }
        let plain = try await rig.chat()
        #expect(plain.status == 200)
        #expect(plain.endpoint == "fra-1")
        #expect(plain.route.hasPrefix("policy=balanced; endpoint=fra-1; ttft_ms="), "\(plain.route)")
        #expect(plain.route.contains("runner_up=syd-1"))
        let fromSydney = try await rig.chat(policy: "nearest", location: "-33.9,151.2")
        #expect(fromSydney.endpoint == "syd-1")
        #expect(fromSydney.route.hasPrefix("policy=nearest"))
        let bySiteName = try await rig.chat(policy: "nearest", location: "sydney")
        #expect(bySiteName.endpoint == "syd-1")

        let unknown = try await TestHTTP.post(
            rig.gateway.baseURL + "/v1/chat/completions", json: #"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            headers: [("x-proxima-policy", "fastest-please")])
        #expect(unknown.status == 400)
        #expect(unknown.errorObject?["param"] as? String == "x-proxima-policy")
        let badPlace = try await TestHTTP.post(
            rig.gateway.baseURL + "/v1/chat/completions", json: #"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            headers: [("x-proxima-client-location", "91,200")])
        #expect(badPlace.status == 400)
        #expect((badPlace.errorObject?["message"] as? String)?.contains("latitude,longitude") == true)
    }

    @Test func explainShowsEveryCandidateAndExclusionWithoutSendingAnything() async throws {
        var other = try Self.endpoint("other", site: "london")
        other.models = [.init(name: "x")]
        let rig = try await Self.start([try Self.endpoint("fra-1", site: "frankfurt"), try Self.endpoint("lon-1", site: "london"), other])
        defer { Task { await rig.stop() } }
        let reply = try await TestHTTP.post(
            rig.gateway.baseURL + "/v1/route/explain",
            json: #"{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"explain yourself"}]}"#,
            headers: [("x-proxima-client-location", Self.frankfurt), ("x-proxima-policy", "slo")])
        #expect(reply.status == 200)
        let json = try #require(reply.json)
        #expect(json["policy"] as? String == "slo")
        #expect(json["chosen"] as? String == "fra-1" || json["chosen"] as? String == "lon-1")
        let candidates = try #require(json["candidates"] as? [[String: Any]])
        #expect(candidates.count == 2)
        for key in ["predicted_ttft_ms", "rtt_ms", "queue_wait_ms", "prefill_ms", "cost_usd", "headroom", "distance_km", "error_rate", "meets_target"] {
            #expect(candidates.allSatisfy { $0[key] != nil }, "\(key)")
        }
        let excluded = try #require(json["excluded"] as? [[String: Any]])
        #expect(excluded.map { $0["endpoint"] as? String } == ["other"])
        #expect(excluded.first?["kind"] as? String == "model_not_served")
        let state = try await rig.fleetState()
        #expect(state["fra-1"]?["requests"] as? Int == 0)
        #expect(state["lon-1"]?["requests"] as? Int == 0)
    }

    @Test func aCrashedSiteGetsNoTrafficAndCallersSeeNoFailuresThenItComesBack() async throws {
        var routing = RoutingSettings()
        routing.telemetry.scrapeIntervalSeconds = 0.2
        routing.breaker.openSeconds = 0.5
        let rig = try await Self.start(
            [try Self.endpoint("fra-1", site: "frankfurt"), try Self.endpoint("lon-1", site: "london")], routing: routing, monitor: true)
        defer { Task { await rig.stop() } }
        #expect(try await rig.chat().endpoint == "fra-1")
        try await rig.fleet.setFaults(FaultSettings(crash: true), on: "fra-1")
        let opened = try await eventually { try await rig.fleetState()["fra-1"]?["breaker"] as? String == "open" }
        #expect(opened, "the health check found the crash")
        let retriesBefore = try await rig.retries()
        for _ in 0..<10 {
            let reply = try await rig.chat()
            #expect(reply.status == 200)
            #expect(reply.endpoint == "lon-1")
        }
        #expect(try await rig.retries() == retriesBefore, "no request was even tried on the crashed site")

        try await rig.fleet.setFaults(.none, on: "fra-1")
        let back = try await eventually { try await rig.chat().endpoint == "fra-1" }
        #expect(back, "a good check half-opens the breaker and the probe request closes it")
        #expect(try await rig.fleetState()["fra-1"]?["breaker"] as? String == "closed")
    }

    @Test func failingRequestsOpenTheBreakerWhichRecoversThroughAProbe() async throws {
        var routing = RoutingSettings()
        routing.breaker.openSeconds = 0.5
        routing.breaker.failureThreshold = 3
        let rig = try await Self.start([try Self.endpoint("fra-1", site: "frankfurt"), try Self.endpoint("lon-1", site: "london")], routing: routing)
        defer { Task { await rig.stop() } }
        try await rig.fleet.setFaults(FaultSettings(errorRate: 1), on: "fra-1")
        for _ in 0..<3 {
            let reply = try await rig.chat()
            #expect(reply.status == 200, "retried on the next endpoint")
            #expect(reply.endpoint == "lon-1")
            #expect(reply.route.contains("failover=true"))
        }
        #expect(try await rig.retries() == 3)
        #expect(try await rig.fleetState()["fra-1"]?["breaker"] as? String == "open")
        for _ in 0..<3 { #expect(try await rig.chat().route.hasPrefix("policy=balanced; endpoint=lon-1")) }
        #expect(try await rig.retries() == 3, "an open breaker keeps requests off the endpoint")
        try await rig.fleet.setFaults(.none, on: "fra-1")
        try await Task.sleep(for: .milliseconds(600))
        #expect(try await rig.chat().endpoint == "fra-1", "half-open: the next request probes and succeeds")
        #expect(try await rig.fleetState()["fra-1"]?["breaker"] as? String == "closed")
    }

    @Test func anEndpointAtItsAdmissionLimitIsPassedOver() async throws {
        let rig = try await Self.start(
            [try Self.endpoint("fra-1", site: "frankfurt", limit: 2), try Self.endpoint("syd-1", site: "sydney")])
        defer { Task { await rig.stop() } }
        // Two long generations fill the near endpoint.
        let long = (0..<2).map { _ in Task { try await rig.chat(maxTokens: 400) } }
        let full = try await eventually { (try await rig.fleetState()["fra-1"]?["in_flight"] as? Int) == 2 }
        #expect(full)
        let overflow = try await rig.chat()
        #expect(overflow.endpoint == "syd-1")
        for task in long { #expect(try await task.value.endpoint == "fra-1") }
    }

    @Test func aSlowSiteLosesItsTraffic() async throws {
        let rig = try await Self.start([try Self.endpoint("slow", site: "frankfurt"), try Self.endpoint("fast", site: "frankfurt")])
        defer { Task { await rig.stop() } }
        try await rig.fleet.setFaults(FaultSettings(slowdown: 30), on: "slow")
        var counts: [String: Int] = [:]
        for index in 0..<30 {
            let reply = try await rig.chat(String(repeating: "word ", count: 300) + "\(index)")
            #expect(reply.status == 200)
            counts[reply.endpoint, default: 0] += 1
        }
        #expect(counts["slow", default: 0] <= 6, "\(counts)")
        let state = try await rig.fleetState()
        #expect((state["slow"]?["observed_correction_ms"] as? Double ?? 0) > 10)
    }

    @Test func underTheSLOPolicyACheaperSiteThatMeetsTheTargetWins() async throws {
        let rig = try await Self.start([
            try Self.endpoint("fra-h100", site: "frankfurt", profile: "H100-8B", gpuHour: 3.5),
            try Self.endpoint("lon-rtx", site: "london", profile: "RTX-PRO-6000-8B", gpuHour: 1.6),
        ])
        defer { Task { await rig.stop() } }
        #expect(try await rig.chat(policy: "balanced").endpoint == "fra-h100")
        let slo = try await rig.chat(policy: "slo")
        #expect(slo.endpoint == "lon-rtx")
        #expect(try await rig.chat(policy: "cheapest").endpoint == "lon-rtx")
    }

    @Test func requestsSharingALongPrefixStickToOneEndpoint() async throws {
        let rig = try await Self.start((1...3).map { try! Self.endpoint("fra-\($0)", site: "frankfurt") })
        defer { Task { await rig.stop() } }
        let systemPrompt = (0..<1_500).map { "rule\($0 % 97)" }.joined(separator: " ")
        var endpoints = Set<String>()
        for question in 0..<8 {
            let reply = try await rig.chat(systemPrompt + " question \(question)")
            #expect(reply.status == 200)
            endpoints.insert(reply.endpoint)
        }
        #expect(endpoints.count == 1, "\(endpoints)")
    }

    @Test func theAdminAPIDrainsAddsRemovesAndChangesPolicyOrRefusesAndChangesNothing() async throws {
        let rig = try await Self.start([try Self.endpoint("fra-1", site: "frankfurt"), try Self.endpoint("lon-1", site: "london")])
        defer { Task { await rig.stop() } }
        let base = rig.gateway.baseURL + "/admin"
        func admin(_ method: HTTPMethod, _ path: String, body: String? = nil, token: String? = "secret") async throws -> TestHTTP.Reply {
            var request = HTTPClientRequest(url: base + path)
            request.method = method
            if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
            if let body { request.body = .bytes(ByteBuffer(string: body)) }
            return try await TestHTTP.send(request)
        }
        #expect(try await admin(.GET, "/fleet", token: nil).status == 401)
        #expect(try await admin(.GET, "/fleet", token: "wrong").status == 401)

        #expect(try await admin(.POST, "/endpoints/fra-1/drain").status == 200)
        #expect(try await rig.chat().endpoint == "lon-1")
        #expect(try await admin(.POST, "/endpoints/fra-1/undrain").status == 200)
        #expect(try await rig.chat().endpoint == "fra-1")
        #expect(try await admin(.POST, "/endpoints/nope/drain").status == 404)

        let policy = try await admin(.PATCH, "/routing", body: #"{"policy":"nearest"}"#)
        #expect(policy.status == 200)
        #expect(try await rig.chat().route.hasPrefix("policy=nearest"))
        let refused = try await admin(.PATCH, "/routing", body: #"{"policy":"teleport","ttft_target_seconds":-1}"#)
        #expect(refused.status == 400)
        let message = refused.errorObject?["message"] as? String ?? ""
        #expect(message.contains("routing.policy") && message.contains("routing.ttft_target_seconds"), "\(message)")
        #expect(try await rig.chat().route.hasPrefix("policy=nearest"), "a refused change changes nothing")

        let port = try freeLoopbackPort()
        let added = try await admin(
            .POST, "/endpoints",
            body: #"{"name":"syd-1","url":"http://127.0.0.1:\#(port)/v1","site":"sydney","engine":"vllm","models":["m"]}"#)
        #expect(added.status == 201)
        #expect(try await rig.fleetState()["syd-1"] != nil)
        let failedOver = try await rig.chat(location: "-33.9,151.2")
        #expect(failedOver.status == 200 && failedOver.endpoint != "syd-1", "nothing listens there: the request fails over")
        let badEndpoint = try await admin(.POST, "/endpoints", body: #"{"name":"x","url":"ftp://nowhere","models":["m"]}"#)
        #expect(badEndpoint.status == 400)
        #expect((badEndpoint.errorObject?["message"] as? String)?.contains("endpoints[3].url") == true)
        #expect(try await admin(.DELETE, "/endpoints/syd-1").status == 200)
        #expect(try await rig.fleetState()["syd-1"] == nil)
        #expect(try await admin(.POST, "/reload").status == 409, "started without a file")
    }

    @Test func reloadAppliesAValidFileAndKeepsTheRunningConfigurationOtherwise() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("proxima-reload-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let near = try Self.endpoint("fra-1", site: "frankfurt")
        let far = try Self.endpoint("syd-1", site: "sydney")
        func yaml(_ endpoints: [EndpointSettings], policy: String) -> String {
            var text = "sites:\n  - {name: frankfurt, latitude: 50.11, longitude: 8.68}\n  - {name: sydney, latitude: -33.87, longitude: 151.21}\n"
            text += "endpoints:\n"
            for endpoint in endpoints {
                text += "  - {name: \(endpoint.name), url: \(endpoint.url), site: \(endpoint.site!), engine: emulated, models: [m], gpu: {profile: H100-8B}}\n"
            }
            return text + "routing: {policy: \(policy)}\n"
        }
        try yaml([near], policy: "balanced").write(to: file, atomically: true, encoding: .utf8)
        let path = file.path
        let source: @Sendable () throws -> ProximaConfiguration = {
            var configuration = try ConfigurationLoader.parse(yaml: try String(contentsOfFile: path, encoding: .utf8))
            configuration.server.port = 0
            return configuration
        }
        let emulated = try await EmulatorFleet.start(
            configuration: ProximaConfiguration(
                sites: [SiteSettings(name: "frankfurt", latitude: 50.11, longitude: 8.68), SiteSettings(name: "sydney", latitude: -33.87, longitude: 151.21)],
                endpoints: [near, far]),
            logger: Self.quiet)
        let gateway = try await RunningGateway.start(try source(), environment: ["PROXIMA_ADMIN_TOKEN": "secret"], reloadSource: source)
        let rig = Rig(fleet: emulated, gateway: gateway, configuration: try source())
        defer { Task { await rig.stop() } }
        func reload() async throws -> TestHTTP.Reply {
            var request = HTTPClientRequest(url: gateway.baseURL + "/admin/reload")
            request.method = .POST
            request.headers.add(name: "authorization", value: "Bearer secret")
            return try await TestHTTP.send(request)
        }
        #expect(try await rig.chat(location: "sydney").endpoint == "fra-1", "only one endpoint at first")

        try yaml([near, far], policy: "nearest").write(to: file, atomically: true, encoding: .utf8)
        #expect(try await reload().status == 200)
        let after = try await rig.chat(location: "sydney")
        #expect(after.endpoint == "syd-1")
        #expect(after.route.hasPrefix("policy=nearest"))

        try "endpoints: [{name: broken}]\n".write(to: file, atomically: true, encoding: .utf8)
        let refused = try await reload()
        #expect(refused.status == 400)
        #expect(try await rig.chat(location: "sydney").endpoint == "syd-1", "the running configuration stays")
    }
}
