/// What one class of callers may do (`edge.policies`, docs/security.md): be served (`allow`), be
/// served within its own request rate (`rate_limit`), be answered only from the cache (`cache_only`:
/// a cached answer or 429), or be refused (`block`: 403). In YAML a word, or a mapping with `action`
/// and, for `rate_limit`, `requests_per_minute`.
public struct EdgePolicy: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable, CaseIterable {
        case allow
        case rateLimit = "rate_limit"
        case cacheOnly = "cache_only"
        case block
    }

    public var action: Action
    /// For `rate_limit`: requests per minute for each caller of the class (per agent origin, crawler
    /// name or address, see docs/security.md).
    public var requestsPerMinute: Int?

    public init(_ action: Action, requestsPerMinute: Int? = nil) {
        self.action = action
        self.requestsPerMinute = requestsPerMinute
    }

    public static let allow = EdgePolicy(.allow)
    public static let block = EdgePolicy(.block)

    enum CodingKeys: String, CodingKey, CaseIterable { case action, requestsPerMinute = "requests_per_minute" }

    public init(from decoder: any Decoder) throws {
        if let word = try? decoder.singleValueContainer().decode(String.self) {
            guard let action = Action(rawValue: word) else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: decoder.codingPath,
                        debugDescription: "unknown action '\(word)' (expected one of: allow, rate_limit, cache_only, block)"))
            }
            self.action = action
            self.requestsPerMinute = nil
            return
        }
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.action = try c.decode(Action.self, forKey: .action)
        self.requestsPerMinute = try c.decodeIfPresent(Int.self, forKey: .requestsPerMinute)
    }

    func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        if action == .rateLimit {
            if let requestsPerMinute {
                if let problem = ConfigurationBounds.problem(requestsPerMinute, in: 1...ConfigurationBounds.maximumCount) {
                    problems.append(.init("\(path).requests_per_minute", problem))
                }
            } else {
                problems.append(.init("\(path).requests_per_minute", "is required for rate_limit"))
            }
        } else if requestsPerMinute != nil {
            problems.append(.init("\(path).requests_per_minute", "applies only to rate_limit"))
        }
        return problems
    }
}

/// A public key of a signed agent, configured rather than fetched: a JWK of type OKP, curve Ed25519.
public struct AgentKey: Codable, Sendable, Equatable {
    public var kty: String
    public var crv: String
    /// The public key, base64url without padding (32 bytes).
    public var x: String

    public init(kty: String = "OKP", crv: String = "Ed25519", x: String) {
        self.kty = kty
        self.crv = crv
        self.x = x
    }
}

/// The keys of one signed agent, known without fetching its directory.
public struct AgentDirectorySettings: Codable, Sendable, Equatable {
    /// The agent's origin as its `Signature-Agent` header names it (`https://agent.example`).
    public var origin: String
    public var keys: [AgentKey]

    public init(origin: String, keys: [AgentKey]) {
        self.origin = origin
        self.keys = keys
    }
}

/// Signed agents: HTTP Message Signatures in the Web Bot Auth profile (`edge.agents`).
public struct SignedAgentSettings: Codable, Sendable, Equatable {
    public var enabled: Bool
    /// Whether an agent's key directory is fetched from its `Signature-Agent` origin
    /// (`/.well-known/http-message-signatures-directory`) when it is not configured.
    public var fetchDirectories: Bool
    /// How long one directory fetch may take; past it the request is classified unverified.
    public var directoryTimeoutSeconds: Double
    /// Longest time a fetched directory is kept, whatever its `Cache-Control: max-age` says; a
    /// directory without max-age is kept `directory_default_ttl_seconds`.
    public var directoryMaxTTLSeconds: Double
    public var directoryDefaultTTLSeconds: Double
    /// Failed fetches are not retried for this long (per origin).
    public var directoryFailureTTLSeconds: Double
    /// Directories kept at most (fetched ones; configured ones do not count).
    public var maxDirectories: Int
    /// Signatures whose `expires - created` is longer are refused.
    public var maxSignatureLifetimeSeconds: Double
    /// Tolerance for clocks: `created` may be this far in the future, `expires` this far in the past.
    public var clockSkewSeconds: Double
    /// Signatures remembered (until they expire) to refuse a replay; when full, new signatures are
    /// refused as `replay_cache_full` rather than remembered badly.
    public var maxRememberedSignatures: Int
    /// Whether a fetched directory may be on a loopback or private address (tests, private agents).
    public var allowPrivateOrigins: Bool
    /// Hosts whose directories may be fetched: a name allows itself and its subdomains. Empty: any
    /// public host. The origin is named by the caller, so this is what keeps the gateway from fetching
    /// wherever a caller points it.
    public var allowedOrigins: [String]
    /// New directory fetches started at most per minute, for the whole gateway; past it a signature
    /// from an agent not yet known is unverified (`directory_unavailable`) without a fetch.
    public var maxFetchesPerMinute: Int
    /// Keys known without fetching.
    public var directories: [AgentDirectorySettings]

