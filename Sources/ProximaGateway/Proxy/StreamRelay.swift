import AsyncHTTPClient
import Hummingbird
import NIOCore
import ProximaCore

/// An upstream stream whose response head has arrived, read event by event.
/// Owned by one request at a time: handed from the attempt to the response body, never shared.
final class UpstreamStream: @unchecked Sendable {
    private var iterator: UpstreamAnswer.Body.AsyncIterator
    private var splitter: ServerSentEventSplitter
    private var finished = false
    /// Events already read but not yet relayed.
    private(set) var buffered: [ByteBuffer] = []
    var firstEventAt: ContinuousClock.Instant?
    /// From the request entering the socket to the first event leaving it (pooled client only).
    var measuredWait: Duration?
    /// When the chunk read last arrived from the socket (pooled client only).
    var lastArrival: ContinuousClock.Instant? { iterator.lastArrival }

    init(iterator: UpstreamAnswer.Body.AsyncIterator, allocator: ByteBufferAllocator) {
        self.iterator = iterator
        self.splitter = ServerSentEventSplitter(allocator: allocator)
    }

    /// What opened a stream.
    enum Opening: Equatable {
        /// An event with data: the first token (or the first chunk) of the answer.
        case data
        /// An error event in place of the answer (its text, shortened): nothing was generated.
        case error(String)
        /// The stream ended before any event with data.
        case ended
    }

    /// Reads until the first complete event that carries data. Events without data before it
    /// (`:` comments, keep-alives) are kept to be relayed, but do not count as the first event.
    func receiveFirstEvent(maximumLeadingEvents: Int = 1_000) async throws -> Opening {
        var leading = 0
        while let event = try await readEvent() {
            let summary = ServerSentEventSummary(event: event)
            if summary.isError { return .error(Self.excerpt(event)) }
            buffered.append(event)
            if summary.hasData { return .data }
            leading += 1
            // Keep-alives alone never start an answer; the first-byte deadline ends the wait anyway,
            // this bounds what they can make the gateway hold meanwhile.
            if leading >= maximumLeadingEvents { throw ServerSentEventSplitter.EventTooLarge() }
        }
        return .ended
    }

    private static func excerpt(_ event: ByteBuffer) -> String {
        let bytes = event.readableBytesView.prefix(300).map { $0 == 0x0A || $0 == 0x0D ? 0x20 : $0 }
        return String(decoding: bytes, as: UTF8.self).split(separator: " ").joined(separator: " ")
    }

    /// The next complete event, or nil at the end of the stream. Trailing bytes without a final
    /// blank line are returned as a last event.
    func nextEvent() async throws -> ByteBuffer? {
        if !buffered.isEmpty { return buffered.removeFirst() }
        return try await readEvent()
    }

    /// The next event from the upstream, past those already buffered.
    private func readEvent() async throws -> ByteBuffer? {
        while true {
            if let event = splitter.nextEvent() { return event }
            if finished { return splitter.remainder() }
            if let chunk = try await iterator.next() {
                try splitter.append(chunk)
            } else {
                finished = true
            }
        }
    }
}

/// Relays events from an upstream stream to the caller, counting usage and hiding the usage-only
/// chunk the gateway asked for when the caller did not.
struct StreamRelay {
    enum Failure: Error, CustomStringConvertible {
        case idleTimeout
        case totalTimeout
        case aborted(String)
        /// The upstream closed the stream before its end marker.
        case truncated

        var kind: UpstreamFailureKind {
            switch self {
            case .idleTimeout, .totalTimeout: .timeout
            case .aborted, .truncated: .streamAborted
            }
        }

        var description: String {
            switch self {
            case .idleTimeout: "idle timeout"
            case .totalTimeout: "total timeout"
            case .aborted(let reason): "aborted: \(reason)"
            case .truncated: "ended without [DONE]"
            }
        }
    }

