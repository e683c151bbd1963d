import NIOCore
import NIOHTTP1
import Testing
@testable import ProximaGateway

/// The caller connection's state machine, without sockets or clocks: deadlines, head limits, the
/// body budget, framing, HTTP/1.0 and pipelined answers.
@Suite struct CallerConnectionStateMachineTests {
    typealias Machine = CallerConnection.StateMachine
    static let limits = CallerConnection.Limits(
        headerTimeout: .seconds(10), bodyIdleTimeout: .seconds(30), bodyTimeout: .seconds(120), keepAliveTimeout: .seconds(75),
        maxHeadBytes: 32 * 1024)
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
    static func at(_ seconds: Double) -> NIODeadline { start + .nanoseconds(Int64(seconds * 1e9)) }
    static let http11 = CallerConnection.RequestFacts(http10: false, keepAlive: true)

    /// A machine with one request read whole (head and end) at `seconds`.
    static func afterRequest(at seconds: Double = 0, facts: CallerConnection.RequestFacts = http11) -> Machine {
        var machine = Machine(limits: limits, now: start)
        _ = machine.bytesReceived(100, now: at(seconds))
        #expect(machine.headReceived(facts, framing: nil, now: at(seconds)) == .none)
        #expect(machine.requestEnded() == 0)
        return machine
    }

