import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// `server.callers`: read from YAML with documented defaults, every bad value named, and applied
/// to new connections by a configuration change.
@Suite struct CallerSettingsTests {
    static let endpoint = """
        endpoints:
          - {name: a, url: "http://127.0.0.1:9/v1", models: [chat]}
        """

    func problems(_ callers: String) -> [String] {
        do {
            let configuration = try ConfigurationLoader.parse(yaml: "server:\n  callers: \(callers)\n" + Self.endpoint)
            return configuration.problems().map(\.description)
        } catch {
            return error.problems.map(\.description)
        }
    }

    @Test func readsTheSectionWithDefaultsForWhatIsLeftOut() throws {
        let configuration = try ConfigurationLoader.parse(
            yaml: "server:\n  callers: {header_timeout: 5, max_connections: 100}\n" + Self.endpoint)
        let callers = configuration.server.callers
        #expect(callers.headerTimeout == 5 && callers.maxConnections == 100)
        #expect(callers.bodyIdleTimeout == 30 && callers.bodyTimeout == 120 && callers.keepAliveTimeout == 75)
        #expect(callers.maxHeadBytes == 32 * 1024 && callers.maxHeaderFields == 100)
        #expect(callers.bodyMemoryBudgetBytes == 256 * 1024 * 1024)
        #expect(configuration.problems().isEmpty)
        #expect(try ConfigurationLoader.parse(yaml: Self.endpoint).server.callers.maxConnections == nil, "derived by default")
    }

    @Test func everyBadValueIsNamed() {
        #expect(problems("{header_timeout: 0}").first?.hasPrefix("server.callers.header_timeout") == true)
        #expect(problems("{body_idle_timeout: .nan}").first?.hasPrefix("server.callers.body_idle_timeout") == true)
        #expect(problems("{body_timeout: 1e400}").first?.hasPrefix("server.callers.body_timeout") == true)
        #expect(problems("{keep_alive_timeout: -1}").first?.hasPrefix("server.callers.keep_alive_timeout") == true)
        #expect(problems("{max_head_bytes: 10}").first?.hasPrefix("server.callers.max_head_bytes") == true)
        #expect(problems("{max_header_fields: 0}").first?.hasPrefix("server.callers.max_header_fields") == true)
        #expect(problems("{max_connections: 0}").first?.hasPrefix("server.callers.max_connections") == true)
        #expect(problems("{body_memory_budget_bytes: 1000}").first?.contains("max_request_body_bytes") == true)
        #expect(problems("{header_timout: 5}").first?.contains("header_timout") == true, "a misspelt key")
    }

    @Test func aConfigurationChangeAppliesToNewConnections() async throws {
        var configuration = GatewayProxyTests.configuration([("http://127.0.0.1:9/v1", "ok")])
        configuration.server.callers.maxConnections = nil
        let gateway = try await RunningGateway.start(configuration, environment: ["UPSTREAM_KEY": "k"])
        defer { Task { await gateway.stop() } }
        let resources = gateway.gateway.callers
        #expect(resources.connections.currentLimit == ConnectionLimiter.defaultLimit(descriptorLimit: resources.descriptorLimit))
        var changed = gateway.gateway.state.snapshot.configuration
        changed.server.callers.maxConnections = 3
        changed.server.callers.headerTimeout = 2
        changed.server.callers.bodyMemoryBudgetBytes = 1 << 20
        try gateway.gateway.applyAdminChange(changed)
        #expect(resources.connections.currentLimit == 3)
        #expect(resources.bodyBudget.capacityBytes == 1 << 20)
        #expect(resources.limits.limits.headerTimeout == .seconds(2))
    }
}
