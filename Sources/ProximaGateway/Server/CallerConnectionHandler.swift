import HTTPTypes
import NIOCore
import NIOHTTP1

/// Holds every caller connection to its deadlines and limits (`server.callers`), between the
/// HTTP/1 decoder and the rest of the pipeline. It performs what ``CallerConnection/StateMachine``
/// decides:
///
/// - a head that does not arrive in time, a body that stalls or takes too long, an idle
///   keep-alive connection: closed, or answered 408;
/// - a head too large (431), a framing the gateway will not guess at (400, 501): answered here,
///   since no request reached the application;
/// - a body that fails while the application reads it (a stall, bad chunks, the body memory
///   budget): the application's read fails with a ``CallerConnection/Refusal``, which it answers;
/// - HTTP/1.0 callers get HTTP/1.0 answers, and the connection closes after them unless they
///   asked to keep it;
/// - the connection closes after an answer that ends it, lingering a moment first when the caller
///   may still be sending, so that its answer is not lost to a reset.
///
/// One timer per connection, which looks at the deadlines at least every check interval and does
/// not move on the hot path.
final class CallerConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var machine: CallerConnection.StateMachine
    private let budget: BodyMemoryBudget
    private let metrics: GatewayMetrics
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(limits: CallerConnection.Limits, budget: BodyMemoryBudget, metrics: GatewayMetrics) {
        self.machine = CallerConnection.StateMachine(limits: limits, now: .now())
        self.budget = budget
        self.metrics = metrics
    }

    // MARK: lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        arm(at: NIODeadline.now() + machine.limits.checkInterval, context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        budget.release(machine.inputClosed())
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        budget.release(machine.inputClosed())
        context.fireChannelInactive()
    }

    // MARK: reading

    /// Bytes from the socket, before the decoder (``CallerByteMeter``); false: drop them.
    func bytesReceived(_ count: Int) -> Bool {
        switch machine.bytesReceived(count, now: .now()) {
        case .forward:
            return true
        case .drop:
            return false
        case .dropAndClose:
            context?.close(promise: nil)
            return false
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            let action = machine.headReceived(
                CallerConnection.RequestFacts(head), framing: CallerConnection.framingProblem(head.headers), now: .now())
            if case .body = machine.reading {
                context.fireChannelRead(data)
                // The caller waits for leave to send its body; nothing else is being answered.
                if machine.owed.count == 1, !head.version.isHTTP10, head.headers[canonicalForm: "expect"].contains(where: {
                    $0.lowercased() == "100-continue"
                }) {
                    context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
                }
            } else {
                perform(action, context: context)
            }
        case .body(let part):
            guard case .body = machine.reading else { return }
            let reserved = budget.reserve(part.readableBytes)
            let action = machine.bodyReceived(part.readableBytes, reserved: reserved)
            if action == .none {
                context.fireChannelRead(data)
            } else {
                perform(action, context: context)
            }
        case .end:
            guard case .body = machine.reading else { return }
            budget.release(machine.requestEnded())
            context.fireChannelRead(data)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        let action = machine.readComplete(now: .now())
        perform(action, context: context)
        if case .lingering = machine.reading {
            // Nobody else reads now: drain what the caller still sends.
            context.read()
            return
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        machine.readRequested(now: .now())
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError || error is ByteToMessageDecoderError else {
            context.fireErrorCaught(error)
            return
        }
        perform(machine.decodeFailed(error), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let event as ChannelEvent where event == .inputClosed:
            let lingering = machine.reading.isLingering
            budget.release(machine.inputClosed())
            if lingering {
                context.close(promise: nil)
                return
            }
            context.fireUserInboundEventTriggered(event)
        case is ChannelShouldQuiesceEvent:
            perform(machine.quiesce(), context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: writing

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200:
            let answer = machine.answerHeadWritten(hasContentLength: head.headers.contains(name: "content-length"))
            if answer.http10 { head.version = .http1_0 }
            if answer.close {
                head.headers.replaceOrAdd(name: "connection", value: "close")
            } else if answer.keepAlive {
                head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end:
            let action = machine.answerEnded(now: .now())
            budget.release(machine.takeReleasable())
            guard action != .none else {
                context.write(data, promise: promise)
                return
            }
            let written = context.eventLoop.makePromise(of: Void.self)
            if let promise { written.futureResult.cascade(to: promise) }
            context.write(data, promise: written)
            context.flush()
            perform(action, context: context, after: written.futureResult)
        case .head, .body:
            context.write(data, promise: promise)
        }
    }

    // MARK: actions

    /// Performs an action; a close waits for `after` (the last write) when given.
    private func perform(
        _ action: CallerConnection.StateMachine.Action, context: ChannelHandlerContext, after written: EventLoopFuture<Void>? = nil
    ) {
        switch action {
        case .none:
            break
        case .refuse(let refusal):
            metrics.recordCallerRefusal(refusal.reason)
            writeRefusal(refusal, context: context)
        case .failBody(let refusal, let release):
            metrics.recordCallerRefusal(refusal.reason)
            budget.release(release)
            context.fireErrorCaught(refusal)
        case .close:
            guard let written else { return context.close(promise: nil) }
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.whenComplete { _ in loopBound.value.close(promise: nil) }
        case .linger:
            // Stop writing; keep reading (and dropping) until the caller closes or the deadline.
            if let deadline = machine.deadline {
                timer?.cancel()
                arm(at: deadline, context: context)
            }
            guard let written else { return Self.stopWriting(context) }
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.whenComplete { _ in Self.stopWriting(loopBound.value) }
        }
    }

    private static func stopWriting(_ context: ChannelHandlerContext) {
        context.close(mode: .output, promise: nil)
        context.read()
    }

    /// Writes the gateway's own answer, then closes (lingering if the caller may still send).
    private func writeRefusal(_ refusal: CallerConnection.Refusal, context: ChannelHandlerContext) {
        let error = refusal.gatewayError
        let body = ByteBuffer(string: error.jsonObject)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        headers.add(name: "connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: Int(error.status.code)), headers: headers)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: written)
        context.flush()
        perform(machine.refusalWritten(now: .now()), context: context, after: written.futureResult)
    }

    // MARK: time

    private func arm(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        guard self.context != nil, context.channel.isActive else { return }
        let (action, next) = machine.timerFired(now: .now())
        arm(at: next, context: context)
        perform(action, context: context)
    }
}

extension HTTPVersion {
    fileprivate var isHTTP10: Bool { major == 1 && minor == 0 }
}

extension CallerConnection.StateMachine.Reading {
    var isLingering: Bool {
        if case .lingering = self { return true }
        return false
    }
}

/// Counts the bytes a caller sends before the HTTP/1 decoder sees them, for the head size limit
/// and the read deadlines, and drops them once the connection stopped reading.
final class CallerByteMeter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let connection: CallerConnectionHandler

    init(connection: CallerConnectionHandler) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if connection.bytesReceived(unwrapInboundIn(data).readableBytes) {
            context.fireChannelRead(data)
        }
    }
}
