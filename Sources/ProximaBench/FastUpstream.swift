#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix

/// An OpenAI-compatible upstream that costs next to nothing, for measuring what a proxy adds: a
/// canned chat completion for plain requests, and for `"stream": true` an SSE answer of `chunks`
/// events `pacing` apart, each carrying the wall-clock time it was sent (`"sent_us"`), so that a
/// client can tell what the path added to every chunk. `GET /v1/models` lists model `bench`.
public final class FastUpstream: Sendable {
    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        public var chunks: Int
        public var pacing: TimeAmount

        public init(host: String = "127.0.0.1", port: Int, chunks: Int = 20, pacing: TimeAmount = .milliseconds(50)) {
            self.host = host
            self.port = port
            self.chunks = chunks
            self.pacing = pacing
        }
    }

    public let settings: Settings
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel

    /// Binds and starts serving on one event loop thread.
    public init(settings: Settings) async throws {
        self.settings = settings
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        self.channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4_096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(Handler(chunks: settings.chunks, pacing: settings.pacing))
                }
            }
            .bind(host: settings.host, port: settings.port).get()
    }

    /// The port it listens on (useful when bound to port 0).
    public var port: Int { channel.localAddress?.port ?? settings.port }

    public func shutdown() async throws {
        try await channel.close()
        try await group.shutdownGracefully()
    }

    /// Wall-clock microseconds, comparable between processes on one machine.
    public static func wallMicroseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }

    static let completion = #"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":6,"total_tokens":18}}"#
    static let models = #"{"object":"list","data":[{"id":"bench","object":"model","created":1700000000,"owned_by":"bench"}]}"#

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let chunks: Int
        let pacing: TimeAmount
        private var head: HTTPRequestHead?
        private var wantsStream = false
        /// The last bytes of the body seen, to find `"stream":true` across body parts.
        private var tail: [UInt8] = []
        private var streaming: Scheduled<Void>?

        init(chunks: Int, pacing: TimeAmount) {
            self.chunks = chunks
            self.pacing = pacing
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                wantsStream = false
                tail = []
            case .body(let buffer):
                var bytes = tail
                bytes.append(contentsOf: buffer.readableBytesView)
                if FastUpstream.mentionsStreamTrue(bytes) { wantsStream = true }
                tail = Array(bytes.suffix(24))
            case .end:
                guard let head else { return }
                respond(context: context, head: head)
                self.head = nil
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            streaming?.cancel()
            streaming = nil
            context.fireChannelInactive()
        }

        private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
            let keepAlive = head.isKeepAlive
            if head.method == .GET {
                let found = head.uri.hasSuffix("/models")
                send(context, status: found ? .ok : .notFound, body: found ? FastUpstream.models : #"{"error":{"message":"not found"}}"#, keepAlive: keepAlive)
                return
            }
            guard wantsStream else {
                send(context, status: .ok, body: FastUpstream.completion, keepAlive: keepAlive)
                return
            }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/event-stream")
            headers.add(name: "cache-control", value: "no-cache")
            headers.add(name: "transfer-encoding", value: "chunked")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            sendChunk(context: context, index: 0, keepAlive: keepAlive)
        }

        private func sendChunk(context: ChannelHandlerContext, index: Int, keepAlive: Bool) {
            guard context.channel.isActive else { return }
            var buffer = context.channel.allocator.buffer(capacity: 256)
            if index < chunks {
                buffer.writeString(
                    #"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"bench","sent_us":"#
                        + String(FastUpstream.wallMicroseconds())
                        + #","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}"# + "\n\n")
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                streaming = context.eventLoop.scheduleTask(in: pacing) {
                    let (handler, context) = bound.value
                    handler.sendChunk(context: context, index: index + 1, keepAlive: keepAlive)
                }
            } else {
                buffer.writeString(
                    #"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"bench","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":"#
                        + String(chunks) + #","total_tokens":"# + String(12 + chunks) + "}}\n\ndata: [DONE]\n\n")
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                streaming = nil
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                    if !keepAlive { bound.value.close(promise: nil) }
                }
            }
        }

        private func send(_ context: ChannelHandlerContext, status: HTTPResponseStatus, body: String, keepAlive: Bool) {
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(body.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
            buffer.writeString(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { bound.value.close(promise: nil) }
            }
        }
    }
}

extension FastUpstream {
    /// Whether the bytes hold `"stream"` followed (after optional spaces and a colon) by `true`.
    static func mentionsStreamTrue(_ bytes: [UInt8]) -> Bool {
        let key = Array(#""stream""#.utf8)
        guard bytes.count >= key.count + 5 else { return false }
        var index = 0
        while index + key.count <= bytes.count {
            if bytes[index..<(index + key.count)].elementsEqual(key) {
                var cursor = index + key.count
                while cursor < bytes.count, bytes[cursor] == 0x20 || bytes[cursor] == 0x3A { cursor += 1 }
                if cursor + 4 <= bytes.count, bytes[cursor..<(cursor + 4)].elementsEqual("true".utf8) { return true }
            }
            index += 1
        }
        return false
    }
}
