import Testing
import ProximaCore
@_spi(Benchmarks) @testable import ProximaGateway

@Suite struct ConfigurationLoaderTests {
    func problem(_ yaml: String) -> ConfigurationProblem? {
        do {
            var configuration = try ConfigurationLoader.parse(yaml: yaml)
            try ConfigurationLoader.applyEnvironment([:], to: &configuration)
            try configuration.validate()
            return nil
        } catch {
            return error.problems.first
        }
    }

    @Test func readsAFullFileWithDefaultsForWhatIsLeftOut() throws {
        let configuration = try ConfigurationLoader.parse(
            yaml: """
                server:
                  port: 9090
                  timeouts: {idle: 30}
                sites:
                  - {name: fra, latitude: 50.1, longitude: 8.7, jurisdiction: DE, provider: self}
                endpoints:
                  - name: fra-1
                    url: http://127.0.0.1:8001/v1
                    site: fra
                    engine: vllm
                    models: [llama-8b, {name: llama-70b, upstream: meta-llama/Llama-3.3-70B-Instruct}]
                    api_key_env: FRA_KEY
                    gpu: {profile: H100-70B, count: 2}
                    pricing: {gpu_hour: 3.5}
                    max_concurrency: 64
                models:
                  - {name: llama-70b, aliases: [big], fallbacks: [llama-8b], context_length: 8192}
                """)
        #expect(configuration.server.port == 9090)
        #expect(configuration.server.host == "127.0.0.1")
        #expect(configuration.server.timeouts.idle == 30)
        #expect(configuration.server.timeouts.connect == TimeoutSettings().connect)
        #expect(configuration.endpoints[0].models[1] == ServedModelSettings(name: "llama-70b", upstream: "meta-llama/Llama-3.3-70B-Instruct"))
        #expect(configuration.endpoints[0].models[0].upstream == "llama-8b")
        #expect(configuration.endpoints[0].gpu == GPUSettings(profile: "H100-70B", count: 2))
        #expect(configuration.models[0].fallbacks == ["llama-8b"])
        #expect(configuration.problems().isEmpty)
    }

    @Test(arguments: [
        ("server: {prot: 1}", "server.prot"),
        ("server: {port: eighty}", "server.port"),
        ("endpoints: [{url: 'http://x/v1', models: [m]}]", "endpoints[0].name"),
        ("endpoints: [{name: a, url: 'http://x/v1', engine: gpt, models: [m]}]", "endpoints[0].engine"),
        ("endpoints: [{name: a, url: 'x', models: [m]}]", "endpoints[0].url"),
        ("sites: [{name: s, latitude: 1}]", "sites[0].longitude"),
        ("logging: {format: xml}", "logging.format"),
    ])
    func namesTheKeyAtFault(yaml: String, keyPath: String) {
        #expect(problem(yaml)?.keyPath == keyPath)
    }

    @Test func environmentOverridesTheFile() throws {
        var configuration = try ConfigurationLoader.parse(yaml: "server: {port: 1000}")
        try ConfigurationLoader.applyEnvironment(["PROXIMA_PORT": "2000", "PROXIMA_HOST": "0.0.0.0"], to: &configuration)
        #expect(configuration.server.port == 2000)
        #expect(configuration.server.host == "0.0.0.0")
        #expect(throws: InvalidConfiguration.self) {
            try ConfigurationLoader.applyEnvironment(["PROXIMA_PORT": "x"], to: &configuration)
        }
    }

    @Test func theShippedExampleIsValid() throws {
        let path = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        let configuration = try ConfigurationLoader.load(path: "/" + path + "/examples/proxima.yaml", environment: ["EXAMPLE_HOSTED_KEY": "k"])
        #expect(!configuration.endpoints.isEmpty)
        #expect(try Fleet(configuration: configuration).models.count >= 2)
    }

    /// `check-config` used to accept these, and the first request then trapped.
    @Test func absurdNumbersInAFileAreRefusedNamingTheKey() throws {
        let configuration = try ConfigurationLoader.parse(
            yaml: """
                server: {timeouts: {idle: .nan, total: .inf, connect: 1e300}}
                endpoints:
                  - {name: a, url: "http://127.0.0.1:8001/v1 HTTP/1.1", models: [m]}
                routing:
                  ttft_target_seconds: 1e300
                  expected_output_tokens: 9223372036854775807
                  hedging: {enabled: true, delay_factor: 1e300}
                admin: {allowed_key_env: [HOSTED_KEY, PROXIMA_ADMIN_TOKEN]}
                """)
        #expect(configuration.admin.allowedKeyEnv == ["HOSTED_KEY", "PROXIMA_ADMIN_TOKEN"])
        let paths = Set(configuration.problems().map(\.keyPath))
        #expect(paths == [
            "server.timeouts.idle", "server.timeouts.total", "server.timeouts.connect", "endpoints[0].url", "routing.ttft_target_seconds",
            "routing.expected_output_tokens", "routing.hedging.delay_factor", "admin.allowed_key_env[1]",
        ])
    }
}