    /// Whether a directory may be fetched from `host` (lower-case): `allowed_origins` empty, or `host`
    /// is one of them or a subdomain of one.
    public func mayFetch(host: String) -> Bool {
        guard !allowedOrigins.isEmpty else { return true }
        return allowedOrigins.contains { allowed in
            let allowed = allowed.lowercased()
            return host == allowed || host.hasSuffix("." + allowed)
        }
    }

    public init(
        enabled: Bool = true, fetchDirectories: Bool = true, directoryTimeoutSeconds: Double = 1, directoryMaxTTLSeconds: Double = 86_400,
        directoryDefaultTTLSeconds: Double = 3_600, directoryFailureTTLSeconds: Double = 60, maxDirectories: Int = 10_000,
        maxSignatureLifetimeSeconds: Double = 3_600, clockSkewSeconds: Double = 60, maxRememberedSignatures: Int = 1_000_000,
        allowPrivateOrigins: Bool = false, allowedOrigins: [String] = [], maxFetchesPerMinute: Int = 60,
        directories: [AgentDirectorySettings] = []
    ) {
        self.enabled = enabled
        self.fetchDirectories = fetchDirectories
        self.directoryTimeoutSeconds = directoryTimeoutSeconds
        self.directoryMaxTTLSeconds = directoryMaxTTLSeconds
        self.directoryDefaultTTLSeconds = directoryDefaultTTLSeconds
        self.directoryFailureTTLSeconds = directoryFailureTTLSeconds
        self.maxDirectories = maxDirectories
        self.maxSignatureLifetimeSeconds = maxSignatureLifetimeSeconds
        self.clockSkewSeconds = clockSkewSeconds
        self.maxRememberedSignatures = maxRememberedSignatures
        self.allowPrivateOrigins = allowPrivateOrigins
        self.allowedOrigins = allowedOrigins
        self.maxFetchesPerMinute = maxFetchesPerMinute
        self.directories = directories
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, fetchDirectories = "fetch_directories", directoryTimeoutSeconds = "directory_timeout_seconds"
        case directoryMaxTTLSeconds = "directory_max_ttl_seconds", directoryDefaultTTLSeconds = "directory_default_ttl_seconds"
        case directoryFailureTTLSeconds = "directory_failure_ttl_seconds", maxDirectories = "max_directories"
        case maxSignatureLifetimeSeconds = "max_signature_lifetime_seconds", clockSkewSeconds = "clock_skew_seconds"
        case maxRememberedSignatures = "max_remembered_signatures", allowPrivateOrigins = "allow_private_origins", directories
        case allowedOrigins = "allowed_origins", maxFetchesPerMinute = "max_fetches_per_minute"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SignedAgentSettings()
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
        fetchDirectories = try c.decodeIfPresent(Bool.self, forKey: .fetchDirectories) ?? d.fetchDirectories
        directoryTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .directoryTimeoutSeconds) ?? d.directoryTimeoutSeconds
        directoryMaxTTLSeconds = try c.decodeIfPresent(Double.self, forKey: .directoryMaxTTLSeconds) ?? d.directoryMaxTTLSeconds
        directoryDefaultTTLSeconds = try c.decodeIfPresent(Double.self, forKey: .directoryDefaultTTLSeconds) ?? d.directoryDefaultTTLSeconds
        directoryFailureTTLSeconds = try c.decodeIfPresent(Double.self, forKey: .directoryFailureTTLSeconds) ?? d.directoryFailureTTLSeconds
        maxDirectories = try c.decodeIfPresent(Int.self, forKey: .maxDirectories) ?? d.maxDirectories
        maxSignatureLifetimeSeconds =
            try c.decodeIfPresent(Double.self, forKey: .maxSignatureLifetimeSeconds) ?? d.maxSignatureLifetimeSeconds
        clockSkewSeconds = try c.decodeIfPresent(Double.self, forKey: .clockSkewSeconds) ?? d.clockSkewSeconds
        maxRememberedSignatures = try c.decodeIfPresent(Int.self, forKey: .maxRememberedSignatures) ?? d.maxRememberedSignatures
        allowPrivateOrigins = try c.decodeIfPresent(Bool.self, forKey: .allowPrivateOrigins) ?? d.allowPrivateOrigins
        allowedOrigins = try c.decodeIfPresent([String].self, forKey: .allowedOrigins) ?? []
        maxFetchesPerMinute = try c.decodeIfPresent(Int.self, forKey: .maxFetchesPerMinute) ?? d.maxFetchesPerMinute
        directories = try c.decodeIfPresent([AgentDirectorySettings].self, forKey: .directories) ?? []
    }

    func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        func check(_ key: String, _ problem: String?) { if let problem { problems.append(.init("\(path).\(key)", problem)) } }
        check("directory_timeout_seconds", ConfigurationBounds.problem(directoryTimeoutSeconds, in: 0.001...60, unit: "seconds"))
        check("directory_max_ttl_seconds", ConfigurationBounds.problem(directoryMaxTTLSeconds, in: 1...ConfigurationBounds.maximumSeconds, unit: "seconds"))
        check("directory_default_ttl_seconds", ConfigurationBounds.problem(directoryDefaultTTLSeconds, in: 1...ConfigurationBounds.maximumSeconds, unit: "seconds"))
        check("directory_failure_ttl_seconds", ConfigurationBounds.problem(directoryFailureTTLSeconds, in: 0...ConfigurationBounds.maximumSeconds, unit: "seconds"))
        check("max_directories", ConfigurationBounds.problem(maxDirectories, in: 1...ConfigurationBounds.maximumCount))
        check("max_signature_lifetime_seconds", ConfigurationBounds.problem(maxSignatureLifetimeSeconds, in: 1...ConfigurationBounds.maximumSeconds, unit: "seconds"))
        check("clock_skew_seconds", ConfigurationBounds.problem(clockSkewSeconds, in: 0...3_600, unit: "seconds"))
        check("max_remembered_signatures", ConfigurationBounds.problem(maxRememberedSignatures, in: 1...100_000_000))
        check("max_fetches_per_minute", ConfigurationBounds.problem(maxFetchesPerMinute, in: 1...ConfigurationBounds.maximumCount))
        for (index, host) in allowedOrigins.enumerated() where host.isEmpty || host.utf8.count > 253 || host.contains("/") {
            check("allowed_origins[\(index)]", "must be a host name (agent.example), got '\(host.prefix(64))'")
        }
        for (index, directory) in directories.enumerated() {
            let origin = directory.origin
            if !(origin.hasPrefix("https://") || origin.hasPrefix("http://")) || origin.utf8.count > 2_048 {
                check("directories[\(index)].origin", "must be an http or https origin, got '\(origin.prefix(64))'")
            }
            if directory.keys.isEmpty { check("directories[\(index)].keys", "must list at least one key") }
            for (keyIndex, key) in directory.keys.enumerated() where key.kty != "OKP" || key.crv != "Ed25519" {
                check("directories[\(index)].keys[\(keyIndex)]", "must be kty OKP, crv Ed25519 (got \(key.kty) \(key.crv))")
            }
        }
        return problems
    }
}

