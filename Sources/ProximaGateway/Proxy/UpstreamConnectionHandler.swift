import NIOCore
import NIOHTTP1

/// The last handler of an upstream connection: drives the connection's state machine from the
/// event loop, writes requests, keeps their deadlines, and hands response parts to the inbox.
///
/// Deadlines: while the response head is awaited only the head deadline applies (a plain answer's
/// head comes when generation ends); after it, the idle timeout bounds the silence between two
/// parts, except while the reader holds reads back (a slow caller is not the upstream's fault), and
/// an answer deadline, when the request has one, bounds the whole answer.
final class UpstreamConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = UpstreamRequestParts
    typealias OutboundOut = HTTPClientRequestPart

    /// Bounds on the response head an upstream may send: far above what engines send (about ten
    /// fields), far below what would hold memory.
    static let decoderLimits: NIOHTTPDecoderLimitConfiguration = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 16 * 1024
        limits.maxHeaderListSize = 64 * 1024
        limits.maxHeaderFieldCount = 1_000
        return limits
    }()

    private let inbox: UpstreamInbox
    private var machine = UpstreamConnection.StateMachine()
    private var headDeadline = NIODeadline.distantFuture
    private var answerDeadline = NIODeadline.distantFuture
    private var idleTimeout = TimeAmount.seconds(60)
    private var lastRead = NIODeadline.now()
    /// The inbox is full: the socket is not read until the reader catches up.
    private var readsHeld = false
    private var timer: Scheduled<Void>?

    init(inbox: UpstreamInbox) {
        self.inbox = inbox
    }

    // MARK: writing

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        let action = machine.startRequest(channelActive: context.channel.isActive, replayable: request.replayable)
        guard action == .write else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            perform(action, context: context)
            return
        }
        headDeadline = request.headDeadline
        answerDeadline = request.answerDeadline
        idleTimeout = request.idleTimeout
        lastRead = .now()
        armTimer(context: context)
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { result in
            switch result {
            case .success:
                self.machine.requestWritten()
            case .failure:
                self.perform(self.machine.requestWriteFailed(), context: context)
            }
        }
        written.futureResult.cascade(to: promise)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        inbox.requestSent(at: .now)
    }

    // MARK: reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        lastRead = .now()
        let now = ContinuousClock.now
        switch part {
        case .head(let head) where head.status.code >= 100 && head.status.code < 200 && head.status.code != 101:
            return  // informational: the real head follows
        case .head(let head):
            let action = machine.receivedHead(head)
            if action == .deliver {
                // From here the idle timeout applies.
                armTimer(context: context)
                inbox.deliver(.head(head), at: now)
            } else {
                perform(action, context: context)
            }
        case .body(let buffer):
            let action = machine.receivedBody()
            if action == .deliver { inbox.deliver(.body(buffer), at: now) } else { perform(action, context: context) }
        case .end:
            let action = machine.receivedEnd()
            if case .deliverEnd(let reuse) = action {
                cancelTimer()
                inbox.deliver(.end(reusable: reuse), at: now)
                if !reuse { context.close(promise: nil) }
            } else {
                perform(action, context: context)
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        if inbox.mayRead() {
            if readsHeld {
                // The reader caught up: the silence while it held reads was not the upstream's.
                readsHeld = false
                lastRead = .now()
                if machine.inExchange { armTimer(context: context) }
            }
            context.read()
        } else {
            readsHeld = true
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        perform(machine.connectionClosed(), context: context)
        inbox.finish(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError || error is NIOHTTPDecoderError {
            perform(machine.failed(.protocolViolation(String(describing: error))), context: context)
        } else {
            // A reset or another I/O failure: the same as a close.
            perform(machine.connectionClosed(), context: context)
        }
        context.close(promise: nil)
    }

    // MARK: actions

    private func perform(_ action: UpstreamConnection.StateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none, .write, .deliver, .deliverEnd:
            break
        case .fail(let error, let resendable):
            cancelTimer()
            inbox.finish(resendable ? UpstreamInbox.Resendable(error: error) : error)
            context.close(promise: nil)
        case .close:
            cancelTimer()
            inbox.finish(nil)
            context.close(promise: nil)
        }
    }

    // MARK: deadlines

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    /// One timer per exchange: when it fires early (a part arrived meanwhile), it sets itself again.
    private func armTimer(context: ChannelHandlerContext) {
        cancelTimer()
        let due: NIODeadline
        if machine.awaitingHead {
            due = min(headDeadline, answerDeadline)
        } else if readsHeld {
            guard answerDeadline != .distantFuture else { return }
            due = answerDeadline
        } else {
            due = min(lastRead + idleTimeout, answerDeadline)
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: due) {
            let (handler, context) = loopBound.value
            handler.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        guard machine.inExchange else { return }
        let now = NIODeadline.now()
        if now >= answerDeadline || (machine.awaitingHead && now >= headDeadline) {
            return perform(machine.failed(.headTimeout), context: context)
        }
        if machine.awaitingHead {
            // not yet due: set again below
        } else if readsHeld {
            return  // re-armed when reading resumes
        } else if now >= lastRead + idleTimeout {
            return perform(machine.failed(.idleTimeout), context: context)
        }
        armTimer(context: context)
    }
}
