import AsyncHTTPClient
import NIOCore

/// The answer of an upstream, whichever client fetched it: the pooled client for plain-HTTP
/// upstreams, AsyncHTTPClient for HTTPS (and when configured).
struct UpstreamAnswer: Sendable {
    var status: Int
    var contentType: String?
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