/// Verified crawlers: a user agent naming a known crawler, proven by forward-confirmed reverse DNS
/// or the operator's published ranges (`edge.crawlers`).
public struct CrawlerSettings: Codable, Sendable, Equatable {
    public var enabled: Bool
    /// DNS servers to ask, `address:port` or `address` (port 53); empty: the nameservers of
    /// `/etc/resolv.conf`.
    public var dnsServers: [String]
    /// How long one lookup (PTR, then A/AAAA) may take; past it the caller is unverified (never an
    /// impersonator on a timeout), and the request goes on.
    public var dnsTimeoutSeconds: Double
    /// Verified (and refuted) addresses kept at most; each is kept for its records' TTL, at most
    /// `max_ttl_seconds`.
    public var maxCachedAddresses: Int
    public var maxTTLSeconds: Double
    /// Lookups that failed (timeout, SERVFAIL) are not retried for this long, per address; at most
    /// `max_failed_addresses` are remembered.
    public var failureTTLSeconds: Double
    public var maxFailedAddresses: Int
    /// A JSON file of operators' published ranges: `{"<crawler or operator name>": ["CIDR", ...]}`.
    public var rangesFile: String?
    /// A JSON file that replaces the shipped table of crawler operators and their domains.
    public var operatorsFile: String?

