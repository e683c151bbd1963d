import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Why an exchange with an upstream failed, as seen by the pooled client.
enum UpstreamClientError: Error, Equatable, CustomStringConvertible {
    /// The TCP connection was not established within the connect timeout.
    case connectTimeout
    /// No response head before the deadline, or (for a plain answer) not all of the answer.
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
/// Each connection runs `UpstreamConnection.StateMachine`, which decides reuse and resending: a
/// request is sent again (once, on a new connection) only when no byte of it can have reached the
/// upstream, or when it carries an `Idempotency-Key`; a connection returns to the pool only after a
/// fully written request and a clean, length-delimited keep-alive answer. An exchange given up
/// halfway (cancelled, timed out, or its body dropped unread) closes its connection.
final class PooledUpstreamClient: Sendable {
    struct Settings: Sendable {
        var connectTimeout: TimeAmount
        /// Longest silence allowed between two parts of an answer once its head arrived (before it,
        /// the head deadline applies); paused while the reader holds reads back.
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
    ///   - answerDeadline: when the whole answer must have arrived (a plain answer: its deadline is
    ///     kept here, on the connection's event loop, rather than by a task beside the reader).
    ///   - eventLoop: where to open a new connection (the caller's, to avoid thread hops).
    func execute(
        host: String, port: Int, head: HTTPRequestHead, body: ByteBuffer, headDeadline: NIODeadline,
        answerDeadline: NIODeadline = .distantFuture, eventLoop: (any EventLoop)? = nil
    ) async throws -> PooledUpstreamResponse {
        let key = PoolKey(host: host, port: port)
        var head = head
        head.headers.add(name: "host", value: port == 80 ? host : "\(host):\(port)")
        head.headers.add(name: "content-length", value: String(body.readableBytes))
        let request = UpstreamRequestParts(
            head: head, body: body, headDeadline: headDeadline, answerDeadline: answerDeadline, idleTimeout: settings.idleTimeout,
            replayable: head.headers.contains(name: "idempotency-key"))
        var resent = false
        while true {
            // Nothing goes out for a caller that already left.
            try Task.checkCancellation()
            let connection = try await acquire(key, eventLoop: eventLoop, fresh: resent)
            if Task.isCancelled {
                release(connection, key: key, reusable: true)
                throw CancellationError()
            }
            connection.send(request)
            do {
                guard let first = try await connection.inbox.next() else { throw UpstreamClientError.closedBeforeResponse }
                guard case .head(let responseHead) = first else {
                    throw UpstreamClientError.protocolViolation("a body before the response head")
                }
                return PooledUpstreamResponse(
                    head: responseHead, sentAt: connection.inbox.requestSentAt ?? .now, headArrivedAt: connection.inbox.lastArrival,
                    body: PooledUpstreamBody(exchange: PooledExchange(connection: connection, client: self, key: key)))
            } catch let failure as UpstreamInbox.Resendable {
                // No byte of the request reached the upstream (a stale idle connection), or it is
                // replayable: once more, on a new connection.
                release(connection, key: key, reusable: false)
                guard !resent else { throw failure.error }
                resent = true
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
                for (connection, _) in pools[key]!.idle where connection.retire() {
                    pools[key]!.open -= 1
                    closing.append(connection)
                }
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

    /// A connection for one exchange: the most recently used idle one, unless `fresh`, else a new one.
    private func acquire(_ key: PoolKey, eventLoop: (any EventLoop)?, fresh: Bool) async throws -> UpstreamConnection {
        let now = ContinuousClock.now
        let maxIdle = settings.maxIdleTime
        let limit = settings.maxConnectionsPerHost
        var stale: [UpstreamConnection] = []
        let acquired = pools.withLock { pools -> Acquired in
            var pool = pools[key, default: HostPool()]
            defer { pools[key] = pool }
            // The oldest idle connections sit first: close those past their time.
            while let oldest = pool.idle.first, now - oldest.since > maxIdle || !oldest.connection.channel.isActive {
                let connection = pool.idle.removeFirst().connection
                if connection.retire() { pool.open -= 1 }
                stale.append(connection)
            }
            while !fresh, let newest = pool.idle.popLast() {
                if newest.connection.channel.isActive { return .pooled(newest.connection) }
                if newest.connection.retire() { pool.open -= 1 }
                stale.append(newest.connection)
            }
            guard pool.open < limit else { return .full }
            pool.open += 1
            return .connect
        }
        for connection in stale { connection.close() }
        switch acquired {
        case .pooled(let connection):
            return connection
        case .full:
            throw UpstreamClientError.connectionLimit(limit)
        case .connect:
            do {
                return try await connect(key, eventLoop: eventLoop ?? group.next())
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
        pools.withLock { pools in
            if keep, !connection.isRetired {
                pools[key, default: HostPool()].idle.append((connection, ContinuousClock.now))
            } else if connection.retire() {
                pools[key]?.open -= 1
            }
        }
        if !keep { connection.close() }
    }

    /// A connection closed (by either side, busy or idle): it leaves the count and the idle list.
    private func closed(_ connection: UpstreamConnection, key: PoolKey) {
        pools.withLock { pools in
            guard connection.retire() else { return }
            pools[key]?.open -= 1
            pools[key]?.idle.removeAll { $0.connection === connection }
        }
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
                    try operations.addHandler(
                        ByteToMessageHandler(
                            HTTPResponseDecoder(
                                leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop,
                                limitConfiguration: UpstreamConnectionHandler.decoderLimits)))
                    try operations.addHandler(NIOHTTPRequestHeadersValidator())
                    try operations.addHandler(UpstreamConnectionHandler(inbox: inbox))
                }
            }
            .connect(host: host, port: key.port)
            .get()
        inbox.attach(channel)
        let connection = UpstreamConnection(channel: channel, inbox: inbox)
        channel.closeFuture.whenComplete { [weak self] _ in self?.closed(connection, key: key) }
        return connection
    }
}

/// What goes down the connection's pipeline for one request: the parts and the deadlines, which
/// the connection handler arms as the request leaves.
struct UpstreamRequestParts: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer
    var headDeadline: NIODeadline
    /// When the last byte of the answer must have arrived; `distantFuture` for streams, which the
    /// idle timeout and the request's supervisor bound instead.
    var answerDeadline: NIODeadline = .distantFuture
    var idleTimeout: TimeAmount
    /// Carries an `Idempotency-Key`: the upstream deduplicates it, so it may be sent again.
    var replayable: Bool
}

/// One pooled connection: its channel and the inbox its answers arrive in.
final class UpstreamConnection: Sendable {
    let channel: any Channel
    let inbox: UpstreamInbox
    /// Counted out of its pool: set once, by whoever closes or discards it first.
    private let retired = Atomic<Bool>(false)

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

    /// Marks the connection as counted out of its pool; true for the one caller that did it.
    func retire() -> Bool {
        retired.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
    }

    var isRetired: Bool { retired.load(ordering: .relaxed) }
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
    private var finished = false

    init(connection: UpstreamConnection, client: PooledUpstreamClient, key: PooledUpstreamClient.PoolKey) {
        self.connection = connection
        self.client = client
        self.key = key
    }

    func next() async throws -> ByteBuffer? {
        guard !finished else { return nil }
        do {
            switch try await connection.inbox.next() {
            case .body(let buffer):
                return buffer
            case .end(let reusable):
                finished = true
                client.release(connection, key: key, reusable: reusable)
                return nil
            case .head:
                throw UpstreamClientError.protocolViolation("a second response head")
            case nil:
                throw UpstreamClientError.closedMidResponse
            }
        } catch let failure as UpstreamInbox.Resendable {
            finished = true
            client.release(connection, key: key, reusable: false)
            throw failure.error
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
