import HTTPTypes
import NIOCore
import NIOHTTP1
import ProximaCore

/// One caller connection's deadlines and limits (``CallerConnectionHandler`` drives it).
enum CallerConnection {
    /// `server.callers` in the units the event loop uses.
    struct Limits: Sendable, Equatable {
        var headerTimeout: TimeAmount
        var bodyIdleTimeout: TimeAmount
        var bodyTimeout: TimeAmount
        var keepAliveTimeout: TimeAmount
        var maxHeadBytes: Int
        /// How long a connection refused halfway keeps reading (and dropping) what the caller still
        /// sends after its answer, so that closing does not reset the answer away. The handler sets
        /// its timer for it when lingering starts.
        var lingerTimeout: TimeAmount = .seconds(2)
        /// Bytes dropped while lingering before the connection closes anyway: draining a caller
        /// that keeps sending after its final answer costs the gateway a read per chunk.
        var lingerBytes = 256 * 1024

        init(
            headerTimeout: TimeAmount, bodyIdleTimeout: TimeAmount, bodyTimeout: TimeAmount, keepAliveTimeout: TimeAmount,
            maxHeadBytes: Int, lingerTimeout: TimeAmount = .seconds(2)
        ) {
            self.headerTimeout = headerTimeout
            self.bodyIdleTimeout = bodyIdleTimeout
            self.bodyTimeout = bodyTimeout
            self.keepAliveTimeout = keepAliveTimeout
            self.maxHeadBytes = maxHeadBytes
            self.lingerTimeout = lingerTimeout
        }

        init(_ settings: CallerSettings) {
            // Validated to (0, 1 day]: the conversions cannot trap.
            func amount(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64(seconds * 1e9)) }
            self.init(
                headerTimeout: amount(settings.headerTimeout), bodyIdleTimeout: amount(settings.bodyIdleTimeout),
                bodyTimeout: amount(settings.bodyTimeout), keepAliveTimeout: amount(settings.keepAliveTimeout),
                maxHeadBytes: settings.maxHeadBytes)
        }

