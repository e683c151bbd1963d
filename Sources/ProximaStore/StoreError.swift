/// Why a store operation failed. Every backend maps its own errors to these, so callers (the
/// command line, the admin API, the gateway) answer the same way whatever the database. No case
/// carries a secret: not a key's hash, not a token, not a database URL with its password.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The thing named does not exist, e.g. `tenant 'acme'`.
    case notFound(String)
    /// Something with that identifier exists already, e.g. `tenant 'acme'`.
    case alreadyExists(String)
    /// A value was refused before anything was written: the field (as a key path, e.g.
    /// `limits.requests_per_minute`) and why.
    case invalid(field: String, message: String)
    /// The database could not be reached or did not answer in time. A write that failed so did not
    /// take effect, except when the deadline passed while its commit was under way: then it may
    /// have. The text says what failed, without credentials.
    case unavailable(String)

    public var description: String {
        switch self {
        case .notFound(let what): return "\(what) does not exist"
        case .alreadyExists(let what): return "\(what) already exists"
        case .invalid(let field, let message): return "\(field): \(message)"
        case .unavailable(let reason): return "the store is unavailable: \(reason)"
        }
    }
}
