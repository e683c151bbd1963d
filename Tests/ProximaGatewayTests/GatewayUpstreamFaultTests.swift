import HTTPTypes
import ProximaCore
import Testing
@testable import ProximaGateway

/// Broken upstreams seen through the gateway: what the caller gets, and what the upstream received.
@Suite(.serialized) struct GatewayUpstreamFaultTests {
    func withGateway(_ url: String, _ body: (RunningGateway) async throws -> Void) async throws {
        let gateway = try await RunningGateway.start(
            GatewayProxyTests.configuration([(url, "ok")]), environment: ["UPSTREAM_KEY": "k"])
        do {
            try await body(gateway)
        } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }

    @Test func aPostTheUpstreamReadThenDroppedReachesItOnceAndTheCallerGetsAnUpstreamError() async throws {
        let upstream = try await ClosingUpstream.start()
        try await withGateway("http://127.0.0.1:\(upstream.port)/v1") { gateway in
            let first = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: GatewayProxyTests.chatBody)
            #expect(first.status == 200 && first.body == "answered")
            // The pooled connection is reused; the upstream reads this POST and closes without answering.
            let second = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: GatewayProxyTests.chatBody)
            #expect(second.status == 502)
            #expect(second.errorObject?["code"] as? String == "upstream_error")
            #expect(upstream.requestsRead.load(ordering: .relaxed) == 2)
            #expect(upstream.connections.load(ordering: .relaxed) == 1)
        }
        try await upstream.stop()
    }

    @Test func upstreamsAreAskedForIdentityAndACompressedPlainAnswerKeepsItsEncoding() async throws {
        let faulty = try await FaultyUpstream.start()
        try await withGateway(faulty.baseURL) { gateway in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: GatewayProxyTests.chatBody)
            #expect(reply.status == 200)
            #expect(faulty.lastHeaders.withLock { $0[.acceptEncoding] } == "identity")
        }
        await faulty.stop()
        let body = "gzip-compressed-bytes"
        let upstream = try await ScriptedUpstream.start { _ in
            [.send(ScriptedUpstream.answer(body, headers: "content-encoding: gzip\r\n"))]
        }
        try await withGateway(upstream.baseURL) { gateway in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: GatewayProxyTests.chatBody)
            #expect(reply.status == 200)
            // The bytes pass through as they are, so the caller must be told how to read them.
            #expect(reply.headers.first(name: "content-encoding") == "gzip")
            #expect(reply.body == body)
        }
        try await upstream.stop()
    }

    @Test func aCompressedStreamIsACleanUpstreamErrorNotGarbledEvents() async throws {
        let upstream = try await ScriptedUpstream.start { _ in
            [
                .send(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
                        + "transfer-encoding: chunked\r\n\r\n5\r\nGZabc\r\n0\r\n\r\n")
            ]
        }
        try await withGateway(upstream.baseURL) { gateway in
            let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: GatewayProxyTests.streamBody)
            #expect(reply.status == 502)
            #expect(reply.errorObject?["code"] as? String == "upstream_error")
            #expect((reply.errorObject?["message"] as? String)?.contains("content-encoding") == true)
            let healthz = try await TestHTTP.get(gateway.baseURL + "/healthz")
            #expect(healthz.status == 200)
        }
        try await upstream.stop()
    }

    /// A head of 10,000 fields (built apart: inline, with the database libraries' operators in
    /// scope, the expression takes the type checker too long).
    static let tenThousandHeaders: String = {
        var head = "HTTP/1.1 200 OK\r\n"
        for index in 0..<10_000 { head += "x-h\(index): v\r\n" }
        return head + "\r\n"
    }()

    /// Each broken answer, through a gateway of its own: a clean 502 or 504 in the OpenAI error
    /// format, the gateway still serving, the endpoint's in-flight count back to zero and no upstream
    /// connection left open.
    @Test(arguments: [
        ("short body", [ScriptedUpstream.Step.send("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort"), .close], 502),
        ("bad chunk size", [.send("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n")], 502),
        ("gzip transfer coding", [.send("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nGZ\r\n0\r\n\r\n")], 502),
        ("10,000 headers", [.send(Self.tenThousandHeaders)], 502),
        ("closed unanswered", [.close], 502),
        ("unfinished head", [.send("HTTP/1.1 200 OK\r\ncontent-le")], 504),
        ("head one byte at a time", [.trickle("HTTP/1.1 200 OK\r\n" + String(repeating: "x: y\r\n", count: 100), every: .milliseconds(20))], 504),
    ])
    func aBrokenAnswerEndsCleanlyAndLeavesNothingBehind(probe: String, script: [ScriptedUpstream.Step], status: Int) async throws {
        let upstream = try await ScriptedUpstream.start { _ in script }
        var configuration = GatewayProxyTests.configuration([(upstream.baseURL, "ok")], timeouts: .init(firstByte: 0.5))
        configuration.server.upstreamClient = .pooled
        let gateway = try await RunningGateway.start(configuration, environment: ["UPSTREAM_KEY": "k"])
        // A plain request may wait first_byte plus 0.2 s per token it may generate: 0.7 s here.
        let body = #"{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":1}"#
        let reply = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: body)
        #expect(reply.status == status, "\(probe)")
        #expect(reply.errorObject?["code"] as? String == (status == 504 ? "upstream_timeout" : "upstream_error"), "\(probe)")
        #expect(try await TestHTTP.get(gateway.baseURL + "/healthz").status == 200, "\(probe)")
        #expect(try await eventually { gateway.gateway.state.current().1.statuses[0].inFlight == 0 }, "\(probe)")
        let pool = try #require(gateway.gateway.pooledClient)
        #expect(try await eventually { pool.connectionCounts(host: "127.0.0.1", port: upstream.port).open == 0 }, "\(probe)")
        await gateway.stop()
        try await upstream.stop()
    }
}
