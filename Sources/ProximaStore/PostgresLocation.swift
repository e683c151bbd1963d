import Foundation

/// Where a PostgreSQL database is and how to log in, read from a URL of the usual form
/// `postgres://user:password@host:port/database?sslmode=disable` (`postgresql://` too; `?host=DIR`
/// for a Unix socket in DIR). Its `description` leaves the password out, so it may be logged and
/// put in error messages.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, Equatable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it (PostgreSQL's default).
        case prefer
        /// TLS or nothing; the server's certificate is verified.
        case require
    }

    public var host: String
    public var port: Int
    /// A directory holding the server's Unix socket, instead of TCP to `host`.
    public var socketDirectory: String?
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    public init(
        host: String = "127.0.0.1", port: Int = 5432, socketDirectory: String? = nil, username: String, password: String? = nil,
        database: String, tls: TLSMode = .prefer
    ) {
        self.host = host
        self.port = port
        self.socketDirectory = socketDirectory
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// Parses a URL; the error never repeats the URL (it may hold a password).
    public init(url text: String) throws(StoreError) {
        func refuse(_ why: String) -> StoreError { .invalid(field: "database URL", message: why) }
        guard let components = URLComponents(string: text) else {
            throw refuse("is not a URL of the form postgres://user:password@host:port/database")
        }
        guard let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
            throw refuse("must start with postgres:// or postgresql://")
        }
        guard let user = components.user, !user.isEmpty else { throw refuse("must name a user (postgres://user@host/database)") }
        username = user.removingPercentEncoding ?? user
        password = components.password.map { $0.removingPercentEncoding ?? $0 }
        host = components.host.map { $0.isEmpty ? "127.0.0.1" : $0 } ?? "127.0.0.1"
        if let port = components.port {
            guard (1...65535).contains(port) else { throw refuse("has a port outside 1...65535") }
            self.port = port
        } else {
            port = 5432
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? username : (path.removingPercentEncoding ?? path)
        tls = .prefer
        socketDirectory = nil
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value {
                case "disable": tls = .disable
                case "prefer", "allow": tls = .prefer
                case "require", "verify-ca", "verify-full": tls = .require
                default: throw refuse("sslmode must be disable, prefer or require")
                }
            case "host":
                guard let directory = item.value, directory.hasPrefix("/") else {
                    throw refuse("host= must be the absolute path of the directory holding the server's socket")
                }
                socketDirectory = directory
            default:
                throw refuse("has an unknown parameter '\(item.name)' (known: sslmode, host)")
            }
        }
    }

    /// `user@host:port/database`, without the password.
    public var description: String {
        let place = socketDirectory.map { "\($0) (socket, port \(port))" } ?? "\(host):\(port)"
        return "\(username)@\(place)/\(database)"
    }
}
