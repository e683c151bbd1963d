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

    /// Reads until the first complete event; false when the stream ended before one arrived.
    func receiveFirstEvent() async throws -> Bool {
        if let event = try await nextEvent() {
            buffered.append(event)
            return true
        }
        return false
    }

    /// The next complete event, or nil at the end of the stream. Trailing bytes without a final
    /// blank line are returned as a last event.
    func nextEvent() async throws -> ByteBuffer? {
        if !buffered.isEmpty { return buffered.removeFirst() }
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

    init(callerWantsUsage: Bool) {
        self.callerWantsUsage = callerWantsUsage
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
            let summary = ServerSentEventSummary(event: event)
            if let reported = summary.usage { usage = reported }
            if summary.isDone { sawDone = true }
            if summary.hasChoices { contentEvents += 1 }
            if summary.usage != nil && !callerWantsUsage {
                if summary.isUsageOnly { continue }
                try await writer.write(summary.removingUsage(from: event))
            } else {
                try await writer.write(event)
            }
            eventsSent += 1
            if summary.isError { return }
        }
        if !sawDone { upstreamFailure = .truncated }
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return error.shortDescription }
        if let error = error as? UpstreamClientError { return error.description }
        return String(describing: type(of: error))
    }
}
