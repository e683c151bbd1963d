import HTTPTypes
import ProximaCore

/// What the edge stage reads of a request to classify its caller: the request line, the head and
/// the connection's peer (the client behind trusted proxies, when there are some).
struct EdgeRequest: Sendable {
    var method: HTTPRequest.Method
    /// `Host` (or `:authority`), as sent.
    var authority: String?
    /// The path with its query, as sent.
    var path: String?
    var scheme: String
    var headers: HTTPFields
    var peer: IPAddress?
}