    public init(
        enabled: Bool = true, dnsServers: [String] = [], dnsTimeoutSeconds: Double = 0.5, maxCachedAddresses: Int = 100_000,
        maxTTLSeconds: Double = 86_400, failureTTLSeconds: Double = 60, maxFailedAddresses: Int = 10_000, rangesFile: String? = nil,
        operatorsFile: String? = nil
    ) {
        self.enabled = enabled
        self.dnsServers = dnsServers
        self.dnsTimeoutSeconds = dnsTimeoutSeconds
        self.maxCachedAddresses = maxCachedAddresses
        self.maxTTLSeconds = maxTTLSeconds
        self.failureTTLSeconds = failureTTLSeconds
        self.maxFailedAddresses = maxFailedAddresses
        self.rangesFile = rangesFile
        self.operatorsFile = operatorsFile
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, dnsServers = "dns_servers", dnsTimeoutSeconds = "dns_timeout_seconds", maxCachedAddresses = "max_cached_addresses"
        case maxTTLSeconds = "max_ttl_seconds", failureTTLSeconds = "failure_ttl_seconds", maxFailedAddresses = "max_failed_addresses"
        case rangesFile = "ranges_file", operatorsFile = "operators_file"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CrawlerSettings()
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
        dnsServers = try c.decodeIfPresent([String].self, forKey: .dnsServers) ?? []
        dnsTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .dnsTimeoutSeconds) ?? d.dnsTimeoutSeconds
        maxCachedAddresses = try c.decodeIfPresent(Int.self, forKey: .maxCachedAddresses) ?? d.maxCachedAddresses
        maxTTLSeconds = try c.decodeIfPresent(Double.self, forKey: .maxTTLSeconds) ?? d.maxTTLSeconds
        failureTTLSeconds = try c.decodeIfPresent(Double.self, forKey: .failureTTLSeconds) ?? d.failureTTLSeconds
        maxFailedAddresses = try c.decodeIfPresent(Int.self, forKey: .maxFailedAddresses) ?? d.maxFailedAddresses
        rangesFile = try c.decodeIfPresent(String.self, forKey: .rangesFile)
        operatorsFile = try c.decodeIfPresent(String.self, forKey: .operatorsFile)
    }

    func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        func check(_ key: String, _ problem: String?) { if let problem { problems.append(.init("\(path).\(key)", problem)) } }
        check("dns_timeout_seconds", ConfigurationBounds.problem(dnsTimeoutSeconds, in: 0.001...30, unit: "seconds"))
        check("max_cached_addresses", ConfigurationBounds.problem(maxCachedAddresses, in: 1...100_000_000))
        check("max_ttl_seconds", ConfigurationBounds.problem(maxTTLSeconds, in: 1...ConfigurationBounds.maximumSeconds, unit: "seconds"))
        check("failure_ttl_seconds", ConfigurationBounds.problem(failureTTLSeconds, in: 0...ConfigurationBounds.maximumSeconds, unit: "seconds"))
        check("max_failed_addresses", ConfigurationBounds.problem(maxFailedAddresses, in: 1...100_000_000))
        for (index, server) in dnsServers.enumerated() where DNSServerAddress(parsing: server) == nil {
            check("dns_servers[\(index)]", "must be an IP address, optionally with :port ([v6]:port), got '\(server.prefix(64))'")
        }
        return problems
    }
}

