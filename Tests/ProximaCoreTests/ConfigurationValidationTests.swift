import Testing
@testable import ProximaCore

@Suite struct ConfigurationValidationTests {
    static func valid() -> ProximaConfiguration {
        ProximaConfiguration(
            sites: [SiteSettings(name: "fra", latitude: 50.1, longitude: 8.7, jurisdiction: "DE")],
            endpoints: [
                EndpointSettings(name: "a", url: "http://127.0.0.1:9000/v1", site: "fra", engine: .llamacpp, models: [.init(name: "small")]),
                EndpointSettings(name: "b", url: "http://127.0.0.1:9001/v1", models: [.init(name: "large", upstream: "org/large-v2")]),
            ],
            models: [ModelSettings(name: "small", aliases: ["tiny"], fallbacks: ["large"])])
    }

    @Test func aValidConfigurationHasNoProblems() {
        #expect(Self.valid().problems().isEmpty)
    }

    /// The semantic tier needs an embeddings model that this file serves; a chat model declared as
    /// such, an unknown model, or no model at all is refused naming the key.
    @Test func theCachesEmbeddingsModelIsChecked() {
        var configuration = Self.valid()
        configuration.cache = CacheSettings(enabled: true)
        #expect(configuration.problems().map(\.keyPath) == ["cache.semantic.model"], "no model named")
        configuration.cache.semantic.model = "small"
        #expect(configuration.problems().first?.message.contains("kind embeddings") == true, "a chat model")
        configuration.models.append(ModelSettings(name: "e5", kind: .embeddings))
        configuration.endpoints[1].models.append(.init(name: "e5"))
        configuration.cache.semantic.model = "e5"
        #expect(configuration.problems().isEmpty)
        configuration.cache.semantic.model = "missing"
        #expect(configuration.problems().map(\.keyPath) == ["cache.semantic.model"])
        configuration.cache.semantic = .init(enabled: false)
        configuration.cache.tenants["acme"] = .init(threshold: 1.5)
        #expect(configuration.problems().map(\.keyPath) == ["cache.tenants.acme.threshold"])
        #expect(configuration.cache.applies(tenant: "acme", model: "small"))
        configuration.cache.models["small"] = .init(enabled: false)
        #expect(!configuration.cache.applies(tenant: "acme", model: "small"))
        #expect(configuration.cache.applies(tenant: "acme", model: "large"))
    }

    @Test func eachProblemNamesItsKey() {
        var configuration = Self.valid()
        configuration.server.port = 70000
        configuration.server.timeouts.idle = 0
        configuration.endpoints[0].site = "nowhere"
        configuration.endpoints[1].url = "ftp://example"
        configuration.endpoints[1].maxConcurrency = 0
        configuration.sites[0].latitude = 123
        configuration.models[0].fallbacks = ["missing"]
        let paths = Set(configuration.problems().map(\.keyPath))
        #expect(paths.contains("server.port"))
        #expect(paths.contains("server.timeouts.idle"))
        #expect(paths.contains("endpoints[0].site"))
        #expect(paths.contains("endpoints[1].url"))
        #expect(paths.contains("endpoints[1].max_concurrency"))
        #expect(paths.contains("sites[0].latitude"))
        #expect(paths.contains("models[0].fallbacks"))
    }

    @Test(arguments: [-0.1, 1.0, 2.5, Double.nan])
    func anSLOMarginOutsideZeroToOneIsRefused(margin: Double) {
        var configuration = Self.valid()
        configuration.routing.sloMargin = margin
        #expect(configuration.problems().map(\.keyPath) == ["routing.slo_margin"])
        configuration.routing.sloMargin = 0.5
        #expect(configuration.problems().isEmpty)
    }

    @Test func duplicateNamesAreRefused() {
        var configuration = Self.valid()
        configuration.endpoints[1].name = "a"
        configuration.models.append(ModelSettings(name: "tiny"))
        let problems = configuration.problems()
        #expect(problems.contains { $0.keyPath == "endpoints[1].name" && $0.message.contains("duplicate") })
        #expect(problems.contains { $0.keyPath == "models[0].aliases" || $0.keyPath == "models[1].name" })
    }

