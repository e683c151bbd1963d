import Hummingbird
import Logging
import NIOCore

/// Per-request context: Hummingbird's core storage, the caller's connection (watched so that a
/// disconnect cancels upstream work) and the request id every response carries.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: (any Channel)?
    public var requestID: String = ""

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// Hummingbird's own body limit for decoding helpers; the proxy enforces its configured limit.
    public var maxUploadSize: Int { 64 * 1024 * 1024 }
}
