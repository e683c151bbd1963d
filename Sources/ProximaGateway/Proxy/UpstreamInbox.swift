import NIOCore
import NIOHTTP1
import Synchronization

/// Where a connection's response parts wait for the task reading them. The event loop appends;
/// one task at a time takes. When `highWatermark` parts are waiting, the connection stops reading
/// from the socket until the reader has taken them down to `lowWatermark`.
final class UpstreamInbox: Sendable {
    static let highWatermark = 16
    static let lowWatermark = 4

    /// One part of an answer, as the connection's state machine passed it on.
    enum Part: Sendable {
        case head(HTTPResponseHead)
        case body(ByteBuffer)
        /// The end; `reusable`: the connection may serve another request (see
        /// `UpstreamConnection.StateMachine`).
        case end(reusable: Bool)
    }

    /// A failure before any byte of the request reached the upstream (or of a replayable request
    /// before its answer began): the request may go out again on another connection.
    struct Resendable: Error {
        var error: UpstreamClientError
    }

    private struct State {
        var parts = CircularBuffer<(Part, ContinuousClock.Instant)>(initialCapacity: 4)
        var requestSentAt: ContinuousClock.Instant?
        var lastArrival = ContinuousClock.now
        var waiter: UnsafeContinuation<Part?, any Error>?
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

    func deliver(_ part: Part, at arrival: ContinuousClock.Instant) {
        let waiter = state.withLock { state -> UnsafeContinuation<Part?, any Error>? in
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
        let waiter = state.withLock { state -> UnsafeContinuation<Part?, any Error>? in
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
        case part(Part, resumeReading: (any Channel)?)
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
    func next() async throws -> Part? {
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
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Part?, any Error>) in
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