    @Test func aModelWithoutEndpointOrFallbackIsRefused() {
        var configuration = Self.valid()
        configuration.models.append(ModelSettings(name: "ghost"))
        #expect(configuration.problems().contains { $0.keyPath == "models[1].name" && $0.message.contains("no endpoint") })
    }

    /// Every number has documented bounds; NaN and infinities are refused everywhere, timeouts
    /// included (they used to pass validation and trap when made into durations).
    @Test(arguments: [Double.nan, .infinity, -.infinity, 1e300, -1, 0])
    func nonFiniteAndAbsurdDurationsAreRefused(value: Double) {
        var configuration = Self.valid()
        configuration.server.timeouts = TimeoutSettings(
            connect: value, firstByte: value, idle: value, total: value, perOutputToken: value, shutdownGrace: value)
        configuration.routing.ttftTargetSeconds = value
        configuration.routing.hedging.delayFactor = value
        configuration.routing.hedging.minimumDelaySeconds = value
        configuration.routing.telemetry = TelemetrySettings(scrapeIntervalSeconds: value, staleAfterSeconds: value, observationHalfLifeSeconds: value)
        configuration.routing.breaker.openSeconds = value
        configuration.routing.breaker.maximumOpenSeconds = value
        configuration.routing.tieTolerance = value
        configuration.routing.weights.ttft = value
        configuration.routing.policies["fast"] = PolicySettings(kind: .slo, ttftTargetSeconds: value)
        configuration.endpoints[0].pricing = PricingSettings(inputPerMillion: value, outputPerMillion: value, gpuHour: value)
        let paths = Set(configuration.problems().map(\.keyPath))
        var expected: Set<String> = [
            "server.timeouts.connect", "server.timeouts.first_byte", "server.timeouts.idle", "server.timeouts.total",
            "routing.ttft_target_seconds", "routing.hedging.delay_factor", "routing.telemetry.stale_after_seconds",
            "routing.telemetry.observation_half_life_seconds", "routing.breaker.open_seconds", "routing.policies.fast.ttft_target_seconds",
        ]
        if value != 0 {
            expected.formUnion([
                "server.timeouts.per_output_token", "server.timeouts.shutdown_grace", "routing.hedging.minimum_delay_seconds",
                "routing.telemetry.scrape_interval_seconds", "routing.breaker.maximum_open_seconds", "routing.tie_tolerance",
                "routing.weights.ttft", "endpoints[0].pricing.input_per_million", "endpoints[0].pricing.output_per_million",
                "endpoints[0].pricing.gpu_hour",
            ])
        }
        #expect(expected.subtracting(paths).isEmpty, "missing: \(expected.subtracting(paths).sorted())")
    }

    @Test func integersHaveBoundsToo() {
        var configuration = Self.valid()
        configuration.server.maxAttempts = Int.max
        configuration.server.maxRequestBodyBytes = Int.max
        configuration.server.maxResponseBodyBytes = -1
        configuration.server.maxConnectionsPerUpstream = Int.max
        configuration.routing.expectedOutputTokens = Int.max
        configuration.routing.breaker.failureThreshold = Int.max
        configuration.endpoints[0].maxConcurrency = Int.max
        configuration.endpoints[0].gpu = GPUSettings(profile: "H100-8B", count: Int.max)
        configuration.models[0].contextLength = Int.max
        let paths = Set(configuration.problems().map(\.keyPath))
        for path in [
            "server.max_attempts", "server.max_request_body_bytes", "server.max_response_body_bytes", "server.max_connections_per_upstream",
            "routing.expected_output_tokens", "routing.breaker.failure_threshold", "endpoints[0].max_concurrency", "endpoints[0].gpu.count",
            "models[0].context_length",
        ] {
            #expect(paths.contains(path), "\(path)")
        }
        // The bounds themselves are accepted.
        var edge = Self.valid()
        edge.server.timeouts.total = ConfigurationBounds.maximumSeconds
        edge.routing.expectedOutputTokens = ConfigurationBounds.maximumExpectedOutputTokens
        edge.models[0].contextLength = ConfigurationBounds.maximumTokens
        edge.routing.hedging.delayFactor = ConfigurationBounds.maximumDelayFactor
        #expect(edge.problems().isEmpty, "\(edge.problems())")
    }

