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

    @Test(arguments: ["", "127.0.0.1:8000", "ftp://host", "http://", "http://host:notaport", "http://user@host", "http://host:0", "http://h/v1?x=1"])
    func refusesWhatIsNotABaseURL(text: String) {
        #expect(UpstreamURL(text) == nil)
    }

    @Test func appendsAPIPaths() throws {
        let url = try #require(UpstreamURL("http://10.0.0.5:8000/v1"))
        #expect(url.appending("/chat/completions") == "http://10.0.0.5:8000/v1/chat/completions")
    }
}