/// A DNS server to ask: an IP address and a port.
public struct DNSServerAddress: Sendable, Equatable, Hashable {
    public var address: IPAddress
    public var port: Int

    public init(address: IPAddress, port: Int = 53) {
        self.address = address
        self.port = port
    }

    /// `127.0.0.1`, `127.0.0.1:5353`, `::1` or `[::1]:5353`.
    public init?(parsing text: String) {
        var host = Substring(text)
        var port = 53
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let value = Int(rest.dropFirst()) else { return nil }
                port = value
            }
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            guard let value = Int(host[host.index(after: colon)...]) else { return nil }
            port = value
            host = host[..<colon]
        }
        guard (1...65_535).contains(port), let address = IPAddress(String(host)) else { return nil }
        self.init(address: address, port: port)
    }
}

/// The behavioural score of unknown callers (`edge.unknown`): cheap signals, each adding its weight
/// to a score capped at 1. docs/security.md lists the signals.
public struct UnknownCallerSettings: Codable, Sendable, Equatable {
    /// Window of the rate signals, in seconds.
    public var windowSeconds: Double
    /// Requests from one address in a window at which the address-rate signal is full.
    public var addressRequestsPerWindow: Int
    /// Addresses tracked at once (least recently seen dropped first).
    public var maxTrackedAddresses: Int
    /// At or above this score an unknown caller meets the `suspicious` policy.
    public var suspiciousScore: Double
    /// Weights of the signals, by name (docs/security.md); unnamed signals keep their defaults.
    public var weights: [String: Double]

    public init(
        windowSeconds: Double = 60, addressRequestsPerWindow: Int = 120, maxTrackedAddresses: Int = 100_000, suspiciousScore: Double = 0.7,
        weights: [String: Double] = [:]
    ) {
        self.windowSeconds = windowSeconds
        self.addressRequestsPerWindow = addressRequestsPerWindow
        self.maxTrackedAddresses = maxTrackedAddresses
        self.suspiciousScore = suspiciousScore
        self.weights = weights
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case windowSeconds = "window_seconds", addressRequestsPerWindow = "address_requests_per_window"
        case maxTrackedAddresses = "max_tracked_addresses", suspiciousScore = "suspicious_score", weights
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = UnknownCallerSettings()
        windowSeconds = try c.decodeIfPresent(Double.self, forKey: .windowSeconds) ?? d.windowSeconds
        addressRequestsPerWindow = try c.decodeIfPresent(Int.self, forKey: .addressRequestsPerWindow) ?? d.addressRequestsPerWindow
        maxTrackedAddresses = try c.decodeIfPresent(Int.self, forKey: .maxTrackedAddresses) ?? d.maxTrackedAddresses
        suspiciousScore = try c.decodeIfPresent(Double.self, forKey: .suspiciousScore) ?? d.suspiciousScore
        weights = try c.decodeIfPresent([String: Double].self, forKey: .weights) ?? [:]
    }

    func problems(at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        func check(_ key: String, _ problem: String?) { if let problem { problems.append(.init("\(path).\(key)", problem)) } }
        check("window_seconds", ConfigurationBounds.problem(windowSeconds, in: 1...ConfigurationBounds.maximumSeconds, unit: "seconds"))
        check("address_requests_per_window", ConfigurationBounds.problem(addressRequestsPerWindow, in: 1...ConfigurationBounds.maximumCount))
        check("max_tracked_addresses", ConfigurationBounds.problem(maxTrackedAddresses, in: 1...100_000_000))
        check("suspicious_score", ConfigurationBounds.problem(suspiciousScore, in: 0...1))
        for (name, weight) in weights.sorted(by: { $0.key < $1.key }) {
            check("weights.\(name)", ConfigurationBounds.problem(weight, in: 0...1))
        }
        return problems
    }
}

