import AsyncHTTPClient
import Foundation
import NIOCore
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// Hostile bodies over real HTTP: each gets a prompt answer (200, or a 4xx in the OpenAI error format)
/// and afterwards the gateway answers `/healthz`, serves an ordinary request, and every endpoint is
/// back where it started (nothing in flight, nothing awaiting a first token, breaker closed).
@Suite(.serialized) struct HostileInputTests {
    static let request = #"{"model":"chat","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Un caf\u00e9, s'il vous pla\u00eet \ud83d\ude00"}],"max_tokens":16,"temperature":0.2}"#

    /// The probes besides truncations and mutations, by name.
    static func probes() -> [(String, [UInt8])] {
        func body(_ text: String) -> [UInt8] { Array(text.utf8) }
        func with(_ fragment: String) -> [UInt8] {
            body(#"{"model":"chat","messages":[{"role":"user","content":"hi"}],"# + fragment + "}")
        }
        let deep = #"{"model":"chat","messages":[{"role":"user","content":"#
            + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}]}"
        let deepObjects = #"{"model":"chat","messages":[{"role":"user","content":"hi"}],"x":"# + String(repeating: #"{"a":"#, count: 10_000)
            + "1" + String(repeating: "}", count: 10_000) + "}"
        var probes: [(String, [UInt8])] = [
            ("the 6-byte body of issue 12", body(#"{"\u"}"#)),
            ("a string ending in \\u", body(#"{"model":"chat","messages":[{"role":"user","content":"\u"#)),
            ("\\u cut inside the document", body(#"{"model":"chat","messages":[{"role":"user","content":"\u00"}]}"#)),
            ("lone high surrogate", body(#"{"model":"chat","messages":[{"role":"user","content":"\ud800"}]}"#)),
            ("lone low surrogate", body(#"{"model":"chat","messages":[{"role":"user","content":"\udc00x"}]}"#)),
            ("reversed surrogates", body(#"{"model":"chat","messages":[{"role":"user","content":"\ude00\ud83d"}]}"#)),
            ("depth 10,000 arrays", body(deep)),
            ("depth 10,000 objects", body(deepObjects)),
            ("max_tokens Int.max", with(#""max_tokens":9223372036854775807"#)),
            ("max_tokens beyond Int", with(#""max_tokens":99999999999999999999999"#)),
            ("max_tokens 1e308", with(#""max_tokens":1e308"#)),
            ("max_tokens NaN", with(#""max_tokens":NaN"#)),
            ("max_tokens Infinity", with(#""max_tokens":Infinity"#)),
            ("max_tokens -0", with(#""max_tokens":-0"#)),
            ("temperature 1e400", with(#""temperature":1e400"#)),
            ("n huge", with(#""n":9223372036854775807"#)),
            ("duplicate model keys", body(#"{"model":"nope","model":"chat","messages":[{"role":"user","content":"hi"}]}"#)),
            ("duplicate messages keys", body(#"{"model":"chat","messages":[{"role":"user","content":"hi"}],"messages":[]}"#)),
            ("model as a number", body(#"{"model":1e308,"messages":[{"role":"user","content":"hi"}]}"#)),
            ("messages as an object", body(#"{"model":"chat","messages":{"role":"user"}}"#)),
            ("stream as a string", with(#""stream":"true""#)),
            ("stream_options as a number", with(#""stream":true,"stream_options":1"#)),
            ("include_usage as a string", with(#""stream":true,"stream_options":{"include_usage":"yes"}"#)),
            ("a top-level array", body(#"[{"model":"chat"}]"#)),
            ("a bare string", body(#""chat""#)),
            ("an empty body", []),
            ("whitespace only", body(" \r\n\t ")),
            ("NUL bytes", [0, 0, 0, 0]),
            ("a NUL inside a string", body(#"{"model":"ch"#) + [0] + body(#"at","messages":[{"role":"user","content":"hi"}]}"#)),
            ("trailing garbage", body(request + "x")),
            ("two documents", body(request + request)),
            ("a byte-order mark", [0xEF, 0xBB, 0xBF] + body(request)),
        ]
        let invalidUTF8: [[UInt8]] = [[0xFF], [0xC0, 0xAF], [0xC3], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x80]]
        for (index, sequence) in invalidUTF8.enumerated() {
            probes.append(("invalid UTF-8 #\(index) in a string", body(#"{"model":"chat","messages":[{"role":"user","content":"a"#) + sequence + body(#"b"}]}"#)))
            probes.append(("invalid UTF-8 #\(index) in the model", body(#"{"model":"ch"#) + sequence + body(#"","messages":[{"role":"user","content":"hi"}]}"#)))
        }
        return probes
    }

    /// One POST with a deadline: a request the gateway never answers fails the test instead of
    /// hanging it.
    static func post(_ gateway: RunningGateway, _ path: String, _ body: [UInt8]) async throws -> TestHTTP.Reply {
        var request = HTTPClientRequest(url: gateway.baseURL + path)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await TestHTTP.client.execute(request, timeout: .seconds(10))
        let collected = try await response.body.collect(upTo: 1 << 20)
        return TestHTTP.Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: collected))
    }

    /// 200, or a 4xx whose body is an OpenAI error object with a message.
    static func checkAnswer(_ reply: TestHTTP.Reply, _ label: String) {
        if reply.status == 200 { return }
        #expect((400..<500).contains(reply.status), "\(label): \(reply.status) \(reply.body.prefix(300))")
        let message = reply.errorObject?["message"] as? String
        #expect(message?.isEmpty == false, "\(label): not an OpenAI error: \(reply.body.prefix(300))")
        #expect(reply.errorObject?["type"] is String, "\(label)")
    }

    /// Sends bodies a few at a time (as separate callers would) and checks each answer.
    static func send(_ bodies: [(String, [UInt8])], to gateway: RunningGateway, path: String = "/v1/chat/completions") async throws -> [Int: Int] {
        var statuses: [Int: Int] = [:]
        var index = 0
        while index < bodies.count {
            let batch = bodies[index..<min(bodies.count, index + 8)]
            index += batch.count
            let replies = try await withThrowingTaskGroup(of: (String, TestHTTP.Reply).self) { group in
                for (label, body) in batch {
                    group.addTask { (label, try await post(gateway, path, body)) }
                }
                var replies: [(String, TestHTTP.Reply)] = []
                for try await reply in group { replies.append(reply) }
                return replies
            }
            for (label, reply) in replies {
                checkAnswer(reply, label)
                statuses[reply.status, default: 0] += 1
            }
        }
        return statuses
    }

    static func checkRecovered(_ gateway: RunningGateway, _ upstream: FaultyUpstream) async throws {
        #expect(try await TestHTTP.get(gateway.baseURL + "/healthz").status == 200)
        #expect(try await post(gateway, "/v1/chat/completions", Array(request.utf8)).status == 200)
        #expect(try await ClaimLifecycleTests.settled(gateway), "every endpoint's in-flight and awaiting counts are back to 0")
        let (_, telemetry, now) = gateway.gateway.state.current()
        #expect(telemetry.statuses.allSatisfy { $0.breaker.state(at: now) == .closed && $0.failures == 0 })
    }

    static func withGateway(_ body: (RunningGateway, FaultyUpstream) async throws -> Void) async throws {
        let upstream = try await FaultyUpstream.start()
        let gateway = try await RunningGateway.start(
            GatewayProxyTests.configuration([(upstream.baseURL, "ok")]), environment: ["UPSTREAM_KEY": "k"])
        do {
            try await body(gateway, upstream)
        } catch {
            await gateway.stop()
            await upstream.stop()
            throw error
        }
        await gateway.stop()
        await upstream.stop()
    }

    @Test func everyTruncationOfARequestGetsAPromptAnswer() async throws {
        try await Self.withGateway { gateway, upstream in
            let bytes = Array(Self.request.utf8)
            let cuts = (0..<bytes.count).map { ("cut at \($0)", Array(bytes[0..<$0])) }
            let statuses = try await Self.send(cuts, to: gateway)
            #expect(statuses == [400: bytes.count], "no truncation of an object is a request: \(statuses)")
            try await Self.checkRecovered(gateway, upstream)
        }
    }

    @Test func hostileBodiesGetAPromptAnswer() async throws {
        try await Self.withGateway { gateway, upstream in
            let probes = Self.probes()
            for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/route/explain"] {
                _ = try await Self.send(probes.map { ("\(path) \($0.0)", $0.1) }, to: gateway, path: path)
            }
            try await Self.checkRecovered(gateway, upstream)
        }
    }

    @Test func mutatedRequestsGetAPromptAnswer() async throws {
        try await Self.withGateway { gateway, upstream in
            var random = SplitMix64(seed: Fuzzing.seed)
            let seed = Array(Self.request.utf8)
            let mutations = (0..<min(Fuzzing.iterations(default: 300), 5_000)).map { ("mutation \($0)", Fuzzing.mutate(seed, using: &random)) }
            let statuses = try await Self.send(mutations, to: gateway)
            #expect(statuses[200, default: 0] > 0 && statuses[400, default: 0] > 0, "\(statuses)")
            try await Self.checkRecovered(gateway, upstream)
        }
    }
}
