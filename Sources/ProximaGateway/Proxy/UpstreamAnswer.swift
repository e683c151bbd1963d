import AsyncHTTPClient
import NIOCore

/// The answer of an upstream, whichever client fetched it: the pooled client for plain-HTTP
/// upstreams, AsyncHTTPClient for HTTPS (and when configured).
struct UpstreamAnswer: Sendable {
    var status: Int
    var contentType: String?
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
