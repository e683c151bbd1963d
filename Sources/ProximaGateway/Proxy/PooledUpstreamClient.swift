import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Why an exchange with an upstream failed, as seen by the pooled client.
enum UpstreamClientError: Error, Equatable, CustomStringConvertible {
    /// The TCP connection was not established within the connect timeout.
    case connectTimeout
    /// No response head before the deadline.
    case headTimeout
    /// The response stopped arriving for longer than the idle timeout.
    case idleTimeout
    /// The connection closed before a response head arrived.
    case closedBeforeResponse
    /// The connection closed in the middle of a response body.
    case closedMidResponse
    /// The upstream sent something that is not a valid HTTP/1.1 response.
    case protocolViolation(String)
    /// Every connection the pool may hold to this upstream is busy.
    case connectionLimit(Int)

    var description: String {
        switch self {
        case .connectTimeout: "connect timeout"
        case .headTimeout: "no response within the time limit"
        case .idleTimeout: "idle timeout"
        case .closedBeforeResponse: "connection closed before a response"
        case .closedMidResponse: "connection closed in the middle of the response"
        case .protocolViolation(let detail): "invalid HTTP response: \(detail)"
        case .connectionLimit(let limit): "all \(limit) connections busy"
        }
    }
}

/// An HTTP/1.1 client for plain-HTTP upstreams, lean enough for the request path: keep-alive
/// connections are pooled per upstream and reused, a request goes out in one write (head and body
/// flushed together), and the answer is read part by part with backpressure. Deadlines live on the
/// connection's event loop (one timer per exchange), not in extra tasks.
///
/// A request that finds a pooled connection closed before it answered is sent once more on a new
/// connection (the upstream never saw it). An exchange given up halfway (cancelled, timed out, or
/// its body dropped unread) closes its connection; only a cleanly finished keep-alive exchange
/// returns its connection to the pool.
final class PooledUpstreamClient: Sendable {
    struct Settings: Sendable {
        var connectTimeout: TimeAmount
        /// Longest silence allowed between two parts of an answer.
        var idleTimeout: TimeAmount
        /// Connections to one upstream, busy and idle together.
        var maxConnectionsPerHost: Int
        /// Idle connections older than this are closed instead of reused.
        var maxIdleTime: Duration
    }

    let group: any EventLoopGroup
    let settings: Settings
    private let pools = Mutex<[PoolKey: HostPool]>([:])

    struct PoolKey: Hashable, Sendable {
        var host: String
        var port: Int
    }

    private struct HostPool {
        /// Connections opened and not yet closed: busy plus idle.
        var open = 0
        /// Idle connections, most recently used last.
        var idle: [(connection: UpstreamConnection, since: ContinuousClock.Instant)] = []
    }

    init(group: any EventLoopGroup, settings: Settings) {
        self.group = group
        self.settings = settings
    }

    /// Sends a request and waits for the head of its answer.
    /// - Parameters:
    ///   - head: method, path and headers; `host` and `content-length` are added here.
    ///   - headDeadline: when the response head must have arrived.
    ///   - eventLoop: where to open a new connection (the caller's, to avoid thread hops).
    func execute(
        host: String, port: Int, head: HTTPRequestHead, body: ByteBuffer, headDeadline: NIODeadline,
        eventLoop: (any EventLoop)? = nil
    ) async throws -> PooledUpstreamResponse {
        let key = PoolKey(host: host, port: port)
        var head = head
        head.headers.add(name: "host", value: port == 80 ? host : "\(host):\(port)")
        head.headers.add(name: "content-length", value: String(body.readableBytes))
        let request = UpstreamRequestParts(head: head, body: body, headDeadline: headDeadline, idleTimeout: settings.idleTimeout)
        var retried = false
        while true {
            let (connection, reused) = try await acquire(key, eventLoop: eventLoop)
            connection.send(request)
            do {
                guard let first = try await connection.inbox.next() else { throw UpstreamClientError.closedBeforeResponse }
                guard case .head(let responseHead) = first else {
                    throw UpstreamClientError.protocolViolation("a body before the response head")
                }
                return PooledUpstreamResponse(
                    head: responseHead, sentAt: connection.inbox.requestSentAt ?? .now, headArrivedAt: connection.inbox.lastArrival,
                    body: PooledUpstreamBody(
                        exchange: PooledExchange(connection: connection, client: self, key: key, keepAlive: responseHead.isKeepAlive)))
            } catch UpstreamClientError.closedBeforeResponse where reused && !retried {
                // The upstream closed an idle connection as the request went out: it never saw it.
                retried = true
                release(connection, key: key, reusable: false)
            } catch {
                release(connection, key: key, reusable: false)
                throw error
            }
        }
    }