    let callerWantsUsage: Bool
    private(set) var usage: TokenUsage?
    private(set) var eventsSent = 0
    private(set) var contentEvents = 0
    private(set) var upstreamFailure: Failure?
    /// The upstream sent its own error event (relayed as it came): the stream failed.
    private(set) var sawErrorEvent = false

    /// Receives every event, as the upstream sent it, for the cache.
    let capture: CacheCapture?

    /// Masks the answer's text on its way (nil: the answer passes as it came).
    private var output: OutputGuard?

    /// Hashes what the caller is sent (when auditing).
    var digest: StreamDigest?
    /// Runs before `[DONE]` goes out, with the usage so far, the content events sent and the answer's
    /// digest: the request's audit record is made durable there, before the stream's last event.
    var beforeDone: (@Sendable (TokenUsage?, Int, AuditAnswer) async throws(GatewayError) -> Void)?
    /// The audit log could not take the record: the stream ended without `[DONE]`.
    private(set) var auditFailure: GatewayError?

    init(callerWantsUsage: Bool, capture: CacheCapture? = nil, output: OutputGuard? = nil) {
        self.callerWantsUsage = callerWantsUsage
        self.capture = capture
        self.output = output
    }

    /// Books the output guard's verdict once the stream is over.
    mutating func finishOutput() {
        output?.finish()
    }

    /// Relays until the upstream ends. Upstream failures are recorded in `upstreamFailure` (the
    /// caller then ends the stream with an error event); write failures (the caller went away) throw.
    mutating func run(upstream: UpstreamStream, writer: inout any ResponseBodyWriter) async throws {
        var sawDone = false
        while true {
            let event: ByteBuffer?
            do {
                event = try await upstream.nextEvent()
            } catch let error as HTTPClientError where error == .readTimeout || error == .deadlineExceeded {
                upstreamFailure = .idleTimeout
                return
            } catch UpstreamClientError.idleTimeout {
                upstreamFailure = .idleTimeout
                return
            } catch is CancellationError {
                throw CancellationError()
            } catch is ServerSentEventSplitter.EventTooLarge {
                upstreamFailure = .aborted("an event exceeded the size limit")
                return
            } catch {
                if Task.isCancelled { throw CancellationError() }
                upstreamFailure = .aborted(Self.describe(error))
                return
            }
            guard let event else { break }
            // The output guard masks first, so that the caller and the cache see the same answer.
            if output != nil {
                for masked in output!.process(event: event) where try await relay(masked, writer: &writer, sawDone: &sawDone) {
                    return
                }
            } else if try await relay(event, writer: &writer, sawDone: &sawDone) {
                return
            }
        }
        if !sawDone { upstreamFailure = .truncated }
    }

    /// Sends one event on (without the usage the caller did not ask for); true when it was the
    /// upstream's error event, which ends the stream.
    private mutating func relay(_ event: ByteBuffer, writer: inout any ResponseBodyWriter, sawDone: inout Bool) async throws -> Bool {
        let summary = ServerSentEventSummary(event: event)
        if let reported = summary.usage { usage = reported }
        if summary.isDone { sawDone = true }
        if summary.hasChoices { contentEvents += 1 }
        if summary.isError { sawErrorEvent = true }
        capture?.append(event: event)
        if summary.isDone, let beforeDone {
            do {
                try await beforeDone(usage, contentEvents, digest?.answer() ?? AuditAnswer())
            } catch {
                auditFailure = error
                return true
            }
        }
        if summary.usage != nil && !callerWantsUsage {
            if summary.isUsageOnly { return false }
            let sent = summary.removingUsage(from: event)
            digest?.add(sent)
            try await writer.write(sent)
        } else {
            if !summary.isDone { digest?.add(event) }
            try await writer.write(event)
        }
        eventsSent += 1
        return summary.isError
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return error.shortDescription }
        if let error = error as? UpstreamClientError { return error.description }
        return String(describing: type(of: error))
    }
}