    @Test func aSilentConnectionIsClosedAtTheHeaderDeadline() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        #expect(machine.timerFired(now: Self.at(9.9)).action == .none)
        #expect(machine.timerFired(now: Self.at(10)).action == .close)
    }

    @Test func theTimerNeverSleepsPastADeadline() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        // Nothing is due before 10 s; the next look is at most one check interval away.
        let next = machine.timerFired(now: Self.at(3)).next
        #expect(next <= Self.at(10) && next > Self.at(3))
        _ = machine.bytesReceived(10, now: Self.at(4))
        #expect(machine.timerFired(now: Self.at(12)).next == Self.at(14), "due at the head's deadline")
    }

    @Test func aHeadSentByteByByteIsAnswered408() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        for second in 1...12 {
            #expect(machine.bytesReceived(1, now: Self.at(Double(second))) == .forward)
            let action = machine.timerFired(now: Self.at(Double(second))).action
            #expect(action == (second >= 11 ? .refuse(.headTimeout) : .none), "at \(second) s")
            if action != .none { break }
        }
        #expect(machine.bytesReceived(1, now: Self.at(11.5)) == .drop, "nothing more is read")
        // The caller may still be sending: linger rather than reset the answer away.
        #expect(machine.refusalWritten(now: Self.at(11.5)) == .linger)
        #expect(machine.timerFired(now: Self.at(13.5)).action == .close)
    }

    @Test func anIdleKeepAliveConnectionGetsItsOwnTimeout() {
        var machine = Self.afterRequest()
        #expect(machine.answerHeadWritten(hasContentLength: true) == .init(http10: false, close: false, keepAlive: false))
        #expect(machine.answerEnded(now: Self.at(2)) == .none)
        #expect(machine.timerFired(now: Self.at(76)).action == .none)
        #expect(machine.timerFired(now: Self.at(77)).action == .close)
    }

    @Test func noReadDeadlineRunsWhileAnAnswerIsOwed() {
        var machine = Self.afterRequest()
        // A long stream: the caller owes nothing.
        #expect(machine.timerFired(now: Self.at(500)).action == .none)
        #expect(machine.deadline == nil)
    }

    @Test func aStalledBodyFailsItsRequestAndReleasesItsBudget() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        _ = machine.bytesReceived(500, now: Self.at(1))
        #expect(machine.headReceived(Self.http11, framing: nil, now: Self.at(1)) == .none)
        #expect(machine.bodyReceived(400, reserved: true) == .none)
        _ = machine.bytesReceived(100, now: Self.at(5))
        #expect(machine.bodyReceived(100, reserved: true) == .none)
        #expect(machine.timerFired(now: Self.at(34.9)).action == .none)
        #expect(machine.timerFired(now: Self.at(35)).action == .failBody(.bodyStalled, release: 500))
        #expect(machine.reservedBodyBytes == 0)
        // The application answers the failed request (408); then the connection ends.
        #expect(machine.answerHeadWritten(hasContentLength: true).close)
        #expect(machine.answerEnded(now: Self.at(35)) == .linger)
    }

    @Test func aBodyTricklingForeverMeetsTheWholeBodyDeadline() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        _ = machine.bytesReceived(100, now: Self.at(0))
        _ = machine.headReceived(Self.http11, framing: nil, now: Self.at(0))
        for second in stride(from: 20.0, through: 100.0, by: 20.0) {
            _ = machine.bytesReceived(1, now: Self.at(second))
            _ = machine.bodyReceived(1, reserved: true)
            #expect(machine.timerFired(now: Self.at(second)).action == .none)
        }
        #expect(machine.timerFired(now: Self.at(120)).action == .failBody(.bodyTimeout, release: 5))
    }

    @Test func timeTheGatewayHoldsReadsIsNotTheCallers() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        _ = machine.bytesReceived(100, now: Self.at(0))
        _ = machine.headReceived(Self.http11, framing: nil, now: Self.at(0))
        // The read completes and the application asks for nothing more for 100 s.
        #expect(machine.readComplete(now: Self.at(0)) == .none)
        #expect(machine.timerFired(now: Self.at(100)).action == .none)
        machine.readRequested(now: Self.at(100))
        #expect(machine.timerFired(now: Self.at(129)).action == .none)
        #expect(machine.timerFired(now: Self.at(130)).action == .failBody(.bodyStalled, release: 0))
    }

    @Test func aHeadOverTheLimitIsRefusedAcrossReadsButABodyInTheSameReadIsNot() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        _ = machine.bytesReceived(20_000, now: Self.at(0))
        #expect(machine.readComplete(now: Self.at(0)) == .none)
        _ = machine.bytesReceived(20_000, now: Self.at(0))
        #expect(machine.readComplete(now: Self.at(0)) == .refuse(.headTooLarge))

        // One read holding a small head and a large body: the head completes within it.
        var other = Machine(limits: Self.limits, now: Self.start)
        _ = other.bytesReceived(60_000, now: Self.at(0))
        _ = other.headReceived(Self.http11, framing: nil, now: Self.at(0))
        #expect(other.readComplete(now: Self.at(0)) == .none)
    }

    @Test func aBodyOverTheBudgetFailsWithWhatItHeld() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        _ = machine.bytesReceived(100, now: Self.at(0))
        _ = machine.headReceived(Self.http11, framing: nil, now: Self.at(0))
        #expect(machine.bodyReceived(1000, reserved: true) == .none)
        #expect(machine.bodyReceived(1000, reserved: false) == .failBody(.bodyMemoryExhausted, release: 1000))
        #expect(machine.bytesReceived(10, now: Self.at(1)) == .drop)
    }

    @Test func theBudgetIsReleasedWhenTheBodyEndsOrTheCallerLeaves() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        _ = machine.headReceived(Self.http11, framing: nil, now: Self.at(0))
        _ = machine.bodyReceived(700, reserved: true)
        #expect(machine.requestEnded() == 700)

        var leaving = Machine(limits: Self.limits, now: Self.start)
        _ = leaving.headReceived(Self.http11, framing: nil, now: Self.at(0))
        _ = leaving.bodyReceived(300, reserved: true)
        #expect(leaving.inputClosed() == 300)
        #expect(leaving.inputClosed() == 0, "released once")
    }

    @Test func badChunksDuringABodyFailTheRequestAndBeforeAHeadAreAnsweredHere() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        _ = machine.headReceived(Self.http11, framing: nil, now: Self.at(0))
        #expect(machine.decodeFailed(HTTPParserError.invalidChunkSize) == .failBody(.malformedBody("an invalid chunk size"), release: 0))
        #expect(CallerConnection.Refusal.malformedBody("x").gatewayError.status.code == 400)

        var fresh = Machine(limits: Self.limits, now: Self.start)
        #expect(fresh.decodeFailed(HTTPParserError.headerOverflow) == .refuse(.headTooLarge))
        #expect(CallerConnection.Refusal.headTooLarge.gatewayError.status.code == 431)
    }

    @Test func framingTheGatewayWillNotGuessAtIsRefused() {
        func problem(_ fields: [(String, String)]) -> CallerConnection.Refusal? {
            CallerConnection.framingProblem(HTTPHeaders(fields))
        }
        #expect(problem([("Transfer-Encoding", "chunked")]) == nil)
        #expect(problem([("Content-Length", "5")]) == nil)
        #expect(problem([("Content-Length", "5"), ("content-length", "5")]) == nil, "the same length twice is one length")
        #expect(problem([("Transfer-Encoding", "gzip")]) == .unsupportedTransferEncoding("gzip"))
        #expect(problem([("Transfer-Encoding", "gzip, chunked")]) == .unsupportedTransferEncoding("gzip"))
        #expect(problem([("Transfer-Encoding", "chunked"), ("Content-Length", "3")]) == .ambiguousLength("Content-Length with Transfer-Encoding"))
        #expect(problem([("Content-Length", "5"), ("Content-Length", "6")]) == .ambiguousLength("Content-Length values that disagree"))
        #expect(problem([("Content-Length", "5, 6")]) == .ambiguousLength("Content-Length values that disagree"))
        #expect(problem([("Content-Length", "-1")]) == .ambiguousLength("a Content-Length that is not a number"))
        #expect(CallerConnection.Refusal.unsupportedTransferEncoding("gzip").gatewayError.status.code == 501)
    }

    @Test func anHTTP10CallerWithoutKeepAliveIsAnsweredInHTTP10AndClosed() {
        var machine = Self.afterRequest(facts: .init(http10: true, keepAlive: false))
        #expect(machine.answerHeadWritten(hasContentLength: true) == .init(http10: true, close: true, keepAlive: false))
        #expect(machine.answerEnded(now: Self.at(1)) == .close)
    }

    @Test func anHTTP10CallerAskingForKeepAliveKeepsItOnlyWithALength() {
        var machine = Self.afterRequest(facts: .init(http10: true, keepAlive: true))
        #expect(machine.answerHeadWritten(hasContentLength: true) == .init(http10: true, close: false, keepAlive: true))
        #expect(machine.answerEnded(now: Self.at(1)) == .none)

        var streamed = Self.afterRequest(facts: .init(http10: true, keepAlive: true))
        #expect(streamed.answerHeadWritten(hasContentLength: false) == .init(http10: true, close: true, keepAlive: false))
        #expect(streamed.answerEnded(now: Self.at(1)) == .close)
    }

    @Test func aRefusalAfterPipelinedRequestsWaitsForTheirAnswers() {
        var machine = Self.afterRequest()
        _ = machine.bytesReceived(100, now: Self.at(0))
        _ = machine.headReceived(Self.http11, framing: nil, now: Self.at(0))
        _ = machine.requestEnded()
        // The third head's framing is refused while two answers are owed.
        _ = machine.bytesReceived(100, now: Self.at(0))
        #expect(machine.headReceived(Self.http11, framing: .unsupportedTransferEncoding("gzip"), now: Self.at(0)) == .none)
        #expect(machine.answerHeadWritten(hasContentLength: true).close == false)
        #expect(machine.answerEnded(now: Self.at(1)) == .none)
        #expect(machine.answerHeadWritten(hasContentLength: true).close == false)
        #expect(machine.answerEnded(now: Self.at(1)) == .refuse(.unsupportedTransferEncoding("gzip")))
        #expect(machine.refusalWritten(now: Self.at(1)) == .linger)
    }

    @Test func anAnswerBeforeItsBodyEndedEndsTheConnection() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        _ = machine.bytesReceived(100, now: Self.at(0))
        _ = machine.headReceived(Self.http11, framing: nil, now: Self.at(0))
        _ = machine.bodyReceived(100, reserved: true)
        // A 413 while the body still arrives: the answer says the connection ends.
        #expect(machine.answerHeadWritten(hasContentLength: true).close)
        #expect(machine.answerEnded(now: Self.at(1)) == .linger)
        #expect(machine.bytesReceived(100, now: Self.at(1)) == .drop)
        #expect(machine.takeReleasable() == 100, "the body's reservation is given back")
        // Draining a caller that keeps sending is bounded.
        #expect(machine.bytesReceived(200 * 1024, now: Self.at(1)) == .drop)
        #expect(machine.bytesReceived(100 * 1024, now: Self.at(1)) == .dropAndClose)
        #expect(machine.inputClosed() == 0, "once")
    }

    @Test func aCallerThatHalfClosesIsAnsweredThenClosed() {
        var machine = Self.afterRequest()
        _ = machine.inputClosed()
        #expect(machine.answerHeadWritten(hasContentLength: true).close)
        #expect(machine.answerEnded(now: Self.at(1)) == .close)
    }

    @Test func quiescingClosesIdleConnectionsAndFinishesBusyOnes() {
        var idle = Machine(limits: Self.limits, now: Self.start)
        #expect(idle.quiesce() == .close)
        var busy = Self.afterRequest()
        #expect(busy.quiesce() == .none)
        #expect(busy.answerHeadWritten(hasContentLength: true).close)
        #expect(busy.answerEnded(now: Self.at(1)) == .close)
    }

    @Test func theConnectionLimiterAndTheBudgetNeverPassTheirLimits() {
        let limiter = ConnectionLimiter(limit: 2)
        #expect(limiter.admit() && limiter.admit())
        #expect(!limiter.admit())
        limiter.release()
        #expect(limiter.admit())
        #expect(ConnectionLimiter.defaultLimit(descriptorLimit: 1024) == 480)

        let budget = BodyMemoryBudget(capacity: 100)
        #expect(budget.reserve(60))
        #expect(!budget.reserve(41))
        #expect(budget.reserve(40))
        budget.release(100)
        #expect(budget.usedBytes == 0)
        #expect(!budget.reserve(Int.max), "no overflow")
    }
}