        /// The timer looks at the deadlines at least this often. No deadline is shorter, so a
        /// deadline that starts between two looks never needs the timer moved earlier.
        var checkInterval: TimeAmount { min(headerTimeout, bodyIdleTimeout, bodyTimeout, keepAliveTimeout) }
    }

    /// What the gateway tells a caller, or why it stops reading one.
    enum Refusal: Error, Equatable, Sendable {
        case headTooLarge
        case malformedHead(String)
        case unsupportedTransferEncoding(String)
        case ambiguousLength(String)
        case headTimeout
        case bodyStalled
        case bodyTimeout
        case malformedBody(String)
        case bodyMemoryExhausted

        var gatewayError: GatewayError {
            switch self {
            case .headTooLarge:
                GatewayError(
                    status: .init(code: 431), type: "invalid_request_error", code: "request_header_fields_too_large",
                    message: "The request head is larger than this gateway accepts (too many bytes or too many header fields).")
            case .malformedHead(let reason):
                GatewayError(status: .badRequest, type: "invalid_request_error", code: "malformed_request", message: "The request head is malformed: \(reason).")
            case .unsupportedTransferEncoding(let coding):
                GatewayError(
                    status: .notImplemented, type: "invalid_request_error", code: "unsupported_transfer_encoding",
                    message: "Transfer-Encoding '\(coding)' is not supported; send the body with Content-Length or chunked.")
            case .ambiguousLength(let reason):
                GatewayError(status: .badRequest, type: "invalid_request_error", code: "malformed_request", message: "The request's length is ambiguous: \(reason).")
            case .headTimeout:
                GatewayError(
                    status: .requestTimeout, type: "invalid_request_error", code: "request_timeout",
                    message: "The request head did not arrive in time.")
            case .bodyStalled:
                GatewayError(
                    status: .requestTimeout, type: "invalid_request_error", code: "request_timeout",
                    message: "The request body stopped arriving.")
            case .bodyTimeout:
                GatewayError(
                    status: .requestTimeout, type: "invalid_request_error", code: "request_timeout",
                    message: "The request body did not arrive in time.")
            case .malformedBody(let reason):
                GatewayError(status: .badRequest, type: "invalid_request_error", code: "malformed_request", message: "The request body is malformed: \(reason).")
            case .bodyMemoryExhausted:
                GatewayError(
                    status: .serviceUnavailable, type: "server_error", code: "overloaded",
                    message: "The gateway is receiving too many request bodies at once; retry shortly.")
            }
        }

        /// The label counted in `proxima_caller_refusals_total`.
        var reason: String {
            switch self {
            case .headTooLarge: "head_too_large"
            case .malformedHead: "malformed_head"
            case .unsupportedTransferEncoding: "unsupported_transfer_encoding"
            case .ambiguousLength: "ambiguous_length"
            case .headTimeout: "head_timeout"
            case .bodyStalled: "body_stalled"
            case .bodyTimeout: "body_timeout"
            case .malformedBody: "malformed_body"
            case .bodyMemoryExhausted: "body_memory_budget"
            }
        }

        /// A decoder error before a head reached the application.
        init(headError error: any Error) {
            switch error as? HTTPParserError {
            case .headerOverflow: self = .headTooLarge
            case .unexpectedContentLength: self = .ambiguousLength("Content-Length with Transfer-Encoding, or Content-Length twice")
            case .invalidContentLength: self = .ambiguousLength("an invalid Content-Length")
            case .invalidVersion: self = .malformedHead("not HTTP/1")
            case .some(let parserError): self = .malformedHead("\(parserError)")
            case nil: self = .malformedHead("unreadable")
            }
        }

        /// A decoder error while a body was arriving.
        init(bodyError error: any Error) {
            switch error as? HTTPParserError {
            case .invalidChunkSize: self = .malformedBody("an invalid chunk size")
            case .invalidEOFState: self = .malformedBody("the connection ended before the body did")
            case .some(let parserError): self = .malformedBody("\(parserError)")
            case nil: self = .malformedBody("unreadable")
            }
        }
    }

    /// What the gateway must know of a request to answer it on its connection.
    struct RequestFacts: Equatable, Sendable {
        var http10: Bool
        /// The caller lets the connection carry another request after this one.
        var keepAlive: Bool

        init(http10: Bool, keepAlive: Bool) {
            self.http10 = http10
            self.keepAlive = keepAlive
        }

        init(_ head: HTTPRequestHead) {
            self.init(http10: head.version.major == 1 && head.version.minor == 0, keepAlive: head.isKeepAlive)
        }
    }

    /// A request head whose framing the gateway will not guess at: a transfer coding other than
    /// `chunked` (501), `Content-Length` with `Transfer-Encoding`, or `Content-Length` values that
    /// disagree (400). Nil when the framing is sound.
    static func framingProblem(_ headers: HTTPHeaders) -> Refusal? {
        // No allocation for the usual head (one plain Content-Length, or none).
        var length: Substring?
        var codings = 0
        for (name, value) in headers {
            if name.caseInsensitiveEquals("transfer-encoding") {
                for coding in value.split(separator: ",") {
                    let coding = coding.trimmingSpaces
                    if coding.isEmpty { continue }
                    guard coding.caseInsensitiveEquals("chunked") else { return .unsupportedTransferEncoding(String(coding.prefix(64))) }
                    codings += 1
                }
            } else if name.caseInsensitiveEquals("content-length") {
                let parts = value.utf8.contains(UInt8(ascii: ",")) ? value.split(separator: ",", omittingEmptySubsequences: false) : [value[...]]
                for part in parts {
                    let part = part.trimmingSpaces
                    guard !part.isEmpty, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                        return .ambiguousLength("a Content-Length that is not a number")
                    }
                    if let length, length != part { return .ambiguousLength("Content-Length values that disagree") }
                    length = part
                }
            }
        }
        if codings > 1 { return .unsupportedTransferEncoding("chunked, chunked") }
        if codings == 1, length != nil { return .ambiguousLength("Content-Length with Transfer-Encoding") }
        return nil
    }

    /// The life of one caller connection as a pure value: what it is reading, which answers it
    /// owes, and which deadline applies now. Every event returns what the handler must do; time is
    /// passed in, so the tests need neither sockets nor clocks.
    ///
    /// Deadlines follow the caller's side only: while the gateway itself holds reads (a pipelined
    /// request waits behind an answer), no read deadline runs.
    struct StateMachine: Sendable {
        enum Reading: Equatable, Sendable {
            /// Waiting for a request head: `firstByte` when a byte of it came, `bytes` read since.
            case head(firstByte: NIODeadline?, bytes: Int)
            /// A body is arriving; its head went to the application. `reserved`: bytes of it held
            /// in the body memory budget.
            case body(headAt: NIODeadline, lastProgress: NIODeadline, reserved: Int)
            /// Nothing more is handed on: the caller closed its side, sent its last request, or
            /// was refused. `midMessage`: the caller may still be sending a request.
            case stopped(midMessage: Bool)
            /// The last answer is out; what the caller still sends is dropped until `until`, then
            /// the connection closes (closing at once could reset the answer away).
            case lingering(until: NIODeadline, dropped: Int)
        }

        enum Action: Equatable, Sendable {
            case none
            /// Write the gateway's own answer, then call ``refusalWritten(now:)``.
            case refuse(Refusal)
            /// Fail the request being read with the error: the application answers it, and the
            /// connection closes after that answer. Release `release` bytes of the budget.
            case failBody(Refusal, release: Int)
            /// Close now.
            case close
            /// Close the output and drop input until the caller closes or the linger deadline passes.
            case linger
        }

        enum BytesAction: Equatable, Sendable {
            case forward
            case drop
            /// Drop them and close: a lingering caller sent more than is worth draining.
            case dropAndClose
        }

        /// How the head of the next answer must go out.
        struct AnswerHead: Equatable, Sendable {
            var http10: Bool
            /// Add `Connection: close` (the connection closes after this answer).
            var close: Bool
            /// Add `Connection: keep-alive` (an HTTP/1.0 caller that asked for it).
            var keepAlive: Bool
        }

        let limits: Limits
        private(set) var reading: Reading
        /// Requests whose answers have not ended, oldest first (HTTP/1.1 answers in order).
        private(set) var owed = CircularBuffer<RequestFacts>(initialCapacity: 2)
        /// The gateway's own answer, due once the owed answers are out.
        private(set) var refusal: Refusal?
        /// When the connection was accepted or its last answer ended.
        private(set) var idleSince: NIODeadline
        private var servedAny = false
        /// Since when the gateway holds reads (no read outstanding), if it does.
        private var heldSince: NIODeadline?
        /// Bytes may still come from the caller (it has not closed its side).
        private var inputOpen = true
        /// The server is shutting down: no request after the one being read.
        private var quiescing = false
        /// Budget bytes of a body given up (``takeReleasable()``).
        private var releasable = 0

        init(limits: Limits, now: NIODeadline) {
            self.limits = limits
            self.reading = .head(firstByte: nil, bytes: 0)
            self.idleSince = now
        }

        var reservedBodyBytes: Int {
            if case .body(_, _, let reserved) = reading { return reserved }
            return 0
        }

        /// Budget bytes of a body the connection gave up on without an event of its own (an answer
        /// that ended before its body did); the handler releases them.
        mutating func takeReleasable() -> Int {
            defer { releasable = 0 }
            return releasable
        }

        // MARK: reading

        /// Bytes arrived from the socket, before decoding.
        mutating func bytesReceived(_ count: Int, now: NIODeadline) -> BytesAction {
            switch reading {
            case .head(let firstByte, let bytes):
                reading = .head(firstByte: firstByte ?? now, bytes: bytes &+ count)
                return .forward
            case .body(let headAt, _, let reserved):
                reading = .body(headAt: headAt, lastProgress: now, reserved: reserved)
                return .forward
            case .stopped:
                return .drop
            case .lingering(let until, let dropped):
                let total = dropped &+ count
                guard total <= limits.lingerBytes else {
                    reading = .stopped(midMessage: false)
                    return .dropAndClose
                }
                reading = .lingering(until: until, dropped: total)
                return .drop
            }
        }

        /// The socket read is done. A head still unfinished and over the limit is refused here:
        /// counted per read, so bytes of a body that followed its head in one read never count.
        mutating func readComplete(now: NIODeadline) -> Action {
            heldSince = now
            if case .head(_, let bytes) = reading, bytes > limits.maxHeadBytes {
                return refuse(.headTooLarge)
            }
            return .none
        }

        /// The application asks for more: time it held reads does not count against the caller.
        mutating func readRequested(now: NIODeadline) {
            guard let held = heldSince else { return }
            heldSince = nil
            let pause = now - held
            guard pause > .zero else { return }
            switch reading {
            case .head(let firstByte?, let bytes):
                reading = .head(firstByte: firstByte + pause, bytes: bytes)
            case .body(let headAt, let lastProgress, let reserved):
                reading = .body(headAt: headAt + pause, lastProgress: lastProgress + pause, reserved: reserved)
            case .head, .stopped, .lingering:
                break
            }
        }

        /// A decoded head. `framing` is ``CallerConnection/framingProblem(_:)`` of it.
        mutating func headReceived(_ facts: RequestFacts, framing: Refusal?, now: NIODeadline) -> Action {
            guard case .head = reading else { return .none }
            if let framing { return refuse(framing) }
            owed.append(facts)
            servedAny = true
            reading = .body(headAt: now, lastProgress: now, reserved: 0)
            return .none
        }

        /// Part of a body arrived; `reserved` says whether the budget took it.
        mutating func bodyReceived(_ count: Int, reserved: Bool) -> Action {
            guard case .body(let headAt, let lastProgress, let held) = reading else { return .none }
            guard reserved else { return failBody(.bodyMemoryExhausted) }
            reading = .body(headAt: headAt, lastProgress: lastProgress, reserved: held + count)
            return .none
        }

        /// The request's end arrived. Returns the budget bytes to release.
        mutating func requestEnded() -> Int {
            guard case .body(_, _, let reserved) = reading else { return 0 }
            // After a request that ends the connection nothing more is read.
            let last = quiescing || owed.last?.keepAlive == false
            reading = last ? .stopped(midMessage: false) : .head(firstByte: nil, bytes: 0)
            return reserved
        }

        /// The decoder failed: before a head reached the application it is the gateway's to
        /// answer; during a body the application answers (the request fails).
        mutating func decodeFailed(_ error: any Error) -> Action {
            switch reading {
            case .head: return refuse(Refusal(headError: error))
            case .body: return failBody(Refusal(bodyError: error))
            case .stopped, .lingering: return .none
            }
        }

        /// The caller shut its side (or the socket ended). Returns the budget bytes to release.
        mutating func inputClosed() -> Int {
            inputOpen = false
            let reserved = reservedBodyBytes + takeReleasable()
            switch reading {
            case .head, .body, .stopped: reading = .stopped(midMessage: false)
            case .lingering: break
            }
            return reserved
        }

        /// The server is shutting down: finish what is owed (and the request being read), then close.
        mutating func quiesce() -> Action {
            quiescing = true
            guard case .head = reading else { return .none }
            reading = .stopped(midMessage: false)
            return owed.isEmpty && refusal == nil ? .close : .none
        }

        // MARK: writing

        /// The head of an answer (not an informational one) is going out.
        mutating func answerHeadWritten(hasContentLength: Bool) -> AnswerHead {
            guard var facts = owed.first else { return AnswerHead(http10: false, close: false, keepAlive: false) }
            // An HTTP/1.0 answer without a length ends with the connection.
            if facts.http10, !hasContentLength { facts.keepAlive = false }
            var readingEnds: Bool
            switch reading {
            case .stopped, .lingering: readingEnds = refusal == nil
            // Answered before its own body ended (a 413, say): the rest is not read, the connection ends.
            case .body: readingEnds = true
            case .head: readingEnds = false
            }
            if quiescing { readingEnds = true }
            if owed.count == 1, readingEnds { facts.keepAlive = false }
            owed[owed.startIndex] = facts
            return AnswerHead(http10: facts.http10, close: !facts.keepAlive, keepAlive: facts.http10 && facts.keepAlive)
        }

        /// An answer's end went out.
        mutating func answerEnded(now: NIODeadline) -> Action {
            guard let facts = owed.popFirst() else { return .none }
            if !facts.keepAlive { return finish(now: now) }
            guard owed.isEmpty else { return .none }
            if let refusal {
                // The gateway's own answer is due now.
                self.refusal = nil
                return .refuse(refusal)
            }
            switch reading {
            case .head(nil, _):
                idleSince = now
                return .none
            case .head, .lingering:
                return .none
            case .body, .stopped:
                // Answered before its body ended (a 413, say), or nothing more is read.
                return finish(now: now)
            }
        }

        /// The gateway's own answer went out.
        mutating func refusalWritten(now: NIODeadline) -> Action { finish(now: now) }

        /// Nothing more is answered: close, lingering first if the caller may be mid-request.
        private mutating func finish(now: NIODeadline) -> Action {
            owed.removeAll()
            refusal = nil
            releasable += reservedBodyBytes
            let midMessage: Bool
            switch reading {
            case .head(let firstByte, _): midMessage = firstByte != nil
            case .body: midMessage = true
            case .stopped(let stoppedMidMessage): midMessage = stoppedMidMessage
            case .lingering: return .none
            }
            guard inputOpen, midMessage else {
                reading = .stopped(midMessage: false)
                return .close
            }
            reading = .lingering(until: now + limits.lingerTimeout, dropped: 0)
            return .linger
        }

        private mutating func refuse(_ refusal: Refusal) -> Action {
            // Refusals come from a head, so no body is held. Whatever follows is not read.
            reading = .stopped(midMessage: true)
            if owed.isEmpty { return .refuse(refusal) }
            self.refusal = refusal
            return .none
        }

        private mutating func failBody(_ refusal: Refusal) -> Action {
            let reserved = reservedBodyBytes
            reading = .stopped(midMessage: true)
            return .failBody(refusal, release: reserved)
        }

        // MARK: time

        /// The deadline the caller is held to now, if any.
        var deadline: NIODeadline? {
            switch reading {
            case .head(let firstByte?, _):
                return firstByte + limits.headerTimeout
            case .head(nil, _):
                guard owed.isEmpty else { return nil }
                return idleSince + (servedAny ? limits.keepAliveTimeout : limits.headerTimeout)
            case .body(let headAt, let lastProgress, _):
                return min(headAt + limits.bodyTimeout, lastProgress + limits.bodyIdleTimeout)
            case .stopped:
                return nil
            case .lingering(let until, _):
                return until
            }
        }

        /// The timer fired. Also returns when it must look next: never later than a deadline, and
        /// never later than one check interval (so a deadline that starts meanwhile is not missed).
        mutating func timerFired(now: NIODeadline) -> (action: Action, next: NIODeadline) {
            let next = now + limits.checkInterval
            guard let deadline else { return (.none, next) }
            guard now >= deadline else { return (.none, min(next, deadline)) }
            switch reading {
            case .lingering:
                reading = .stopped(midMessage: false)
                return (.close, next)
            case .head(nil, _):
                // Idle, or accepted and silent: nothing to answer.
                reading = .stopped(midMessage: false)
                return (.close, next)
            case .head where heldSince != nil && !owed.isEmpty, .body where heldSince != nil:
                // The gateway holds reads: the caller is not late.
                return (.none, next)
            case .head:
                return (refuse(.headTimeout), next)
            case .body(let headAt, _, _):
                return (failBody(now >= headAt + limits.bodyTimeout ? .bodyTimeout : .bodyStalled), next)
            case .stopped:
                return (.none, next)
            }
        }
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }

    fileprivate func caseInsensitiveEquals(_ other: String) -> Bool {
        utf8.count == other.utf8.count && zip(utf8, other.utf8).allSatisfy { $0 | 0x20 == $1 | 0x20 }
    }
}

extension String {
    fileprivate func caseInsensitiveEquals(_ other: String) -> Bool {
        utf8.count == other.utf8.count && zip(utf8, other.utf8).allSatisfy { $0 | 0x20 == $1 | 0x20 }
    }
}
