import Foundation
import NIOCore
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

extension FuzzSuites {
    /// The numbers that reach the router from engines (`/metrics`), files (YAML) and the admin API
    /// (JSON): whatever they say, reading them terminates with a typed error or a value in range, and a
    /// configuration that passes validation routes requests without trapping.
    @Suite struct ConfigurationFuzzTests {
        static let metricsSeeds = [EngineSamples.vllmMetrics, EngineSamples.llamaCppMetrics].map { Array($0.utf8) }

        @Test func engineMetricsAreClampedWhereTheyEnter() async throws {
            let fleet = try Self.smallFleet()
            let router = FleetRouter()
            try await Fuzzing.run("prometheus", seeds: Self.metricsSeeds, iterations: Fuzzing.iterations(default: 3_000), cutEveryByteUpTo: 1_500) { input, label in
                let text = String(decoding: input, as: UTF8.self)
                let snapshot = EngineLoadSnapshot(samples: PrometheusText.parse(text))
                for value in [snapshot.running, snapshot.waiting, snapshot.powerWatts] {
                    if let value { #expect(value.isFinite && value >= 0 && value <= EngineLoadSnapshot.maximumCount, "\(label)") }
                }
                for value in [snapshot.prefixCacheHits, snapshot.prefixCacheQueries] {
                    if let value { #expect(value.isFinite && value >= 0 && value <= EngineLoadSnapshot.maximumCounter, "\(label)") }
                }
                if let usage = snapshot.kvCacheUsage { #expect(usage >= 0 && usage <= 1, "\(label)") }
                _ = EndpointMonitor.slotsLoad(ByteBuffer(bytes: input))
                var telemetry = FleetTelemetry(endpointCount: fleet.endpoints.count)
                telemetry.recordEngineRead(0, snapshot: snapshot, at: 0)
                try Self.routeEverything(fleet: fleet, telemetry: telemetry, routing: RoutingSettings(), router: router, label: label)
            }
        }

        static func smallFleet() throws -> Fleet {
            try Fleet(configuration: ProximaConfiguration(
                sites: [SiteSettings(name: "a", latitude: 1, longitude: 2)],
                endpoints: [
                    EndpointSettings(name: "e0", url: "http://127.0.0.1:1/v1", site: "a", engine: .vllm, models: [.init(name: "m")], gpu: GPUSettings(profile: "H100-8B")),
                    EndpointSettings(name: "e1", url: "http://127.0.0.1:2/v1", site: "a", engine: .llamacpp, models: [.init(name: "m")], maxConcurrency: 4),
                ],
                models: [ModelSettings(name: "m", contextLength: 8_192)]))
        }

        /// Routes a request for every model under every policy, with `max_tokens` at the extremes a
        /// caller may send, and converts what the proxy converts (deadlines, hedge delays, the summary's
        /// milliseconds): every value must be finite and every conversion must not trap.
        static func routeEverything(
            fleet: Fleet, telemetry: FleetTelemetry, routing: RoutingSettings, router: FleetRouter, label: String,
            server: ServerSettings = ServerSettings()
        ) throws {
            let proxy = ProxySettings(server)
            for model in fleet.models.prefix(3) {
                for name in ["balanced", "slo"] + routing.policies.keys.sorted().prefix(2) {
                    let policy = try #require(RoutingPolicy.named(name, in: routing))
                    for maxTokens in [nil, InferenceRequest.maximumOutputTokens] as [Int?] {
                        let request = RouteRequest(
                            model: model, stream: maxTokens == nil, promptTokens: 1 << 20, maxOutputTokens: maxTokens, prefixBlocks: [1, 2],
                            clientLocation: nil)
                        let decision = router.decide(request, policy: policy, fleet: fleet, telemetry: telemetry, now: 1, entropy: 7, limit: 3, explain: true)
                        for candidate in decision.candidates {
                            let evaluation = candidate.evaluation
                            #expect(evaluation.predictedTTFTSeconds.isFinite && evaluation.costUSD.isFinite, "\(label)")
                            _ = Duration.seconds(clampedSeconds: max(routing.hedging.minimumDelaySeconds, routing.hedging.delayFactor * evaluation.predictedTTFTSeconds))
                            _ = Int(saturating: evaluation.predictedTTFTSeconds * 1000)
                        }
                        _ = proxy.headTimeout(stream: request.stream, maxOutputTokens: maxTokens)
                    }
                }
            }
        }

        static let yamlSeeds: [[UInt8]] = {
            let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../examples/proxima.yaml")
            let file = (try? String(contentsOf: example, encoding: .utf8)) ?? ""
            let small = """
                server: {port: 0, max_attempts: 2, timeouts: {connect: 1.5, first_byte: 30, idle: 20, total: 300, per_output_token: 0.1}}
                endpoints:
                  - {name: a, url: "http://127.0.0.1:8001/v1", engine: vllm, models: [m], max_concurrency: 8, pricing: {input_per_million: 0.1, output_per_million: 0.2}}
                models: [{name: m, context_length: 4096}]
                routing: {policy: slo, ttft_target_seconds: 0.5, expected_output_tokens: 128, hedging: {enabled: true, delay_factor: 1.5}}
                admin: {allowed_key_env: [HOSTED_KEY]}
                """
            return [file, small].filter { !$0.isEmpty }.map { Array($0.utf8) }
        }()

        /// A configuration file is read to a typed error or a configuration; one that validates routes.
        @Test func configurationFilesAreReadToAProblemOrAUsableConfiguration() async throws {
            #expect(Self.yamlSeeds.count == 2, "examples/proxima.yaml is a seed")
            let router = FleetRouter()
            var valid = 0
            try await Fuzzing.run("configuration", seeds: Self.yamlSeeds, iterations: Fuzzing.iterations(default: 200), cutEveryByteUpTo: 1_000) { input, label in
                guard let configuration = try? ConfigurationLoader.parse(yaml: String(decoding: input, as: UTF8.self)) else { return }
                guard configuration.problems().isEmpty, let fleet = try? Fleet(configuration: configuration) else { return }
                valid += 1
                try Self.checkBounds(configuration, label: label)
                var telemetry = FleetTelemetry(endpointCount: fleet.endpoints.count, breaker: configuration.routing.breaker, settings: configuration.routing.telemetry)
                if !fleet.endpoints.isEmpty {
                    telemetry.recordEngineRead(0, snapshot: EngineLoadSnapshot(running: 1e308, waiting: .infinity, kvCacheUsage: 7), at: 0)
                }
                try Self.routeEverything(fleet: fleet, telemetry: telemetry, routing: configuration.routing, router: router, label: label, server: configuration.server)
            }
            #expect(valid > 0)
        }

        /// What validation promises about the numbers it lets through.
        static func checkBounds(_ configuration: ProximaConfiguration, label: String) throws {
            let timeouts = configuration.server.timeouts
            for value in [timeouts.connect, timeouts.firstByte, timeouts.idle, timeouts.total, timeouts.shutdownGrace, timeouts.perOutputToken] {
                #expect(value.isFinite && value >= 0 && value <= ConfigurationBounds.maximumSeconds, "\(label)")
            }
            let routing = configuration.routing
            for value in [routing.ttftTargetSeconds, routing.tieTolerance, routing.hedging.delayFactor, routing.hedging.minimumDelaySeconds,
                          routing.breaker.openSeconds, routing.breaker.maximumOpenSeconds, routing.telemetry.scrapeIntervalSeconds] {
                #expect(value.isFinite && value >= 0, "\(label)")
            }
            #expect(routing.expectedOutputTokens <= ConfigurationBounds.maximumTokens, "\(label)")
            for endpoint in configuration.endpoints {
                #expect(!endpoint.url.utf8.contains { $0 <= 0x20 || $0 == 0x7F }, "\(label)")
            }
        }

        static let patchSeeds: [[UInt8]] = [
            #"{"policy":"slo","ttft_target_seconds":0.8,"expected_output_tokens":512,"tie_tolerance":0.1}"#,
            #"{"hedging":{"enabled":true,"delay_factor":3,"minimum_delay_seconds":0.2},"weights":{"ttft":1,"cost":0.5,"affinity":0,"headroom":0.2,"proximity":0}}"#,
            #"{"breaker":{"failure_threshold":5,"failure_rate_threshold":0.4,"minimum_requests":10,"open_seconds":2,"maximum_open_seconds":30,"half_open_probes":2},"telemetry":{"scrape_interval_seconds":1,"stale_after_seconds":5,"observation_half_life_seconds":10}}"#,
            #"{"regions":{"eu":{"latitude":48.8,"longitude":2.3}},"policies":{"fast":{"kind":"slo","ttft_target_seconds":0.3}},"routes":{"embeddings":"nearest"}}"#,
        ].map { Array($0.utf8) }

        /// `PATCH /admin/routing` bodies: refused with a 400, or merged into routing settings that pass
        /// validation and route without trapping.
        @Test func adminRoutingPatchesAreRefusedOrUsable() async throws {
            let base = try Self.adminBase()
            let fleet = try Fleet(configuration: base)
            let router = FleetRouter()
            var applied = 0
            try await Fuzzing.run("admin-routing", seeds: Self.patchSeeds, iterations: Fuzzing.iterations(default: 4_000)) { input, label in
                var configuration = base
                do throws(GatewayError) {
                    configuration.routing = try Gateway.merged(base.routing, patch: Data(input))
                } catch {
                    #expect(error.status == .badRequest, "\(label)")
                    return
                }
                guard configuration.problems().isEmpty else { return }
                applied += 1
                try Self.checkBounds(configuration, label: label)
                var telemetry = FleetTelemetry(endpointCount: fleet.endpoints.count, breaker: configuration.routing.breaker, settings: configuration.routing.telemetry)
                telemetry.recordEngineRead(0, snapshot: EngineLoadSnapshot(running: 3, waiting: 1e6), at: 0)
                try Self.routeEverything(fleet: fleet, telemetry: telemetry, routing: configuration.routing, router: router, label: label)
            }
            #expect(applied > 0)
        }

        static func adminBase() throws -> ProximaConfiguration {
            var configuration = ProximaConfiguration(
                sites: [SiteSettings(name: "a", latitude: 1, longitude: 2)],
                endpoints: [EndpointSettings(name: "e0", url: "http://127.0.0.1:1/v1", site: "a", engine: .vllm, models: [.init(name: "m")])],
                models: [ModelSettings(name: "m", contextLength: 8_192)])
            configuration.admin.allowedKeyEnv = ["HOSTED_KEY"]
            return configuration
        }

        static let endpointSeeds: [[UInt8]] = [
            #"{"name":"syd-1","url":"http://10.0.0.5:8000/v1","site":"a","engine":"vllm","models":["m",{"name":"big","upstream":"org/big"}],"max_concurrency":16,"gpu":{"profile":"H100-8B"},"pricing":{"gpu_hour":2.5}}"#,
            #"{"name":"hosted","url":"https://api.example.com/v1","engine":"openai","models":["m"],"api_key_env":"HOSTED_KEY","pricing":{"input_per_million":0.5,"output_per_million":1.5}}"#,
        ].map { Array($0.utf8) }

        /// `POST /admin/endpoints` bodies: refused, or an endpoint with a clean URL, an allowed key
        /// variable and numbers in range.
        @Test func adminEndpointBodiesAreRefusedOrUsable() async throws {
            let base = try Self.adminBase()
            let router = FleetRouter()
            var added = 0
            try await Fuzzing.run("admin-endpoint", seeds: Self.endpointSeeds, iterations: Fuzzing.iterations(default: 3_000)) { input, label in
                guard let endpoint = try? JSONDecoder().decode(EndpointSettings.self, from: Data(input)) else { return }
                var configuration = base
                configuration.endpoints.append(endpoint)
                guard Gateway.adminEndpointProblem(endpoint, admin: base.admin) == nil, configuration.problems().isEmpty,
                    let fleet = try? Fleet(configuration: configuration)
                else { return }
                added += 1
                #expect(endpoint.apiKeyEnv == nil || base.admin.allowedKeyEnv.contains(endpoint.apiKeyEnv!), "\(label)")
                try Self.checkBounds(configuration, label: label)
                let telemetry = FleetTelemetry(endpointCount: fleet.endpoints.count)
                try Self.routeEverything(fleet: fleet, telemetry: telemetry, routing: configuration.routing, router: router, label: label)
            }
            #expect(added > 0)
        }

        /// Nesting 10,000 deep in an admin body or a file: refused with an error, no stack overflow.
        @Test func nestingTenThousandDeepIsRefusedEverywhere() {
            let arrays = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
            let objects = String(repeating: #"{"a":"#, count: 10_000) + "1" + String(repeating: "}", count: 10_000)
            for value in [arrays, objects] {
                #expect(throws: GatewayError.self) { try Gateway.merged(RoutingSettings(), patch: Data(#"{"policy":\#(value)}"#.utf8)) }
                #expect(throws: (any Error).self) { try JSONDecoder().decode(EndpointSettings.self, from: Data(#"{"name":\#(value)}"#.utf8)) }
            }
            #expect(throws: InvalidConfiguration.self) { try ConfigurationLoader.parse(yaml: "routing: " + arrays) }
        }
    }
}
