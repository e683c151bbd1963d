/// Where tenants, principals, keys, admin changes and shared counters are kept: a SQLite file (the
/// default: nothing to install, one gateway) or a PostgreSQL database (several replicas sharing
/// limits). The PostgreSQL URL holds a password, so the file names the environment variable that
/// holds it, never the URL itself.
public struct StoreSettings: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case sqlite, postgres
    }

    public var kind: Kind
    /// The SQLite file; `nil`: `proxima.sqlite` in the configuration's `data_dir`. A relative path
    /// is relative to the working directory.
    public var path: String?
    /// The environment variable holding the PostgreSQL URL
    /// (`postgres://user:password@host:port/database?sslmode=disable`); required for `postgres`.
    public var urlEnv: String?
    /// How long one store operation may take, waits for a lock or a connection included, before
    /// it fails as unavailable.
    public var timeoutSeconds: Double
    /// PostgreSQL connections kept by one process at most.
    public var maxConnections: Int
    /// How often a gateway asks the store whether identities changed (one tiny query), and reloads
    /// them when they did: a key revoked elsewhere stops working within about this long.
    public var refreshSeconds: Double

    public init(
        kind: Kind = .sqlite, path: String? = nil, urlEnv: String? = nil, timeoutSeconds: Double = 5, maxConnections: Int = 8,
        refreshSeconds: Double = 1
    ) {
        self.kind = kind
        self.path = path
        self.urlEnv = urlEnv
        self.timeoutSeconds = timeoutSeconds
        self.maxConnections = maxConnections
        self.refreshSeconds = refreshSeconds
    }

    /// The SQLite file's name in the data directory when `path` is not set.
    public static let defaultFileName = "proxima.sqlite"
    public static let timeoutRange = 0.0...3_600.0
    public static let maxConnectionsRange = 1...1_000
    public static let refreshRange = 0.05...3_600.0
    /// Paths longer than this are refused (Linux's `PATH_MAX`).
    public static let maximumPathBytes = 4_096

    /// The SQLite file for a configuration whose data directory is `dataDirectory`.
    public func sqlitePath(dataDirectory: String) -> String {
        if let path { return path }
        let directory = dataDirectory.hasSuffix("/") ? String(dataDirectory.dropLast()) : dataDirectory
        return directory.isEmpty ? Self.defaultFileName : directory + "/" + Self.defaultFileName
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, path, urlEnv = "url_env", timeoutSeconds = "timeout_seconds", maxConnections = "max_connections"
        case refreshSeconds = "refresh_seconds"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = StoreSettings()
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? d.kind
        path = try c.decodeIfPresent(String.self, forKey: .path)
        urlEnv = try c.decodeIfPresent(String.self, forKey: .urlEnv)
        timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? d.timeoutSeconds
        maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? d.maxConnections
        refreshSeconds = try c.decodeIfPresent(Double.self, forKey: .refreshSeconds) ?? d.refreshSeconds
    }

    /// Every value out of range, named by its key under `path` (`store`). `forbiddenVariables` are
    /// environment variables the URL may not come from (the admin token's). The data directory is
    /// checked with the rest of the configuration (`data_dir`).
    public func problems(at keyPath: String, forbiddenVariables: Set<String> = []) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        if let problem = ConfigurationBounds.problem(timeoutSeconds, in: Self.timeoutRange, excludingLowerBound: true, unit: "seconds") {
            problems.append(.init("\(keyPath).timeout_seconds", problem))
        }
        if let problem = ConfigurationBounds.problem(maxConnections, in: Self.maxConnectionsRange) {
            problems.append(.init("\(keyPath).max_connections", problem))
        }
        if let problem = ConfigurationBounds.problem(refreshSeconds, in: Self.refreshRange, unit: "seconds") {
            problems.append(.init("\(keyPath).refresh_seconds", problem))
        }
        if let path, let problem = Self.pathProblem(path) { problems.append(.init("\(keyPath).path", problem)) }
        switch kind {
        case .sqlite:
            if urlEnv != nil { problems.append(.init("\(keyPath).url_env", "is only used with kind: postgres")) }
        case .postgres:
            if let urlEnv {
                if !ProximaConfiguration.isVariableName(urlEnv) {
                    problems.append(.init("\(keyPath).url_env", "must be an environment variable name, got '\(urlEnv)'"))
                } else if forbiddenVariables.contains(urlEnv) {
                    problems.append(.init("\(keyPath).url_env", "must not be the admin token's variable (admin.token_env)"))
                }
            } else {
                problems.append(.init("\(keyPath).url_env", "is required with kind: postgres (the variable holding the database URL)"))
            }
            if path != nil { problems.append(.init("\(keyPath).path", "is only used with kind: sqlite")) }
        }
        return problems
    }

    /// Why `path` cannot name a file or directory, or nil.
    static func pathProblem(_ path: String) -> String? {
        if path.isEmpty { return "must not be empty" }
        if path.utf8.count > maximumPathBytes { return "must be at most \(maximumPathBytes) bytes long" }
        if path.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return "must not contain control characters" }
        return nil
    }
}