    /// Closes the idle connections; busy ones close as their exchanges end.
    func closeIdle() {
        let idle = pools.withLock { pools in
            var closing: [UpstreamConnection] = []
            for key in pools.keys {
                closing += pools[key]!.idle.map(\.connection)
                pools[key]!.open -= pools[key]!.idle.count
                pools[key]!.idle = []
            }
            return closing
        }
        for connection in idle { connection.close() }
    }

    /// Connections currently open to an upstream (busy and idle), and the idle ones.
    func connectionCounts(host: String, port: Int) -> (open: Int, idle: Int) {
        pools.withLock { pools in
            let pool = pools[PoolKey(host: host, port: port)]
            return (pool?.open ?? 0, pool?.idle.count ?? 0)
        }
    }

    // MARK: pool

    private enum Acquired {
        case pooled(UpstreamConnection)
        case connect
        case full
    }

    private func acquire(_ key: PoolKey, eventLoop: (any EventLoop)?) async throws -> (UpstreamConnection, reused: Bool) {
        let now = ContinuousClock.now
        let maxIdle = settings.maxIdleTime
        let limit = settings.maxConnectionsPerHost
        var stale: [UpstreamConnection] = []
        let acquired = pools.withLock { pools -> Acquired in
            var pool = pools[key, default: HostPool()]
            defer { pools[key] = pool }
            // The oldest idle connections sit first: close those past their time.
            while let oldest = pool.idle.first, now - oldest.since > maxIdle || !oldest.connection.channel.isActive {
                stale.append(pool.idle.removeFirst().connection)
                pool.open -= 1
            }
            while let newest = pool.idle.popLast() {
                if newest.connection.channel.isActive { return .pooled(newest.connection) }
                stale.append(newest.connection)
                pool.open -= 1
            }
            guard pool.open < limit else { return .full }
            pool.open += 1
            return .connect
        }
        for connection in stale { connection.close() }
        switch acquired {
        case .pooled(let connection):
            return (connection, true)
        case .full:
            throw UpstreamClientError.connectionLimit(limit)
        case .connect:
            do {
                return (try await connect(key, eventLoop: eventLoop ?? group.next()), false)
            } catch {
                pools.withLock { $0[key]?.open -= 1 }
                if let error = error as? ChannelError, case .connectTimeout = error { throw UpstreamClientError.connectTimeout }
                throw error
            }
        }
    }

    /// Returns a connection after an exchange: to the pool when it can serve another, else closed.
    func release(_ connection: UpstreamConnection, key: PoolKey, reusable: Bool) {
        let keep = reusable && connection.channel.isActive
        let kept = pools.withLock { pools -> Bool in
            if keep {
                pools[key, default: HostPool()].idle.append((connection, ContinuousClock.now))
                return true
            }
            pools[key]?.open -= 1
            return false
        }
        if !kept { connection.close() }
    }

    private func connect(_ key: PoolKey, eventLoop: any EventLoop) async throws -> UpstreamConnection {
        let host = key.host.hasPrefix("[") && key.host.hasSuffix("]") ? String(key.host.dropFirst().dropLast()) : key.host
        let inbox = UpstreamInbox()
        let channel = try await ClientBootstrap(group: eventLoop)
            .connectTimeout(settings.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(HTTPRequestEncoder())
                    try operations.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try operations.addHandler(NIOHTTPRequestHeadersValidator())
                    try operations.addHandler(UpstreamConnectionHandler(inbox: inbox))
                }
            }
            .connect(host: host, port: key.port)
            .get()
        inbox.attach(channel)
        return UpstreamConnection(channel: channel, inbox: inbox)
    }
}

/// What goes down the connection's pipeline for one request: the parts and the deadlines, which
/// the connection handler arms as the request leaves.
struct UpstreamRequestParts: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer
    var headDeadline: NIODeadline
    var idleTimeout: TimeAmount
}

/// One pooled connection: its channel and the inbox its answers arrive in.
final class UpstreamConnection: Sendable {
    let channel: any Channel
    let inbox: UpstreamInbox

    init(channel: any Channel, inbox: UpstreamInbox) {
        self.channel = channel
        self.inbox = inbox
    }

