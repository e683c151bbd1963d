import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ProximaCore
import Testing
@testable import ProximaEmulator

enum EmulatorHTTP {
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(2), read: .seconds(60))
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }()

    struct Reply {
        var status: Int
        var body: String
        var firstChunkAfter: Duration?
        /// Time from sending to the end of the body, in seconds.
        var totalSeconds: Double = 0
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] }
    }

    static func chat(_ base: String, words: Int = 20, maxTokens: Int = 8, stream: Bool = false, location: String? = nil, timeout: Duration = .seconds(60))
        async throws -> Reply
    {
        let prompt = (0..<words).map { "word\($0)" }.joined(separator: " ")
        var request = HTTPClientRequest(url: base + "/chat/completions")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        if let location { request.headers.add(name: "x-proxima-client-location", value: location) }
        request.body = .bytes(
            ByteBuffer(
                string: #"{"model":"emu","messages":[{"role":"user","content":"\#(prompt)"}],"max_tokens":\#(maxTokens),"stream":\#(stream),"stream_options":{"include_usage":true}}"#))
        let start = ContinuousClock.now
        let response = try await client.execute(request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
        var body = ""
        var first: Duration?
        for try await chunk in response.body {
            if first == nil { first = ContinuousClock.now - start }
            body += String(buffer: chunk)
        }
        let total = ContinuousClock.now - start
        return Reply(
            status: Int(response.status.code), body: body, firstChunkAfter: first,
            totalSeconds: total.seconds)
    }

    static func get(_ url: String) async throws -> String {
        let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        return String(buffer: try await response.body.collect(upTo: 1 << 22))
    }
}

func freePort() throws -> Int {
    let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
    let port = channel.localAddress?.port ?? 0
    try channel.close().wait()
    return port
}

/// A one- or two-endpoint emulated fleet in Frankfurt on free loopback ports.
func withEmulatedFleet(profiles: [String] = ["H100-8B"], _ body: (EmulatorFleet) async throws -> Void) async throws {
    var endpoints: [EndpointSettings] = []
    for (index, profile) in profiles.enumerated() {
        endpoints.append(
            EndpointSettings(
                name: "emu\(index)", url: "http://127.0.0.1:\(try freePort())/v1", site: "frankfurt", engine: .emulated,
                models: [.init(name: "emu")], gpu: .init(profile: profile)))
    }
    let configuration = ProximaConfiguration(
        sites: [SiteSettings(name: "frankfurt", latitude: 50.11, longitude: 8.68)], endpoints: endpoints)
    let fleet = try await EmulatorFleet.start(configuration: configuration, logger: Logger(label: "emu", factory: { _ in SwiftLogNoOpLogHandler() }))
    do {
        try await body(fleet)
    } catch {
        await fleet.stop()
        throw error
    }
    await fleet.stop()
}

@Suite(.serialized) struct EmulatorTests {
    @Test func answersWithExactlyTheTokenCountsItReports() async throws {
        try await withEmulatedFleet { fleet in
            let base = fleet.baseURL(of: "emu0")!
            let plain = try await EmulatorHTTP.chat(base, words: 30, maxTokens: 12)
            #expect(plain.status == 200)
            let usage = try #require(plain.json?["usage"] as? [String: Any])
            #expect(usage["prompt_tokens"] as? Int == 30)
            #expect(usage["completion_tokens"] as? Int == 12)
            let message = ((plain.json?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
            #expect(message?.split(separator: " ").count == 12)

            let stream = try await EmulatorHTTP.chat(base, words: 30, maxTokens: 7, stream: true)
            let events = stream.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.filter { $0.contains("\"content\":\"") }.count == 7)
            #expect(stream.body.contains(#""completion_tokens":7"#))
            #expect(events.last == "data: [DONE]")
            let models = try await EmulatorHTTP.get(base + "/models")
            #expect(models.contains("\"id\":\"emu\""))
        }
    }

    @Test func badInputGetsAClearErrorAndFaultsAreValidated() async throws {
        try await withEmulatedFleet { fleet in
            let base = fleet.baseURL(of: "emu0")!
            func post(_ body: String) async throws -> (Int, String) {
                var request = HTTPClientRequest(url: base + "/chat/completions")
                request.method = .POST
                request.body = .bytes(ByteBuffer(string: body))
                let response = try await EmulatorHTTP.client.execute(request, timeout: .seconds(10))
                return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
            }
            let malformed = try await post("{not json")
            #expect(malformed.0 == 400 && malformed.1.contains("\"error\""))
            let noMessages = try await post(#"{"model":"emu","messages":[]}"#)
            #expect(noMessages.0 == 400 && noMessages.1.contains("\"param\":\"messages\""))
            let unknown = try await post(#"{"model":"other","messages":[{"role":"user","content":"x"}]}"#)
            #expect(unknown.0 == 404)
            await #expect(throws: EmulatorFleet.Failure.self) { try await fleet.setFaults(.init(slowdown: 0.5), on: "emu0") }
            await #expect(throws: EmulatorFleet.Failure.self) { try await fleet.setFaults(.none, on: "nowhere") }
            #expect(fleet.faults(of: "emu0") == FaultSettings.none)
            #expect(try await EmulatorHTTP.chat(base).status == 200)
        }
    }

    @Test func farCallersWaitTheirRoundTrip() async throws {
        try await withEmulatedFleet { fleet in
            let base = fleet.baseURL(of: "emu0")!
            _ = try await EmulatorHTTP.chat(base, maxTokens: 1)  // warm the connection
            let near = try await EmulatorHTTP.chat(base, maxTokens: 1, location: "50.11,8.68")
            let far = try await EmulatorHTTP.chat(base, maxTokens: 1, location: "-33.87,151.21")
            // Frankfurt-Sydney is about 16,500 km: a round trip of some 330 ms at twice the fibre bound.
            let difference = far.firstChunkAfter! - near.firstChunkAfter!
            #expect(difference > .milliseconds(250))
            #expect(difference < .milliseconds(900))
        }
    }

    @Test func crashRefusesConnectionsAndRecoveryServesAgain() async throws {
        try await withEmulatedFleet { fleet in
            let base = fleet.baseURL(of: "emu0")!
            try await fleet.setFaults(.init(crash: true), on: "emu0")
            await #expect(throws: (any Error).self) { _ = try await EmulatorHTTP.chat(base, timeout: .seconds(2)) }
            try await fleet.setFaults(.none, on: "emu0")
            #expect(try await EmulatorHTTP.chat(base).status == 200)
        }
    }

    @Test func errorAbortHangAndSlowdownFaults() async throws {
        try await withEmulatedFleet { fleet in
            let base = fleet.baseURL(of: "emu0")!
            try await fleet.setFaults(.init(errorRate: 1), on: "emu0")
            let failed = try await EmulatorHTTP.chat(base)
            #expect(failed.status == 503)
            #expect((failed.json?["error"] as? [String: Any])?["message"] is String)

            try await fleet.setFaults(.init(abortRate: 1), on: "emu0")
            await #expect(throws: (any Error).self) { _ = try await EmulatorHTTP.chat(base, maxTokens: 10, stream: true) }

            try await fleet.setFaults(.init(hang: true), on: "emu0")
            await #expect(throws: (any Error).self) { _ = try await EmulatorHTTP.chat(base, timeout: .seconds(1)) }

            try await fleet.setFaults(.none, on: "emu0")
            let normal = try await EmulatorHTTP.chat(base, words: 10, maxTokens: 20, stream: true)
            try await fleet.setFaults(.init(slowdown: 5), on: "emu0")
            let slowed = try await EmulatorHTTP.chat(base, words: 10, maxTokens: 20, stream: true)
            #expect(normal.status == 200 && slowed.status == 200)
            #expect(slowed.totalSeconds > normal.totalSeconds * 3)
        }
    }

    @Test func exposesVLLMMetricsThatTheSharedParserReads() async throws {
        try await withEmulatedFleet(profiles: ["H100-8B"]) { fleet in
            let base = fleet.baseURL(of: "emu0")!
            async let load: [EmulatorHTTP.Reply] = withThrowingTaskGroup(of: EmulatorHTTP.Reply.self) { group in
                for _ in 0..<6 { group.addTask { try await EmulatorHTTP.chat(base, words: 50, maxTokens: 200, stream: true) } }
                var replies: [EmulatorHTTP.Reply] = []
                for try await reply in group { replies.append(reply) }
                return replies
            }
            try await Task.sleep(for: .milliseconds(300))
            let during = EngineLoadSnapshot(samples: PrometheusText.parse(try await EmulatorHTTP.get(base.replacingOccurrences(of: "/v1", with: "/metrics"))))
            #expect((during.running ?? 0) + (during.waiting ?? 0) >= 1)
            #expect((during.kvCacheUsage ?? 0) > 0)
            #expect((during.powerWatts ?? 0) > 0)
            let replies = try await load
            #expect(replies.allSatisfy { $0.status == 200 })
            let after = PrometheusText.parse(try await EmulatorHTTP.get(base.replacingOccurrences(of: "/v1", with: "/metrics")))
            #expect(EngineLoadSnapshot(samples: after).running == 0)
            #expect(after.contains { $0.name == "vllm:time_to_first_token_seconds_count" && $0.value == 6 })
        }
    }

    @Test func sharedPrefixesHitThePrefixCache() async throws {
        try await withEmulatedFleet { fleet in
            let base = fleet.baseURL(of: "emu0")!
            let blockTokens = GPUProfile.named("H100-8B")!.blockTokens
            let first = try await EmulatorHTTP.chat(base, words: blockTokens * 4 + 3, maxTokens: 2)
            let second = try await EmulatorHTTP.chat(base, words: blockTokens * 4 + 3, maxTokens: 2)
            let cachedFirst = ((first.json?["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int
            let cachedSecond = ((second.json?["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int
            #expect(cachedFirst == 0)
            #expect(cachedSecond == blockTokens * 4)
            let metrics = EngineLoadSnapshot(samples: PrometheusText.parse(try await EmulatorHTTP.get(base.replacingOccurrences(of: "/v1", with: "/metrics"))))
            #expect(metrics.prefixCacheHits == 4)
        }
    }
}
