import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
@testable import ProximaGateway

/// The pooled client against upstreams that break HTTP, over real sockets: each ends in a clean
/// error or a clean retry, and leaves no connection behind.
@Suite struct UpstreamFaultTests {
    func makeClient(idle: TimeAmount = .seconds(30)) -> PooledUpstreamClient {
        PooledUpstreamClient(
            group: MultiThreadedEventLoopGroup.singleton,
            settings: .init(connectTimeout: .seconds(2), idleTimeout: idle, maxConnectionsPerHost: 64, maxIdleTime: .seconds(60)))
    }

    func head() -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions")
        head.headers.add(name: "content-type", value: "application/json")
        return head
    }

    /// Sends a request and reads its whole answer: the text, or the error.
    func exchange(
        _ client: PooledUpstreamClient, port: Int, body: ByteBuffer = ByteBuffer(string: #"{"model":"m"}"#),
        within: TimeAmount = .seconds(10)
    ) async -> Result<(status: Int, text: String), any Error> {
        do {
            let response = try await client.execute(
                host: "127.0.0.1", port: port, head: head(), body: body, headDeadline: .now() + within)
            var text = ""
            for try await chunk in response.body { text += String(buffer: chunk) }
            return .success((Int(response.head.status.code), text))
        } catch {
            return .failure(error)
        }
    }

    /// The error of a failed exchange, as the pooled client's own type.
    func failure(_ result: Result<(status: Int, text: String), any Error>) -> UpstreamClientError? {
        guard case .failure(let error) = result else {
            Issue.record("expected a failure, got \(result)")
            return nil
        }
        guard let error = error as? UpstreamClientError else {
            Issue.record("not a clean client error: \(error)")
            return nil
        }
        return error
    }

    func open(_ client: PooledUpstreamClient, _ upstream: ScriptedUpstream) -> Int {
        client.connectionCounts(host: "127.0.0.1", port: upstream.port).open
    }

    // MARK: reuse and resending

    @Test func anEarlyAnswerWithKeepAliveDoesNotReuseTheConnection() async throws {
        // 413 as soon as the head arrives; the 32 MB body stays unread, so it cannot all be written.
        let upstream = try await ScriptedUpstream.start(moment: .atHead) { _ in
            [.send(ScriptedUpstream.answer(#"{"error":"too large"}"#, status: "413 Payload Too Large"))]
        }
        let client = makeClient()
        let big = ByteBuffer(repeating: UInt8(ascii: "a"), count: 32 << 20)
        let first = await exchange(client, port: upstream.port, body: big)
        #expect((try? first.get().status) == 413)
        // Reusing it would append the next request to the unread tail of this one.
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port) == (0, 0))
        let second = await exchange(client, port: upstream.port)
        #expect((try? second.get().status) == 413)
        #expect(upstream.connections.load(ordering: .relaxed) == 2)
        #expect(upstream.heads.load(ordering: .relaxed) == 2)
        client.closeIdle()
        try await upstream.stop()
    }

    @Test func aStaleIdleConnectionIsReplacedAndTheRequestSentOnce() async throws {
        // Each connection answers one request with keep-alive, then the upstream closes it while idle.
        let upstream = try await ScriptedUpstream.start { _ in
            [.send(ScriptedUpstream.answer("one")), .pause(.milliseconds(20)), .close]
        }
        let client = makeClient()
        #expect((try? await exchange(client, port: upstream.port).get().text) == "one")
        // The pool notices the close by itself.
        for _ in 0..<250 where open(client, upstream) > 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port) == (0, 0))
        #expect((try? await exchange(client, port: upstream.port).get().text) == "one")
        #expect(upstream.requests.load(ordering: .relaxed) == 2)
        #expect(upstream.connections.load(ordering: .relaxed) == 2)
        client.closeIdle()
        try await upstream.stop()
    }

    @Test func aCancelledCallerSendsNothing() async throws {
        let upstream = try await ScriptedUpstream.start { _ in [.send(ScriptedUpstream.answer("one"))] }
        let client = makeClient()
        #expect((try? await exchange(client, port: upstream.port).get().text) == "one")
        let port = upstream.port
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await exchange(client, port: port)
        }
        guard case .failure(let error) = await task.value else {
            Issue.record("a cancelled request was answered")
            return
        }
        #expect(error is CancellationError)
        // Not a byte went out, and the idle connection is still good.
        #expect(upstream.heads.load(ordering: .relaxed) == 1)
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port) == (1, 1))
        client.closeIdle()
        try await upstream.stop()
    }

    @Test func aSlowReaderIsNotTakenForAnIdleUpstream() async throws {
        // 40 events 20 ms apart fill the inbox while the reader sleeps well past the idle timeout.
        // (The timeout is a whole second so that a busy machine delaying the upstream's 20 ms pauses
        // is not taken for its silence.)
        let upstream = try await FaultyUpstream.start()
        let client = makeClient(idle: .seconds(1))
        let response = try await client.execute(
            host: "127.0.0.1", port: upstream.port, head: head(),
            body: ByteBuffer(string: #"{"model":"many-events","stream":true}"#), headDeadline: .now() + .seconds(10))
        var iterator = response.body.makeAsyncIterator()
        var text = try await iterator.next().map { String(buffer: $0) } ?? ""
        try await Task.sleep(for: .seconds(3))
        while let chunk = try await iterator.next() { text += String(buffer: chunk) }
        #expect(text.contains("\"e0\"") && text.contains("\"e39\"") && text.hasSuffix("data: [DONE]\n\n"))
        client.closeIdle()
        await upstream.stop()
    }

    @Test func theIdleTimerRestartsWhenTheReaderCatchesUp() async throws {
        // The same slow reader, but the upstream goes silent after its events: that silence is its own.
        let upstream = try await FaultyUpstream.start()
        let client = makeClient(idle: .seconds(1))
        let response = try await client.execute(
            host: "127.0.0.1", port: upstream.port, head: head(),
            body: ByteBuffer(string: #"{"model":"many-events-stall","stream":true}"#), headDeadline: .now() + .seconds(10))
        var iterator = response.body.makeAsyncIterator()
        var text = try await iterator.next().map { String(buffer: $0) } ?? ""
        try await Task.sleep(for: .seconds(3))
        await #expect(throws: UpstreamClientError.idleTimeout) {
            while let chunk = try await iterator.next() { text += String(buffer: chunk) }
        }
        #expect(text.contains("\"e39\""))
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port).open == 0)
        await upstream.stop()
    }

    // MARK: broken answers

    @Test func aShortBodyIsAnErrorNotATruncatedAnswer() async throws {
        let upstream = try await ScriptedUpstream.start { _ in
            [.send("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this"), .close]
        }
        let client = makeClient()
        let error = failure(await exchange(client, port: upstream.port))
        switch error {
        case .closedMidResponse?, .protocolViolation?: break
        default: Issue.record("gave \(String(describing: error))")
        }
        #expect(open(client, upstream) == 0)
        try await upstream.stop()
    }

    @Test func badChunkSizesAreAProtocolError() async throws {
        for chunks in ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\nffffffffffffffffffff\r\n", "5\r\nhelloXX0\r\n\r\n"] {
            let upstream = try await ScriptedUpstream.start { _ in
                [.send("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks)]
            }
            let client = makeClient()
            let error = failure(await exchange(client, port: upstream.port))
            guard case .protocolViolation = error else {
                Issue.record("\(chunks.debugDescription) gave \(String(describing: error))")
                continue
            }
            #expect(open(client, upstream) == 0)
            try await upstream.stop()
        }
    }

    @Test func gzipTransferCodingIsRefusedNotReadAsPlain() async throws {
        let upstream = try await ScriptedUpstream.start { _ in
            [.send("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nGZabc\r\n0\r\n\r\n")]
        }
        let client = makeClient()
        let error = failure(await exchange(client, port: upstream.port))
        guard case .protocolViolation(let detail) = error else {
            Issue.record("gave \(String(describing: error))")
            return
        }
        #expect(detail.contains("gzip"))
        #expect(open(client, upstream) == 0)
        try await upstream.stop()
    }

    @Test func anUnfinishedHeadEndsAtTheHeadDeadline() async throws {
        let upstream = try await ScriptedUpstream.start { _ in [.send("HTTP/1.1 200 OK\r\ncontent-le")] }
        let client = makeClient()
        #expect(failure(await exchange(client, port: upstream.port, within: .milliseconds(300))) == .headTimeout)
        #expect(open(client, upstream) == 0)
        try await upstream.stop()
    }

    @Test func aHeadTricklingByteByByteStillEndsAtTheHeadDeadline() async throws {
        // Bytes keep coming, each well within the idle timeout, but the head never completes in time.
        let head = "HTTP/1.1 200 OK\r\n" + String(repeating: "x-slow: 1\r\n", count: 20) + "content-length: 2\r\n\r\nok"
        let upstream = try await ScriptedUpstream.start { _ in [.trickle(head, every: .milliseconds(20))] }
        let client = makeClient(idle: .milliseconds(200))
        #expect(failure(await exchange(client, port: upstream.port, within: .milliseconds(800))) == .headTimeout)
        #expect(open(client, upstream) == 0)
        try await upstream.stop()
    }

    @Test func aBodyTricklingWithinTheIdleTimeoutCompletes() async throws {
        let upstream = try await ScriptedUpstream.start { _ in
            [.send("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"), .trickle("hello world!", every: .milliseconds(40))]
        }
        let client = makeClient(idle: .seconds(2))
        #expect((try? await exchange(client, port: upstream.port).get().text) == "hello world!")
        client.closeIdle()
        try await upstream.stop()
    }

    @Test func hugeHeadsAreRefusedWithABoundedBuffer() async throws {
        let manyHeaders = "HTTP/1.1 200 OK\r\n" + (0..<10_000).map { "x-h\($0): v\r\n" }.joined() + "content-length: 2\r\n\r\nok"
        let longHeader = "HTTP/1.1 200 OK\r\nx-big: " + String(repeating: "a", count: 70_000) + "\r\ncontent-length: 2\r\n\r\nok"
        for answer in [manyHeaders, longHeader] {
            let upstream = try await ScriptedUpstream.start { _ in [.send(answer)] }
            let client = makeClient()
            let error = failure(await exchange(client, port: upstream.port))
            guard case .protocolViolation = error else {
                Issue.record("gave \(String(describing: error))")
                continue
            }
            #expect(open(client, upstream) == 0)
            try await upstream.stop()
        }
    }

    @Test func answersOnAnIdleConnectionCloseIt() async throws {
        // A second, unasked-for answer right after the first: the connection cannot be trusted.
        let upstream = try await ScriptedUpstream.start { _ in
            [.send(ScriptedUpstream.answer("one")), .pause(.milliseconds(20)), .send(ScriptedUpstream.answer("two"))]
        }
        let client = makeClient()
        #expect((try? await exchange(client, port: upstream.port).get().text) == "one")
        for _ in 0..<250 where open(client, upstream) > 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(open(client, upstream) == 0)
        #expect((try? await exchange(client, port: upstream.port).get().text) == "one")
        client.closeIdle()
        try await upstream.stop()
    }
}