    func send(_ request: UpstreamRequestParts) {
        channel.writeAndFlush(request, promise: nil)
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// The head of an upstream answer, and its body to read.
struct PooledUpstreamResponse: Sendable {
    var head: HTTPResponseHead
    /// When the request went into the socket, and when the head came out of it (on the event loop):
    /// the time between is the upstream's, not the gateway's.
    var sentAt: ContinuousClock.Instant
    var headArrivedAt: ContinuousClock.Instant
    var body: PooledUpstreamBody
}

/// The body of one answer, read once. Reading it to the end returns the connection to the pool;
/// dropping it before the end closes the connection.
struct PooledUpstreamBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let exchange: PooledExchange

    struct AsyncIterator: AsyncIteratorProtocol {
        let exchange: PooledExchange
        mutating func next() async throws -> ByteBuffer? { try await exchange.next() }
        /// When the part last returned arrived from the socket.
        var lastArrival: ContinuousClock.Instant { exchange.connection.inbox.lastArrival }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(exchange: exchange) }
}

/// One exchange on a leased connection, from the response head to the end of the body.
/// Read by one task at a time.
final class PooledExchange: @unchecked Sendable {
    let connection: UpstreamConnection
    private let client: PooledUpstreamClient
    private let key: PooledUpstreamClient.PoolKey
    private let keepAlive: Bool
    private var finished = false

    init(connection: UpstreamConnection, client: PooledUpstreamClient, key: PooledUpstreamClient.PoolKey, keepAlive: Bool) {
        self.connection = connection
        self.client = client
        self.key = key
        self.keepAlive = keepAlive
    }

    func next() async throws -> ByteBuffer? {
        guard !finished else { return nil }
        do {
            switch try await connection.inbox.next() {
            case .body(let buffer):
                return buffer
            case .end:
                finished = true
                client.release(connection, key: key, reusable: keepAlive)
                return nil
            case .head:
                throw UpstreamClientError.protocolViolation("a second response head")
            case nil:
                throw UpstreamClientError.closedMidResponse
            }
        } catch {
            finished = true
            client.release(connection, key: key, reusable: false)
            throw error
        }
    }

    deinit {
        if !finished { client.release(connection, key: key, reusable: false) }
    }
}

/// Where a connection's response parts wait for the task reading them. The event loop appends;
/// one task at a time takes. When `highWatermark` parts are waiting, the connection stops reading
/// from the socket until the reader has taken them down to `lowWatermark`.
final class UpstreamInbox: Sendable {
    static let highWatermark = 16
    static let lowWatermark = 4

    private struct State {
        var parts = CircularBuffer<(HTTPClientResponsePart, ContinuousClock.Instant)>(initialCapacity: 4)
        var requestSentAt: ContinuousClock.Instant?
        var lastArrival = ContinuousClock.now
        var waiter: UnsafeContinuation<HTTPClientResponsePart?, any Error>?
        var failure: (any Error)?
        var closed = false
        /// The socket read held back because the inbox is full.
        var readHeld = false
        var channel: (any Channel)?
    }

    private let state = Mutex(State())

    func attach(_ channel: any Channel) {
        state.withLock { $0.channel = channel }
    }

    /// When the current request was written to the socket.
    var requestSentAt: ContinuousClock.Instant? { state.withLock { $0.requestSentAt } }
    /// When the part the reader took last arrived from the socket.
    var lastArrival: ContinuousClock.Instant { state.withLock { $0.lastArrival } }

    func requestSent(at instant: ContinuousClock.Instant) {
        state.withLock { $0.requestSentAt = instant }
    }

    // MARK: event loop side

    func deliver(_ part: HTTPClientResponsePart, at arrival: ContinuousClock.Instant) {
        let waiter = state.withLock { state -> UnsafeContinuation<HTTPClientResponsePart?, any Error>? in
            if let waiter = state.waiter {
                state.waiter = nil
                state.lastArrival = arrival
                return waiter
            }
            state.parts.append((part, arrival))
            return nil
        }
        waiter?.resume(returning: part)
    }

    /// Whether the socket may be read now; if not, the read is held until the reader catches up.
    func mayRead() -> Bool {
        state.withLock { state in
            if state.parts.count >= Self.highWatermark {
                state.readHeld = true
                return false
            }
            return true
        }
    }

