import NIOHTTP1
import Testing
@testable import ProximaGateway

/// The pooled client's reuse and resend rules, without sockets.
@Suite struct UpstreamConnectionStateMachineTests {
    typealias Machine = UpstreamConnection.StateMachine

    func head(
        _ status: HTTPResponseStatus = .ok, version: HTTPVersion = .http1_1, _ headers: [(String, String)] = [("content-length", "2")]
    ) -> HTTPResponseHead {
        HTTPResponseHead(version: version, status: status, headers: HTTPHeaders(headers))
    }

    /// A machine with a request written (flushed) and waiting for its head.
    func sent(replayable: Bool = false) -> Machine {
        var machine = Machine()
        #expect(machine.startRequest(channelActive: true, replayable: replayable) == .write)
        machine.requestWritten()
        return machine
    }

    @Test func aCleanKeepAliveExchangeReturnsTheConnection() {
        var machine = sent()
        #expect(machine.receivedHead(head()) == .deliver)
        #expect(machine.receivedBody() == .deliver)
        #expect(machine.receivedEnd() == .deliverEnd(reuse: true))
        #expect(machine.state == .idle)
        // And it serves the next one.
        #expect(machine.startRequest(channelActive: true, replayable: false) == .write)
    }

    @Test func aCloseAfterTheRequestWasWrittenIsNeverResent() {
        var machine = sent()
        #expect(machine.connectionClosed() == .fail(.closedBeforeResponse, resendable: false))
        #expect(machine.state == .closed)
    }

    @Test func aCloseWhileTheRequestIsStillBeingWrittenIsNeverResent() {
        var machine = Machine()
        _ = machine.startRequest(channelActive: true, replayable: false)
        #expect(machine.connectionClosed() == .fail(.closedBeforeResponse, resendable: false))
    }

    @Test func aFailedWriteIsNotResentEither() {
        // Part of the request may have gone out before the write failed.
        var machine = Machine()
        _ = machine.startRequest(channelActive: true, replayable: false)
        #expect(machine.requestWriteFailed() == .fail(.closedBeforeResponse, resendable: false))
    }

    @Test func aConnectionClosedBeforeAnyByteWasWrittenMayBeResent() {
        var machine = Machine()
        #expect(machine.connectionClosed() == .close)  // the upstream closed it while idle
        #expect(machine.startRequest(channelActive: true, replayable: false) == .fail(.closedBeforeResponse, resendable: true))
        var stale = Machine()
        #expect(stale.startRequest(channelActive: false, replayable: false) == .fail(.closedBeforeResponse, resendable: true))
    }

    @Test func anIdempotencyKeyMakesARequestReplayableUntilItsHead() {
        var machine = sent(replayable: true)
        #expect(machine.connectionClosed() == .fail(.closedBeforeResponse, resendable: true))
        var answered = sent(replayable: true)
        _ = answered.receivedHead(head())
        #expect(answered.connectionClosed() == .fail(.closedMidResponse, resendable: false))
    }

    @Test func anEarlyAnswerBeforeTheRequestWasWrittenClosesTheConnection() {
        var machine = Machine()
        _ = machine.startRequest(channelActive: true, replayable: false)
        #expect(machine.receivedHead(head(.payloadTooLarge)) == .deliver)
        machine.requestWritten()  // the write completes after the answer began: still an early answer
        #expect(machine.receivedBody() == .deliver)
        #expect(machine.receivedEnd() == .deliverEnd(reuse: false))
        #expect(machine.state == .closed)
    }

    @Test func aWriteThatFailsAfterAnEarlyAnswerLetsTheAnswerFinish() {
        var machine = Machine()
        _ = machine.startRequest(channelActive: true, replayable: false)
        _ = machine.receivedHead(head(.unauthorized))
        #expect(machine.requestWriteFailed() == .none)
        #expect(machine.receivedEnd() == .deliverEnd(reuse: false))
    }

    @Test func answersThatEndTheConnectionAreNotReused() {
        let closing: [HTTPResponseHead] = [
            head(.ok, [("content-length", "2"), ("connection", "close")]),
            head(.ok, version: .http1_0, [("content-length", "2")]),
            head(.ok, []),  // read until the connection closes
        ]
        for answer in closing {
            var machine = sent()
            #expect(machine.receivedHead(answer) == .deliver)
            #expect(machine.receivedEnd() == .deliverEnd(reuse: false))
        }
        var chunked = sent()
        _ = chunked.receivedHead(head(.ok, [("transfer-encoding", "chunked")]))
        #expect(chunked.receivedEnd() == .deliverEnd(reuse: true))
    }

    @Test func transferCodingsOtherThanChunkedAreRefused() {
        for codings in ["gzip, chunked", "chunked, gzip", "gzip"] {
            var machine = sent()
            let action = machine.receivedHead(head(.ok, [("transfer-encoding", codings)]))
            guard case .fail(.protocolViolation, resendable: false) = action else {
                Issue.record("\(codings) gave \(action)")
                continue
            }
            #expect(machine.state == .closed)
        }
    }

    @Test func aCloseMidBodyFailsTheReader() {
        var machine = sent()
        _ = machine.receivedHead(head())
        _ = machine.receivedBody()
        #expect(machine.connectionClosed() == .fail(.closedMidResponse, resendable: false))
        #expect(machine.connectionClosed() == .none)
    }

    @Test func partsOnAnIdleConnectionCloseIt() {
        var machine = Machine()
        #expect(machine.receivedHead(head()) == .close)
        var body = Machine()
        #expect(body.receivedBody() == .close)
    }

    @Test func protocolOrderViolationsFailTheExchange() {
        var bodyFirst = sent()
        #expect(bodyFirst.receivedBody() == .fail(.protocolViolation("a body before the response head"), resendable: false))
        var twoHeads = sent()
        _ = twoHeads.receivedHead(head())
        #expect(twoHeads.receivedHead(head()) == .fail(.protocolViolation("a second response head"), resendable: false))
        var overlapping = sent()
        #expect(overlapping.startRequest(channelActive: true, replayable: false) != .write)
    }

    @Test func timeoutsAndDecoderErrorsEndTheExchangeWithoutResending() {
        var machine = sent()
        #expect(machine.failed(.headTimeout) == .fail(.headTimeout, resendable: false))
        #expect(machine.failed(.idleTimeout) == .none)
        var idle = Machine()
        #expect(idle.failed(.protocolViolation("junk")) == .close)
    }

    @Test func theDeadlineInForceFollowsTheExchange() {
        var machine = Machine()
        #expect(!machine.awaitingHead && !machine.inExchange)
        _ = machine.startRequest(channelActive: true, replayable: false)
        #expect(machine.awaitingHead)
        _ = machine.receivedHead(head())
        #expect(!machine.awaitingHead && machine.inExchange)
    }
}
