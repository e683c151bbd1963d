import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

@Suite struct PooledUpstreamClientTests {
    func makeClient(idle: TimeAmount = .seconds(30), limit: Int = 64) -> PooledUpstreamClient {
        PooledUpstreamClient(
            group: MultiThreadedEventLoopGroup.singleton,
            settings: .init(connectTimeout: .seconds(2), idleTimeout: idle, maxConnectionsPerHost: limit, maxIdleTime: .seconds(60)))
    }

    func head(stream: Bool = false) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions")
        head.headers.add(name: "content-type", value: "application/json")
        head.headers.add(name: "accept", value: stream ? "text/event-stream" : "application/json")
        return head
    }

    func body(model: String, stream: Bool = false) -> ByteBuffer {
        ByteBuffer(string: #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}],"stream":\#(stream)}"#)
    }

    func send(
        _ client: PooledUpstreamClient, port: Int, model: String, stream: Bool = false, within: TimeAmount = .seconds(5)
    ) async throws -> PooledUpstreamResponse {
        try await client.execute(
            host: "127.0.0.1", port: port, head: head(stream: stream), body: body(model: model, stream: stream),
            headDeadline: .now() + within)
    }

    func text(_ body: PooledUpstreamBody) async throws -> String {
        var collected = ""
        for try await chunk in body { collected += String(buffer: chunk) }
        return collected
    }

    @Test func reusesOneConnectionForSequentialRequests() async throws {
        let upstream = try await FaultyUpstream.start()
        let client = makeClient()
        for _ in 0..<5 {
            let response = try await send(client, port: upstream.port, model: "ok")
            #expect(response.head.status == .ok)
            #expect(try await text(response.body).contains("Hello!"))
        }
        #expect(upstream.received.load(ordering: .relaxed) == 5)
        let counts = client.connectionCounts(host: "127.0.0.1", port: upstream.port)
        #expect(counts.open == 1 && counts.idle == 1)
        // The length is added by the client.
        let headers = upstream.lastHeaders.withLock { $0 }
        #expect(headers[.contentLength] == String(body(model: "ok").readableBytes))
        client.closeIdle()
        await upstream.stop()
    }

    @Test func streamsArriveInOrderAndTheConnectionReturnsAfterTheEnd() async throws {
        let upstream = try await FaultyUpstream.start()
        let client = makeClient()
        let response = try await send(client, port: upstream.port, model: "ok", stream: true)
        let events = try await text(response.body)
        #expect(events.contains("\"Hel\"") && events.hasSuffix("data: [DONE]\n\n"))
        #expect(events.range(of: "\"Hel\"")!.lowerBound < events.range(of: "\"lo\"")!.lowerBound)
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port).idle == 1)
        client.closeIdle()
        await upstream.stop()
    }

    @Test func neverSendsAgainARequestTheUpstreamReadBeforeClosing() async throws {
        let upstream = try await ClosingUpstream.start()
        let client = makeClient()
        let first = try await send(client, port: upstream.port, model: "ok")
        #expect(try await text(first.body) == "answered")
        // The upstream reads the whole second POST on the reused connection, then closes: it may be
        // generating (and billing) it, so it is not sent again.
        await #expect(throws: UpstreamClientError.closedBeforeResponse) {
            _ = try await send(client, port: upstream.port, model: "ok")
        }
        #expect(upstream.requestsRead.load(ordering: .relaxed) == 2)
        #expect(upstream.connections.load(ordering: .relaxed) == 1)
        #expect(upstream.answered.load(ordering: .relaxed) == 1)
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port).open == 0)
        try await upstream.stop()
    }

    @Test func anIdempotencyKeyMakesTheSameCaseReplayable() async throws {
        let upstream = try await ClosingUpstream.start()
        let client = makeClient()
        var head = head()
        head.headers.add(name: "idempotency-key", value: "k-1")
        for _ in 0..<2 {
            let response = try await client.execute(
                host: "127.0.0.1", port: upstream.port, head: head, body: body(model: "ok"), headDeadline: .now() + .seconds(5))
            #expect(try await text(response.body) == "answered")
        }
        #expect(upstream.connections.load(ordering: .relaxed) == 2)
        #expect(upstream.answered.load(ordering: .relaxed) == 2)
        client.closeIdle()
        try await upstream.stop()
    }

    @Test func theHeadDeadlineEndsAHangingRequestAndClosesItsConnection() async throws {
        let upstream = try await FaultyUpstream.start()
        let client = makeClient()
        await #expect(throws: UpstreamClientError.headTimeout) {
            _ = try await send(client, port: upstream.port, model: "hang", within: .milliseconds(200))
        }
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port).open == 0)
        await upstream.stop()
    }

    @Test func theIdleTimeoutEndsAStalledStream() async throws {
        let upstream = try await FaultyUpstream.start()
        let client = makeClient(idle: .milliseconds(200))
        let response = try await send(client, port: upstream.port, model: "stream-stall", stream: true)
        var iterator = response.body.makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first.map { String(buffer: $0) }?.contains("\"a\"") == true)
        await #expect(throws: UpstreamClientError.idleTimeout) { _ = try await iterator.next() }
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port).open == 0)
        await upstream.stop()
    }

    @Test func theAnswerDeadlineEndsAnAnswerThatKeepsTrickling() async throws {
        // Parts arrive every 200 ms, well within the idle timeout: only the whole-answer deadline
        // (a plain request's deadline, kept by the client) can end it.
        let upstream = try await FaultyUpstream.start()
        let client = makeClient(idle: .seconds(30))
        let started = NIODeadline.now()
        let response = try await client.execute(
            host: "127.0.0.1", port: upstream.port, head: head(stream: true), body: body(model: "slow-stream", stream: true),
            headDeadline: .now() + .seconds(5), answerDeadline: .now() + .milliseconds(700))
        var parts = 0
        await #expect(throws: UpstreamClientError.headTimeout) {
            for try await _ in response.body { parts += 1 }
        }
        #expect(parts >= 1)
        #expect(NIODeadline.now() - started < .seconds(4))
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port).open == 0)
        await upstream.stop()
    }

    @Test func aBodyDroppedUnreadClosesItsConnection() async throws {
        let upstream = try await FaultyUpstream.start()
        let client = makeClient()
        do {
            let response = try await send(client, port: upstream.port, model: "slow-stream", stream: true)
            var iterator = response.body.makeAsyncIterator()
            _ = try await iterator.next()
            #expect(upstream.activeStreams.load(ordering: .relaxed) == 1)
        }
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port).open == 0)
        // The upstream notices the close and stops writing.
        for _ in 0..<100 where upstream.activeStreams.load(ordering: .relaxed) > 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(upstream.activeStreams.load(ordering: .relaxed) == 0)
        await upstream.stop()
    }

    @Test func cancellingTheWaitingTaskClosesTheConnection() async throws {
        let upstream = try await FaultyUpstream.start()
        let client = makeClient()
        let port = upstream.port
        let task = Task { try await send(client, port: port, model: "hang", within: .seconds(60)) }
        for _ in 0..<100 where upstream.received.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        #expect(client.connectionCounts(host: "127.0.0.1", port: upstream.port).open == 0)
        await upstream.stop()
    }

    @Test func aFullPoolRefusesAtOnceInsteadOfQueueing() async throws {
        let upstream = try await FaultyUpstream.start()
        let client = makeClient(limit: 1)
        let port = upstream.port
        let hanging = Task { try await send(client, port: port, model: "hang", within: .seconds(60)) }
        for _ in 0..<100 where upstream.received.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        await #expect(throws: UpstreamClientError.connectionLimit(1)) {
            _ = try await send(client, port: port, model: "ok")
        }
        hanging.cancel()
        _ = try? await hanging.value
        // The slot is free again.
        let response = try await send(client, port: port, model: "ok")
        #expect(try await text(response.body).contains("Hello!"))
        client.closeIdle()
        await upstream.stop()
    }

    @Test func aRefusedConnectionFailsAtOnce() async throws {
        let client = makeClient()
        // Port 1 on loopback: nothing listens.
        await #expect(throws: (any Error).self) { _ = try await send(client, port: 1, model: "ok") }
        #expect(client.connectionCounts(host: "127.0.0.1", port: 1).open == 0)
    }
}