    /// The connection failed or closed: wakes the reader with the failure, or with the end.
    func finish(_ failure: (any Error)?) {
        let waiter = state.withLock { state -> UnsafeContinuation<HTTPClientResponsePart?, any Error>? in
            if state.failure == nil, !state.closed { state.failure = failure }
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        guard let waiter else { return }
        if let failure { waiter.resume(throwing: failure) } else { waiter.resume(returning: nil) }
    }

    // MARK: reader side

    private enum Take {
        case part(HTTPClientResponsePart, resumeReading: (any Channel)?)
        case failed(any Error)
        case ended
        case wait
    }

    private func take(_ state: inout State) -> Take {
        if let (part, arrival) = state.parts.popFirst() {
            state.lastArrival = arrival
            var resume: (any Channel)?
            if state.readHeld, state.parts.count <= Self.lowWatermark {
                state.readHeld = false
                resume = state.channel
            }
            return .part(part, resumeReading: resume)
        }
        if let failure = state.failure { return .failed(failure) }
        if state.closed { return .ended }
        return .wait
    }

    /// The next part of the answer; nil when the connection closed. Cancelling the reading task
    /// closes the connection.
    func next() async throws -> HTTPClientResponsePart? {
        switch state.withLock({ take(&$0) }) {
        case .part(let part, let resume):
            resume?.read()
            return part
        case .failed(let error):
            throw error
        case .ended:
            return nil
        case .wait:
            break
        }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<HTTPClientResponsePart?, any Error>) in
                let outcome = state.withLock { state -> Take in
                    let taken = take(&state)
                    if case .wait = taken { state.waiter = continuation }
                    return taken
                }
                switch outcome {
                case .part(let part, let resume):
                    resume?.read()
                    continuation.resume(returning: part)
                case .failed(let error):
                    continuation.resume(throwing: error)
                case .ended:
                    continuation.resume(returning: nil)
                case .wait:
                    break
                }
            }
        } onCancel: {
            let channel = state.withLock { $0.channel }
            finish(CancellationError())
            channel?.close(promise: nil)
        }
    }
}

/// The last handler of an upstream connection: writes requests, arms their deadlines, and hands
/// response parts to the inbox.
final class UpstreamConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = UpstreamRequestParts
    typealias OutboundOut = HTTPClientRequestPart

    private let inbox: UpstreamInbox
    private var headDeadline: NIODeadline?
    private var idleTimeout = TimeAmount.seconds(60)
    private var lastRead = NIODeadline.now()
    private var awaiting = false
    private var timer: Scheduled<Void>?

    init(inbox: UpstreamInbox) {
        self.inbox = inbox
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        headDeadline = request.headDeadline
        idleTimeout = request.idleTimeout
        lastRead = .now()
        awaiting = true
        armTimer(context: context)
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
        inbox.requestSent(at: .now)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        lastRead = .now()
        switch part {
        case .head(let head) where head.status.code >= 100 && head.status.code < 200:
            return  // informational: the real head follows
        case .head:
            headDeadline = nil
            if awaiting { armTimer(context: context) }  // from now on, the idle timeout
        case .end:
            awaiting = false
            timer?.cancel()
            timer = nil
        case .body:
            break
        }
        inbox.deliver(part, at: .now)
    }

    func read(context: ChannelHandlerContext) {
        if inbox.mayRead() { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        inbox.finish(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        inbox.finish(Self.describe(error))
        context.close(promise: nil)
    }

    private static func describe(_ error: any Error) -> any Error {
        if error is HTTPParserError || error is NIOHTTPDecoderError {
            return UpstreamClientError.protocolViolation(String(describing: error))
        }
        return error
    }

    /// One timer per exchange: when it fires early (a part arrived meanwhile), it sets itself again.
    private func armTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        // Until the head arrives only its deadline applies: an engine answering a plain request is
        // silent for the whole generation, and a stream's prefill may outlast the idle timeout.
        let due = headDeadline ?? lastRead + idleTimeout
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: due) {
            let (handler, context) = loopBound.value
            handler.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        guard awaiting else { return }
        let now = NIODeadline.now()
        if let deadline = headDeadline {
            if now >= deadline { expire(.headTimeout, context: context) } else { armTimer(context: context) }
        } else if now >= lastRead + idleTimeout {
            expire(.idleTimeout, context: context)
        } else {
            armTimer(context: context)
        }
    }

    private func expire(_ error: UpstreamClientError, context: ChannelHandlerContext) {
        awaiting = false
        inbox.finish(error)
        context.close(promise: nil)
    }
}