/// The AI edge (`edge`, docs/security.md): every request is classified (``CallerClass``) and meets
/// the policy of its class, per tenant.
public struct EdgeSettings: Codable, Sendable, Equatable {
    public var enabled: Bool
    public var agents: SignedAgentSettings
    public var crawlers: CrawlerSettings
    public var unknown: UnknownCallerSettings
    /// The policy of each class (and `suspicious`); classes not named are allowed, except
    /// `impersonator`, which is blocked unless named.
    public var policies: [String: EdgePolicy]
    /// Per tenant, policies that replace the defaults above for the classes they name.
    public var tenants: [String: [String: EdgePolicy]]
    /// When authentication is required, requests with no credential at all are not refused with 401
    /// but served as the anonymous principal of this tenant (which must exist), classified, and held
    /// to this tenant's edge policies and limits. A malformed or invalid credential is still a 401.
    public var publicTenant: String?

    public init(
        enabled: Bool = true, agents: SignedAgentSettings = .init(), crawlers: CrawlerSettings = .init(), unknown: UnknownCallerSettings = .init(),
        policies: [String: EdgePolicy] = [:], tenants: [String: [String: EdgePolicy]] = [:], publicTenant: String? = nil
    ) {
        self.enabled = enabled
        self.agents = agents
        self.crawlers = crawlers
        self.unknown = unknown
        self.policies = policies
        self.tenants = tenants
        self.publicTenant = publicTenant
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, agents, crawlers, unknown, policies, tenants, publicTenant = "public_tenant"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        agents = try c.decodeIfPresent(SignedAgentSettings.self, forKey: .agents) ?? .init()
        crawlers = try c.decodeIfPresent(CrawlerSettings.self, forKey: .crawlers) ?? .init()
        unknown = try c.decodeIfPresent(UnknownCallerSettings.self, forKey: .unknown) ?? .init()
        policies = try c.decodeIfPresent([String: EdgePolicy].self, forKey: .policies) ?? [:]
        tenants = try c.decodeIfPresent([String: [String: EdgePolicy]].self, forKey: .tenants) ?? [:]
        publicTenant = try c.decodeIfPresent(String.self, forKey: .publicTenant)
    }

    /// The policy for `key` in `tenant`: the tenant's, else the default table's, else the built-in
    /// default (block impersonators, allow the rest).
    public func policy(for key: EdgePolicyKey, tenant: String) -> EdgePolicy {
        if let policy = tenants[tenant]?[key.rawValue] { return policy }
        if let policy = policies[key.rawValue] { return policy }
        return key == .caller(.impersonator) ? .block : .allow
    }

    public func problems(at path: String) -> [ConfigurationProblem] {
        var problems = agents.problems(at: "\(path).agents") + crawlers.problems(at: "\(path).crawlers")
        problems += unknown.problems(at: "\(path).unknown")
        func checkTable(_ table: [String: EdgePolicy], at tablePath: String) {
            for (name, policy) in table.sorted(by: { $0.key < $1.key }) {
                if EdgePolicyKey(rawValue: name) == nil {
                    problems.append(
                        .init("\(tablePath).\(name)", "is no caller class (expected one of: \(EdgePolicyKey.allNames.joined(separator: ", ")))"))
                }
                problems += policy.problems(at: "\(tablePath).\(name)")
            }
        }
        if let publicTenant, !IdentityName.isValid(publicTenant) {
            problems.append(.init("\(path).public_tenant", IdentityName.rule(publicTenant)))
        }
        checkTable(policies, at: "\(path).policies")
        for (tenant, table) in tenants.sorted(by: { $0.key < $1.key }) {
            checkTable(table, at: "\(path).tenants.\(tenant)")
        }
        return problems
    }
}
