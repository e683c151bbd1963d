import Foundation
import NIOCore
import NIOPosix
import ProximaCore
import ProximaGuard
import Synchronization

/// A small non-blocking DNS client over UDP for the crawler check: one question per datagram, a
/// random query id, a fresh socket (so a kernel-chosen ephemeral source port) per query, the answer
/// accepted only from the server asked, with the id and question sent; a deadline on every query.
/// Servers are tried in order while they fail fast (SERVFAIL, REFUSED, a malformed answer); a
/// timeout ends the lookup. Never blocks an event loop.
final class DNSClient: Sendable {
    let servers: [DNSServerAddress]
    let timeout: TimeAmount
    private let group: any EventLoopGroup
    private let sent = Atomic<Int>(0)

    init(servers: [DNSServerAddress], timeoutSeconds: Double, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.servers = servers
        self.timeout = .nanoseconds(Int64(min(max(timeoutSeconds, 0.001), 60) * 1e9))
        self.group = group
    }

    /// Queries sent so far (tests count them to prove the cache).
    var queriesSent: Int { sent.load(ordering: .relaxed) }

    /// The nameservers of a resolv.conf text (`nameserver ADDRESS` lines).
    static func nameservers(resolvConf text: String) -> [DNSServerAddress] {
        var servers: [DNSServerAddress] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { continue }
            var address = String(fields[1])
            if let zone = address.firstIndex(of: "%") { address = String(address[..<zone]) }
            if let ip = IPAddress(address) { servers.append(DNSServerAddress(address: ip)) }
        }
        return servers
    }

    /// Asks `name`/`type`; the answer of the first server that gives one, `.timeout` when one does not
    /// answer in time, `.failure` when all fail.
    func lookup(_ name: String, type: DNSMessage.RecordType) async -> ReverseDNS.Answer {
        for server in servers {
            let answer = await ask(server, question: DNSMessage.Question(name: name, type: type))
            if answer == .failure { continue }
            return answer
        }
        return .failure
    }

    private func ask(_ server: DNSServerAddress, question: DNSMessage.Question) async -> ReverseDNS.Answer {
        let id = UInt16.random(in: .min ... .max)
        guard let payload = try? DNSMessage(id: id, questions: [question]).encoded(),
            let remote = try? SocketAddress(ipAddress: server.address.description, port: server.port)
        else { return .failure }
        let loop = group.next()
        let promise = loop.makePromise(of: ReverseDNS.Answer.self)
        let timeout = self.timeout
        let bootstrap = DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        DNSResponseHandler(promise: promise, server: remote, id: id, question: question, timeout: timeout))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: server.address.isIPv4 ? "0.0.0.0" : "::", port: 0).get()
        } catch {
            promise.succeed(.failure)
            return .failure
        }
        defer { channel.close(promise: nil) }
        sent.add(1, ordering: .relaxed)
        var buffer = channel.allocator.buffer(capacity: payload.count)
        buffer.writeBytes(payload)
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: buffer), promise: nil)
        return (try? await promise.futureResult.get()) ?? .failure
    }
}

/// Waits on one query's socket for its answer, or the deadline; completes the promise exactly once.
private final class DNSResponseHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let promise: EventLoopPromise<ReverseDNS.Answer>
    private let server: SocketAddress
    private let id: UInt16
    private let question: DNSMessage.Question
    private let timeout: TimeAmount
    private var done = false
    private var deadline: Scheduled<Void>?

    init(promise: EventLoopPromise<ReverseDNS.Answer>, server: SocketAddress, id: UInt16, question: DNSMessage.Question, timeout: TimeAmount) {
        self.promise = promise
        self.server = server
        self.id = id
        self.question = question
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) { bound.value.finish(.timeout) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(.failure)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        // Only the server asked may answer (a spoofed datagram from elsewhere is dropped).
        guard envelope.remoteAddress == server else { return }
        let bytes = Array(envelope.data.readableBytesView)
        guard bytes.count >= 2, UInt16(bytes[0]) << 8 | UInt16(bytes[1]) == id else { return }
        guard let message = try? DNSMessage(decoding: bytes) else {
            finish(.failure)
            return
        }
        guard message.isResponse, message.questions.count == 1, let asked = message.questions.first,
            asked.type == question.type, asked.name.lowercased() == question.name.lowercased()
        else { return }
        finish(ReverseDNS.answer(to: question, in: message))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure)
    }

    private func finish(_ answer: ReverseDNS.Answer) {
        guard !done else { return }
        done = true
        deadline?.cancel()
        promise.succeed(answer)
    }
}
