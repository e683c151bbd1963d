import AsyncHTTPClient
import Foundation
import NIOCore
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// What an upstream says can be as hostile as what a caller sends: answers the gateway reads (for
/// usage, errors and events) never stop it, and a stream that never ends is ended by the gateway.
@Suite(.serialized) struct BrokenUpstreamContentTests {
    static let cut = #"{"id":"x","usage":{"prompt_tokens":1},"a":"\u"#

    /// A whole event-stream answer with a length.
    static func events(_ body: String) -> String {
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: \(body.utf8.count)\r\n\r\n" + body
    }

    @Test(arguments: [
        ("plain answer ending in \\u", ScriptedUpstream.answer(cut), false),
        ("event ending in \\u", events("data: " + cut + "\n\ndata: [DONE]\n\n"), true),
        ("invalid JSON events", events("data: {\"choices\":[{]]\n\ndata: [DONE]\n\n"), true),
        // Token counters refuse negative steps (a precondition in the Prometheus client).
        ("negative usage in a plain answer", ScriptedUpstream.answer(#"{"id":"x","usage":{"prompt_tokens":-1,"completion_tokens":-7},"a":"\u00e9"}"#), false),
        ("negative usage in an event", events(#"data: {"choices":[{"index":0,"delta":{"content":"caf\u00e9"}}],"usage":{"prompt_tokens":-1,"completion_tokens":-7}}"# + "\n\ndata: [DONE]\n\n"), true),
    ])
    func aTruncatedOrInvalidAnswerIsRelayedWithoutStoppingTheGateway(probe: String, answer: String, stream: Bool) async throws {
        let upstream = try await ScriptedUpstream.start { _ in [.send(answer)] }
        let gateway = try await RunningGateway.start(
            GatewayProxyTests.configuration([(upstream.baseURL, "ok")]), environment: ["UPSTREAM_KEY": "k"])
        for _ in 0..<3 {
            let reply = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions", json: stream ? GatewayProxyTests.streamBody : GatewayProxyTests.chatBody)
            #expect(reply.status == 200, "\(probe)")
            #expect(reply.body.contains(#"\u"#) || reply.body.contains("{]]"), "\(probe): relayed as it came: \(reply.body)")
        }
        #expect(try await TestHTTP.get(gateway.baseURL + "/healthz").status == 200, "\(probe)")
        #expect(try await eventually { gateway.gateway.state.current().1.statuses[0].inFlight == 0 }, "\(probe)")
        await gateway.stop()
        try await upstream.stop()
    }

    @Test func anEndlessStreamIsEndedAtTheTotalLimit() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        // `slow-stream` sends an event every 200 ms for 5 s; the total limit is 1 s.
        try await GatewayProxyTests().withGateway([(upstream.baseURL, "slow-stream")], timeouts: .init(total: 1)) { gateway in
            let started = ContinuousClock.now
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: GatewayProxyTests.streamBody)
            #expect(ContinuousClock.now - started < .seconds(4))
            #expect(reply.status == 200)
            #expect(reply.body.contains("total time limit"))
            #expect(!reply.body.contains("[DONE]"))
            #expect(try await eventually { upstream.activeStreams.load(ordering: .relaxed) == 0 }, "the upstream stream was cancelled")
            #expect(try await eventually { gateway.gateway.state.current().1.statuses[0].inFlight == 0 })
            #expect(gateway.gateway.state.current().1.statuses[0].failures == 0, "the request's own limit is not the endpoint's failure")
        }
    }
}
