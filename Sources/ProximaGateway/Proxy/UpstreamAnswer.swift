import AsyncHTTPClient
import NIOCore

/// The answer of an upstream, whichever client fetched it: the pooled client for plain-HTTP
/// upstreams, AsyncHTTPClient for HTTPS (and when configured).
struct UpstreamAnswer: Sendable {
    var status: Int
    var contentType: String?
    /// The answer's `content-encoding` (the gateway asks for `identity`, but an upstream may still
    /// compress): relayed with a plain answer, whose bytes pass through as they are.
    var contentEncoding: String?
    /// When the request went into the socket (pooled client only; AsyncHTTPClient does not say).
    var sentAt: ContinuousClock.Instant?
    var body: Body

    enum Body: AsyncSequence, Sendable {
        typealias Element = ByteBuffer
        case pooled(PooledUpstreamBody)
        case asyncHTTPClient(HTTPClientResponse.Body)

        func makeAsyncIterator() -> AsyncIterator {
            switch self {
            case .pooled(let body): AsyncIterator(base: .pooled(body.makeAsyncIterator()))
            case .asyncHTTPClient(let body): AsyncIterator(base: .asyncHTTPClient(body.makeAsyncIterator()))
            }
        }

        struct AsyncIterator: AsyncIteratorProtocol {
            enum Base {
                case pooled(PooledUpstreamBody.AsyncIterator)
                case asyncHTTPClient(HTTPClientResponse.Body.AsyncIterator)
            }
            var base: Base

            /// When the chunk last returned arrived from the socket (pooled client only).
            var lastArrival: ContinuousClock.Instant? {
                if case .pooled(let iterator) = base { return iterator.lastArrival }
                return nil
            }

            mutating func next() async throws -> ByteBuffer? {
                switch base {
                case .pooled(var iterator):
                    return try await iterator.next()
                case .asyncHTTPClient(var iterator):
                    let chunk = try await iterator.next()
                    base = .asyncHTTPClient(iterator)
                    return chunk
                }
            }
        }
    }
}

extension InferenceProxy {
    /// A stream the gateway cannot read event by event (compressed although `identity` was asked
    /// for) is the upstream's protocol error, not bytes to relay as if they were events.
    static func refusingCompressedStream(_ answer: UpstreamAnswer, stream: Bool) throws -> UpstreamAnswer {
        guard stream, (200..<300).contains(answer.status), let encoding = answer.contentEncoding,
            encoding.lowercased() != "identity"
        else { return answer }
        throw UpstreamClientError.protocolViolation("a stream with content-encoding '\(encoding)'")
    }
}
