import HTTPTypes
import NIOCore
import NIOHTTPTypes
import ProximaCore

/// The gateway's own clock for stamps that travel in internal header fields between the channel
/// and the request handler: nanoseconds since the process started.
enum GatewayClock {
    static let origin = ContinuousClock.now

    static func stamp(_ instant: ContinuousClock.Instant) -> String { String((instant - origin).nanoseconds) }

    static func instant(_ stamp: String?) -> ContinuousClock.Instant? {
        guard let stamp, let nanoseconds = Int64(stamp), nanoseconds >= 0 else { return nil }
        return origin + .nanoseconds(nanoseconds)
    }
}

/// Sits on every caller connection, after the HTTP codec, with two duties.
///
/// It tells a caller that closed its socket from one that only stopped sending (the server allows
/// half closure, so neither closes the channel by itself): when the input ends while an answer is
/// pending, it writes a `100 Continue`; a closed socket answers with a reset, which closes the
/// channel, and the ``ConnectionCloseWatch`` cancels the connection's upstream work. A half-closed
/// caller gets its answer.
///
/// It measures the gateway's own overhead where the caller sees it: from the moment a request head
/// has been decoded on the connection to the moment the first byte of the answer (the whole body
/// of a plain answer, the first event of a stream) has been written to the socket, minus the time
/// spent waiting on upstreams. So the figure includes the hand-offs between the connection and the
/// request handler, which timing inside the handler misses.
///
/// The arrival stamp rides into the handler in `x-proxima-received-ns` (overwriting any value a
/// caller sent); the proxy sends the upstream wait back in `x-proxima-upstream-wait-ns`, which is
/// removed here before the head leaves. Answers without it (not proxied) are not measured.
final class GatewayConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let receivedField = HTTPField.Name("x-proxima-received-ns")!
    static let upstreamWaitField = HTTPField.Name("x-proxima-upstream-wait-ns")!

    private let metrics: GatewayMetrics
    private let watch: ConnectionCloseWatch
    /// Arrivals of requests whose answer has not started (HTTP/1.1 answers in order).
    private var arrivals = CircularBuffer<ContinuousClock.Instant>(initialCapacity: 2)
    /// The answer whose head went out and whose first byte has not.
    private var pending: (arrival: ContinuousClock.Instant, upstreamWait: Duration)?

    init(metrics: GatewayMetrics, watch: ConnectionCloseWatch) {
        self.metrics = metrics
        self.watch = watch
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed, !arrivals.isEmpty {
            // The caller stopped sending while its answer is pending. A caller that only half-closed
            // (legal HTTP) still reads and gets its answer; one that closed its socket must be told
            // apart, so that its upstream work stops at once. A `100 Continue` (which HTTP/1.1 clients
            // must accept and skip) does that: a closed socket answers it with a reset, which closes
            // this channel and cancels the connection's work through the watch; a half-closed one
            // takes it and waits on.
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var request) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        let now = ContinuousClock.now
        arrivals.append(now)
        request.headerFields[Self.receivedField] = GatewayClock.stamp(now)
        context.fireChannelRead(wrapInboundOut(.head(request)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var response) where response.status.kind != .informational:
            let arrival = arrivals.popFirst()
            if let value = response.headerFields[Self.upstreamWaitField] {
                response.headerFields[Self.upstreamWaitField] = nil
                if let arrival, let nanoseconds = Int64(value) { pending = (arrival, .nanoseconds(nanoseconds)) }
                context.write(wrapOutboundOut(.head(response)), promise: promise)
            } else {
                context.write(data, promise: promise)
            }
        case .body, .end:
            guard let measured = pending else {
                context.write(data, promise: promise)
                return
            }
            pending = nil
            let written = promise ?? context.eventLoop.makePromise()
            let metrics = self.metrics
            written.futureResult.whenSuccess {
                metrics.recordOverhead(max(.zero, ContinuousClock.now - measured.arrival - measured.upstreamWait))
            }
            context.write(data, promise: written)
        case .head:
            context.write(data, promise: promise)
        }
    }
}
