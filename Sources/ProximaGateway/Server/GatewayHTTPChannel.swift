import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The gateway's HTTP/1 connection: Hummingbird's request loop over a pipeline of our own, which
/// holds callers to `server.callers` (``CallerConnectionHandler``) and admits a connection only
/// under the connection limit. A connection past the limit is answered 503 in the OpenAI error
/// format and closed at once; the connections already admitted are served as usual.
///
/// The pipeline, from the socket: ``CallerByteMeter``, NIO's HTTP/1 encoder and decoder (header
/// limits from `server.callers`), ``CallerConnectionHandler``, the conversion to HTTP types,
/// ``GatewayConnectionHandler``, then Hummingbird's request loop.
struct GatewayHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
        /// Nil for a connection refused at the limit.
        let http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>?
    }

    let responder: HTTPChannelHandler.Responder
    let resources: CallerResources
    let metrics: GatewayMetrics
    let watch: ConnectionCloseWatch

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            guard resources.connections.admit() else {
                metrics.recordCallerRefusal("too_many_connections")
                try channel.pipeline.syncOperations.addHandler(ConnectionRefusal())
                return Value(channel: channel, http: nil)
            }
            let connections = resources.connections
            channel.closeFuture.whenComplete { _ in connections.release() }
            let (limits, maxHeaderFields) = resources.limits
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderFieldSize = limits.maxHeadBytes
            decoderLimits.maxHeaderListSize = limits.maxHeadBytes
            decoderLimits.maxHeaderFieldCount = maxHeaderFields
            let connection = CallerConnectionHandler(limits: limits, budget: resources.bodyBudget, metrics: metrics)
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(CallerByteMeter(connection: connection))
            try sync.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
            try sync.addHandler(connection)
            try sync.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try sync.addHandler(GatewayConnectionHandler(metrics: metrics, watch: watch))
            let http = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            return Value(channel: channel, http: http)
        }
    }

    func handle(value: Value, logger: Logger) async {
        guard let http = value.http else { return }
        await handleHTTP(asyncChannel: http, logger: logger)
    }
}

/// Answers a connection past the limit with 503 as soon as it is active, and closes it.
final class ConnectionRefusal: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    static let answer: String = {
        let body = GatewayError(
            status: .serviceUnavailable, type: "server_error", code: "too_many_connections",
            message: "The gateway is serving as many connections as it can; retry shortly."
        ).jsonObject
        return "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n"
            + "retry-after: 1\r\nconnection: close\r\n\r\n" + body
    }()

    func channelActive(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(NIOAny(ByteBuffer(string: Self.answer))).whenComplete { _ in
            loopBound.value.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Whatever the caller sent is not read.
    }
}

/// On the listening channel. When accept fails for want of descriptors (EMFILE, ENFILE) NIO leaves
/// the socket registered and tries again at once, forever: one core at 100% and no progress. This
/// stops reading the listening socket for a moment instead; connections wait in the backlog.
final class AcceptPauseOnExhaustion: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    static let pause = TimeAmount.milliseconds(200)

    private let logger: Logger
    private var paused = false

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode), !paused {
            paused = true
            logger.warning(
                "out of descriptors: accepting paused for a moment; lower server.callers.max_connections or raise the descriptor limit",
                metadata: ["error": "\(error)"])
            try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: Self.pause) {
                let (handler, context) = loopBound.value
                handler.paused = false
                try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
            }
        }
        context.fireErrorCaught(error)
    }
}
