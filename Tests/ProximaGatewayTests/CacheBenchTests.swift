import Foundation
import Logging
import ProximaBench
import ProximaCore
import ProximaEmulator
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// `proxima bench cache`'s pass on a small emulated fleet behind the gateway, cache off: every
/// request accounted for, and the fleet's counters agree with what the callers were told.
@Suite(.serialized) struct CacheBenchTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func aShortPassWithTheCacheOffAccountsForEveryRequestAndToken() async throws {
        var configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "us-east", latitude: 38.95, longitude: -77.45)],
            endpoints: [
                EndpointSettings(
                    name: "chat-1", url: "http://127.0.0.1/v1", site: "us-east", engine: .emulated, models: [.init(name: "llama-8b")],
                    gpu: .init(profile: "H100-8B", count: 2), pricing: .init(inputPerMillion: 0.2, outputPerMillion: 0.6)),
                EndpointSettings(
                    name: "embed-1", url: "http://127.0.0.1/v1", site: "us-east", engine: .emulated, models: [.init(name: "emu-embed")],
                    gpu: .init(profile: "L40S-8B"), pricing: .init(inputPerMillion: 0.02)),
            ],
            models: [ModelSettings(name: "llama-8b"), ModelSettings(name: "emu-embed", kind: .embeddings)])
        let workload = try CacheWorkload.build(
            pairs: try CacheWorkload.loadPairs(from: Self.root + "/data/fow-cache"),
            trace: try TraceFiles.load("mooncake", from: Self.root + "/data/traces"), rate: 6, duration: 3, maxOutputTokens: 24)
        #expect(workload.arrivals.count >= 10)
        let fleet = try await EmulatorFleet.start(configuration: configuration, logger: Logger(label: "emu", factory: { _ in SwiftLogNoOpLogHandler() }))
        for index in configuration.endpoints.indices {
            configuration.endpoints[index].url = try #require(fleet.baseURL(of: configuration.endpoints[index].name))
        }
        let endpoints = MeteredEndpoint.all(in: configuration) { name in fleet.port(of: name).map { "http://127.0.0.1:\($0)/metrics" } }
        #expect(endpoints.map(\.servesEmbeddings) == [false, true])
        let gateway = try await RunningGateway.start(configuration)
        let summary = await CacheRunSummary.measure(
            label: "cache off", workload: workload, baseURL: gateway.baseURL + "/v1", model: "llama-8b", endpoints: endpoints)
        await gateway.stop()
        await fleet.stop()

        let arrivals = workload.arrivals.count
        #expect(summary.requests == arrivals)
        #expect(summary.succeeded == arrivals)
        #expect(summary.errors.isEmpty)
        // The cache is off: no header, nothing served from it, no wrong hit.
        #expect(summary.byCacheHeader == ["absent": arrivals])
        #expect(summary.hits == 0 && summary.wrongHits == 0)
        #expect(summary.byKind.values.reduce(0, +) == arrivals)
        // Every requested token was generated upstream and billed; the fleet's counters agree.
        let requestedTokens = workload.arrivals.map(\.maxTokens).reduce(0, +)
        #expect(summary.billedCompletionTokens == requestedTokens)
        #expect(summary.chatGeneratedTokens == Double(requestedTokens))
        #expect(summary.chatPromptTokens == Double(summary.billedPromptTokens))
        #expect(summary.embeddingTokens == 0 && summary.embeddingGPUSeconds == 0)
        #expect(summary.chatGPUSeconds > 0)
        let expectedCost = summary.chatPromptTokens * 0.2 / 1e6 + summary.chatGeneratedTokens * 0.6 / 1e6
        #expect(abs(summary.cost - expectedCost) < 1e-12)
        #expect(summary.timeToFirstToken.count == arrivals && summary.endToEnd.count == arrivals)
        let markdown = CacheBenchReport(workload: "test", runs: [summary]).markdown()
        #expect(markdown.contains("| cache: absent | \(arrivals) (100.0%) |"))
    }
}
