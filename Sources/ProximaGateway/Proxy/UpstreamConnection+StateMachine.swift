import NIOHTTP1

extension UpstreamConnection {
    /// The life of one pooled connection, one exchange at a time, as a pure value the connection's
    /// handler drives from the event loop. It decides the two things that are easy to get wrong:
    ///
    /// - **Reuse.** A connection goes back to the pool only after a request that was fully written
    ///   (flushed to the socket before the answer began) and a clean end of a response that allows
    ///   it: HTTP/1.1, no `Connection: close`, a body delimited by its length or by chunks. An early
    ///   answer (a 401 or 413 sent before the upstream read the whole request) leaves an unread tail
    ///   on the upstream's side, so the connection closes instead.
    /// - **Resending.** A request a byte of which may have reached the upstream is never sent again:
    ///   the upstream may have acted on it (a POST generates, and bills). The one safe resend is a
    ///   request that met a connection already closed before anything was written (a stale
    ///   keep-alive connection the upstream closed while it sat idle). A request carrying an
    ///   `Idempotency-Key` is replayable while no response head has arrived.
    struct StateMachine: Sendable {
        enum RequestProgress: Equatable, Sendable {
            /// Handed to the channel; some bytes may be on the wire.
            case writing
            /// Every byte flushed to the socket.
            case written
        }

        enum ResponseProgress: Equatable, Sendable {
            case awaitingHead
            /// The head arrived; `reusable` says whether a clean end may return the connection.
            case body(reusable: Bool)
        }

        enum State: Equatable, Sendable {
            /// No exchange in flight: in the pool, or just leased.
            case idle
            case exchange(request: RequestProgress, response: ResponseProgress, replayable: Bool)
            /// Closed or closing; nothing more happens on it.
            case closed
        }

        /// What the handler must do after an event.
        enum Action: Equatable, Sendable {
            case none
            /// Write the request.
            case write
            /// Hand the response part to the reader.
            case deliver
            /// Hand the end of the response to the reader; close the connection unless `reuse`.
            case deliverEnd(reuse: Bool)
            /// Fail the reader with the error and close. `resendable`: the upstream cannot have seen
            /// the request (or it is replayable), so it may go out again on another connection.
            case fail(UpstreamClientError, resendable: Bool)
            /// Close without telling anyone: nothing was in flight.
            case close
        }

        private(set) var state = State.idle

        /// A request is about to be written. `channelActive` is read on the event loop just before.
        mutating func startRequest(channelActive: Bool, replayable: Bool) -> Action {
            switch state {
            case .idle where channelActive:
                state = .exchange(request: .writing, response: .awaitingHead, replayable: replayable)
                return .write
            case .idle, .closed:
                // Nothing was written: the upstream never saw this request.
                state = .closed
                return .fail(.closedBeforeResponse, resendable: true)
            case .exchange:
                state = .closed
                return .fail(.protocolViolation("a request sent while another is in flight"), resendable: false)
            }
        }

        /// The last byte of the request left for the socket.
        mutating func requestWritten() {
            if case .exchange(.writing, let response, let replayable) = state {
                state = .exchange(request: .written, response: response, replayable: replayable)
            }
        }

        /// Writing the request failed. Some bytes may have gone out before the failure: unless the
        /// request is replayable, it is not sent again.
        mutating func requestWriteFailed() -> Action {
            switch state {
            case .exchange(_, .awaitingHead, let replayable):
                state = .closed
                return .fail(.closedBeforeResponse, resendable: replayable)
            case .exchange(_, .body, let replayable):
                // The upstream answered early and stopped reading: let the answer finish, never reuse.
                state = .exchange(request: .writing, response: .body(reusable: false), replayable: replayable)
                return .none
            case .idle, .closed:
                return .none
            }
        }

        mutating func receivedHead(_ head: HTTPResponseHead) -> Action {
            switch state {
            case .exchange(let request, .awaitingHead, let replayable):
                if let violation = Self.framingViolation(head) {
                    state = .closed
                    return .fail(.protocolViolation(violation), resendable: false)
                }
                // Written before the answer began, and the answer lets the connection live on.
                let reusable = request == .written && head.version == .http1_1 && head.isKeepAlive && Self.isDelimited(head)
                state = .exchange(request: request, response: .body(reusable: reusable), replayable: replayable)
                return .deliver
            case .exchange(_, .body, _):
                state = .closed
                return .fail(.protocolViolation("a second response head"), resendable: false)
            case .idle:
                // An answer nobody asked for: whatever follows on this connection cannot be trusted.
                state = .closed
                return .close
            case .closed:
                return .none
            }
        }

        mutating func receivedBody() -> Action {
            switch state {
            case .exchange(_, .body, _):
                return .deliver
            case .exchange(_, .awaitingHead, _):
                state = .closed
                return .fail(.protocolViolation("a body before the response head"), resendable: false)
            case .idle:
                state = .closed
                return .close
            case .closed:
                return .none
            }
        }

        mutating func receivedEnd() -> Action {
            switch state {
            case .exchange(let request, .body(let reusable), _):
                let reuse = reusable && request == .written
                state = reuse ? .idle : .closed
                return .deliverEnd(reuse: reuse)
            case .exchange(_, .awaitingHead, _):
                state = .closed
                return .fail(.protocolViolation("an end before the response head"), resendable: false)
            case .idle:
                state = .closed
                return .close
            case .closed:
                return .none
            }
        }

        /// The connection closed or broke (end of file, reset).
        mutating func connectionClosed() -> Action {
            switch state {
            case .exchange(_, .awaitingHead, let replayable):
                state = .closed
                // The request went out (at least in part): the upstream may be acting on it.
                return .fail(.closedBeforeResponse, resendable: replayable)
            case .exchange(_, .body, _):
                state = .closed
                return .fail(.closedMidResponse, resendable: false)
            case .idle:
                state = .closed
                return .close
            case .closed:
                return .none
            }
        }

        /// The upstream sent bytes that are not HTTP, or a timer expired: the exchange ends with
        /// `error`, never resent (the upstream has the request).
        mutating func failed(_ error: UpstreamClientError) -> Action {
            switch state {
            case .exchange:
                state = .closed
                return .fail(error, resendable: false)
            case .idle:
                state = .closed
                return .close
            case .closed:
                return .none
            }
        }

        /// Whether an exchange is waiting for its response head (the head deadline applies), or
        /// reading its body (the idle timeout applies).
        var awaitingHead: Bool {
            if case .exchange(_, .awaitingHead, _) = state { return true }
            return false
        }

        var inExchange: Bool {
            if case .exchange = state { return true }
            return false
        }

        /// Transfer codings other than `chunked` (`gzip, chunked`) would hand the caller compressed
        /// bytes read as plain: refused.
        static func framingViolation(_ head: HTTPResponseHead) -> String? {
            let codings = head.headers[canonicalForm: "transfer-encoding"]
            guard !codings.isEmpty else { return nil }
            if codings.count == 1, codings[0].lowercased() == "chunked" { return nil }
            return "unsupported transfer-encoding '\(codings.joined(separator: ", "))'"
        }

        /// Whether the body's end is marked in the stream (a length, chunks, or no body by status)
        /// rather than by the connection closing.
        static func isDelimited(_ head: HTTPResponseHead) -> Bool {
            let code = head.status.code
            if code == 204 || code == 304 { return true }
            return head.headers.contains(name: "content-length") || head.headers.contains(name: "transfer-encoding")
        }
    }
}