/// An upstream that answers the first request on each connection with keep-alive, then reads the
/// whole second request and closes the connection without answering it: a server that crashed or
/// restarted while handling it, or whose keep-alive timer fired just as the request arrived.
final class ClosingUpstream: Sendable {
    let port: Int
    let connections = Atomic<Int>(0)
    let answered = Atomic<Int>(0)
    /// Whole requests read, answered or not.
    let requestsRead = Atomic<Int>(0)
    private let channel: any Channel

    static func start() async throws -> ClosingUpstream {
        let box = Mutex<ClosingUpstream?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Without pipelining assistance, whose handler would hold back a close while a request awaits its answer.
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false)
                    try channel.pipeline.syncOperations.addHandler(Handler(owner: { box.withLock { $0 } }))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let upstream = ClosingUpstream(port: channel.localAddress?.port ?? 0, channel: channel)
        box.withLock { $0 = upstream }
        return upstream
    }

    private init(port: Int, channel: any Channel) {
        self.port = port
        self.channel = channel
    }

    func stop() async throws { try await channel.close() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let owner: @Sendable () -> ClosingUpstream?
        var requests = 0

        init(owner: @escaping @Sendable () -> ClosingUpstream?) { self.owner = owner }

        func channelActive(context: ChannelHandlerContext) {
            owner()?.connections.add(1, ordering: .relaxed)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            owner()?.requestsRead.add(1, ordering: .relaxed)
            requests += 1
            guard requests == 1 else {
                context.close(promise: nil)
                return
            }
            owner()?.answered.add(1, ordering: .relaxed)
            var head = HTTPResponseHead(version: .http1_1, status: .ok)
            head.headers.add(name: "content-length", value: "8")
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "answered")))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