    @Test func keyVariablesAllowedToTheAdminAPIAreNamesAndNeverTheAdminToken() {
        var configuration = Self.valid()
        configuration.admin.allowedKeyEnv = ["HOSTED_KEY", "PROXIMA_ADMIN_TOKEN", "bad name"]
        configuration.endpoints[0].apiKeyEnv = "PROXIMA_ADMIN_TOKEN"
        let problems = configuration.problems()
        #expect(problems.map(\.keyPath).sorted() == ["admin.allowed_key_env[1]", "admin.allowed_key_env[2]", "endpoints[0].api_key_env"])
        configuration.admin.allowedKeyEnv = ["HOSTED_KEY"]
        configuration.endpoints[0].apiKeyEnv = "HOSTED_KEY"
        #expect(configuration.problems().isEmpty)
    }

    @Test func validateThrowsAllProblemsAtOnce() {
        var configuration = Self.valid()
        configuration.server.maxAttempts = 0
        configuration.logging.level = "loud"
        #expect(throws: InvalidConfiguration.self) { try configuration.validate() }
        do {
            try configuration.validate()
        } catch {
            #expect(error.problems.count == 2)
            #expect(error.description.contains("server.max_attempts"))
            #expect(error.description.contains("logging.level"))
        }
    }
}

@Suite struct UpstreamURLTests {
    @Test(arguments: [
        ("http://127.0.0.1:8000/v1", "http", "127.0.0.1", 8000, "/v1"),
        ("https://api.example.com/v1/", "https", "api.example.com", 443, "/v1"),
        ("http://localhost", "http", "localhost", 80, ""),
        ("http://[::1]:9000/openai/v1", "http", "[::1]", 9000, "/openai/v1"),
    ])
    func parsesBaseURLs(text: String, scheme: String, host: String, port: Int, path: String) throws {
        let url = try #require(UpstreamURL(text))
        #expect(url.scheme == scheme)
        #expect(url.host == host)
        #expect(url.port == port)
        #expect(url.basePath == path)
    }

    @Test(arguments: [
        "", "127.0.0.1:8000", "ftp://host", "http://", "http://host:notaport", "http://user@host", "http://host:0", "http://h/v1?x=1",
        // What would end up in a request line: whitespace, CR/LF, control characters, other bytes.
        "http://h/v1 HTTP/1.1\r\nX-Evil: 1\r\n", "http://h/a b", "http://h/v1\n", "http://h\t/v1", "http://h/v1\u{7F}", "http://h/v1\u{0}",
        "http://h/caf\u{E9}", "http://h/%zz", "http://h/%4", "http://h/a\"b", "http://h/a<b>", "http://h/a\\b", "http://h/a{b}",
        "http://ho st/v1", "http://h\u{E9}/v1", "http://h!/v1", "http://[::1/v1", "http://[fe80::1%eth0]/v1", "http://h:+80/v1", "http://h:080000/v1",
        " http://h/v1", "http://h/v1 ",
    ])
    func refusesWhatIsNotABaseURL(text: String) {
        #expect(UpstreamURL(text) == nil)
        #expect(UpstreamURL.problem(with: text) != nil)
        if let problem = UpstreamURL.problem(with: text) {
            #expect(!problem.contains("\r") && !problem.contains("\n"), "the message shows control characters escaped: \(problem)")
        }
    }

    @Test func acceptsPathsOfURLCharacters() {
        for text in ["http://h/v1/%E2%82%AC/x", "http://my_host-1.example:8000/a-b/c.d/~e/f@g:h;i=j,k+l!m$n&o'p(q)r*s", "http://10.0.0.5/v1"] {
            #expect(UpstreamURL(text) != nil, "\(text)")
        }
    }

    @Test func appendsAPIPaths() throws {
        let url = try #require(UpstreamURL("http://10.0.0.5:8000/v1"))
        #expect(url.appending("/chat/completions") == "http://10.0.0.5:8000/v1/chat/completions")
    }
}
