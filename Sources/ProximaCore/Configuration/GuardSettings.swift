/// The content guards (`guards`, docs/security.md): prompt-injection and jailbreak detection over
/// every message of a request, and secrets and personal data in prompts and answers (streams too).
/// Each finding is a verdict with its OWASP LLM and MITRE ATLAS ids; the action per tenant decides
/// what happens to the request.
public struct GuardSettings: Codable, Sendable, Equatable {
    /// What the injection guard does with a request whose score reaches the threshold.
    public enum InjectionAction: String, Codable, Sendable, CaseIterable {
        /// Record the verdict (log, metrics, `x-proxima-guard`), serve the request as it is.
        case log
        /// Replace the offending spans with `[removed: prompt injection]` and serve the rest.
        case redact
        /// Refuse with 400 naming the category, never echoing the payload.
        case refuse
    }

    /// What the secrets and personal-data guard does with a finding.
    public enum SensitiveAction: String, Codable, Sendable, CaseIterable {
        case log
        /// Replace each finding with `[<entity>]` (`[email]`, `[aws_access_key]`, ...).
        case mask
        /// Refuse (input: 400; output: the answer is replaced by an error, or a stream ends with one).
        case refuse
    }

    public struct Injection: Codable, Sendable, Equatable {
        public var enabled: Bool
        public var action: InjectionAction
        /// Score (0...1) at or above which a request is an injection.
        public var threshold: Double

        public init(enabled: Bool = true, action: InjectionAction = .log, threshold: Double = Injection.defaultThreshold) {
            self.enabled = enabled
            self.action = action
            self.threshold = threshold
        }

        /// Chosen from the evaluation in docs/security.md.
        public static let defaultThreshold = 0.5

        enum CodingKeys: String, CodingKey, CaseIterable { case enabled, action, threshold }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Injection()
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
            action = try c.decodeIfPresent(InjectionAction.self, forKey: .action) ?? d.action
            threshold = try c.decodeIfPresent(Double.self, forKey: .threshold) ?? d.threshold
        }
    }

    public struct Sensitive: Codable, Sendable, Equatable {
        public var enabled: Bool
        public var action: SensitiveAction
        /// Entity types to look for (docs/security.md lists them); empty: all of them.
        public var entities: [String]

        public init(enabled: Bool = true, action: SensitiveAction = .log, entities: [String] = []) {
            self.enabled = enabled
            self.action = action
            self.entities = entities
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case enabled, action, entities }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Sensitive()
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
            action = try c.decodeIfPresent(SensitiveAction.self, forKey: .action) ?? d.action
            entities = try c.decodeIfPresent([String].self, forKey: .entities) ?? []
        }
    }

    /// An operator's own pattern: a name (the entity type it reports) and a regular expression.
    public struct Pattern: Codable, Sendable, Equatable {
        public var name: String
        public var regex: String

        public init(name: String, regex: String) {
            self.name = name
            self.regex = regex
        }
    }

    /// A tenant's own actions; unset parts keep the defaults.
    public struct Override: Codable, Sendable, Equatable {
        public var injection: Injection?
        public var input: Sensitive?
        public var output: Sensitive?

        public init(injection: Injection? = nil, input: Sensitive? = nil, output: Sensitive? = nil) {
            self.injection = injection
            self.input = input
            self.output = output
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case injection, input, output }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            injection = try c.decodeIfPresent(Injection.self, forKey: .injection)
            input = try c.decodeIfPresent(Sensitive.self, forKey: .input)
            output = try c.decodeIfPresent(Sensitive.self, forKey: .output)
        }
    }

    public var enabled: Bool
    public var injection: Injection
    /// Secrets and personal data in prompts.
    public var input: Sensitive
    /// Secrets and personal data in answers, whole or streamed.
    public var output: Sensitive
    /// The guards read at most this many bytes of a request's text; the rest is not scanned and the
    /// verdict says so (`scan_truncated`).
    public var maxScanBytes: Int
    /// Bytes of a streamed answer held back so that a secret split across events is still caught.
    public var streamWindowBytes: Int
    public var patterns: [Pattern]
    public var tenants: [String: Override]

    public init(
        enabled: Bool = true, injection: Injection = .init(), input: Sensitive = .init(), output: Sensitive = .init(),
        maxScanBytes: Int = 256 * 1024, streamWindowBytes: Int = 128, patterns: [Pattern] = [], tenants: [String: Override] = [:]
    ) {
        self.enabled = enabled
        self.injection = injection
        self.input = input
        self.output = output
        self.maxScanBytes = maxScanBytes
        self.streamWindowBytes = streamWindowBytes
        self.patterns = patterns
        self.tenants = tenants
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, injection, input, output, maxScanBytes = "max_scan_bytes", streamWindowBytes = "stream_window_bytes", patterns, tenants
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = GuardSettings()
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
        injection = try c.decodeIfPresent(Injection.self, forKey: .injection) ?? d.injection
        input = try c.decodeIfPresent(Sensitive.self, forKey: .input) ?? d.input
        output = try c.decodeIfPresent(Sensitive.self, forKey: .output) ?? d.output
        maxScanBytes = try c.decodeIfPresent(Int.self, forKey: .maxScanBytes) ?? d.maxScanBytes
        streamWindowBytes = try c.decodeIfPresent(Int.self, forKey: .streamWindowBytes) ?? d.streamWindowBytes
        patterns = try c.decodeIfPresent([Pattern].self, forKey: .patterns) ?? []
        tenants = try c.decodeIfPresent([String: Override].self, forKey: .tenants) ?? [:]
    }

    /// The settings that apply to `tenant`.
    public func resolved(tenant: String) -> (injection: Injection, input: Sensitive, output: Sensitive) {
        let override = tenants[tenant]
        return (override?.injection ?? injection, override?.input ?? input, override?.output ?? output)
    }

    public func problems(at path: String, entityNames: Set<String>) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        func check(_ key: String, _ problem: String?) { if let problem { problems.append(.init("\(path).\(key)", problem)) } }
        check("max_scan_bytes", ConfigurationBounds.problem(maxScanBytes, in: 1_024...ConfigurationBounds.maximumBodyBytes))
        check("stream_window_bytes", ConfigurationBounds.problem(streamWindowBytes, in: 16...65_536))
        let known = entityNames.union(patterns.map(\.name))
        func checkParts(_ injection: Injection?, _ input: Sensitive?, _ output: Sensitive?, at prefix: String) {
            if let injection { check("\(prefix)injection.threshold", ConfigurationBounds.problem(injection.threshold, in: 0...1)) }
            if output?.action == .refuse {
                check("\(prefix)output.action", "must be log or mask: an answer already under way cannot be refused")
            }
            for (part, sensitive) in [("input", input), ("output", output)] {
                for (index, entity) in (sensitive?.entities ?? []).enumerated() where !known.contains(entity) {
                    check("\(prefix)\(part).entities[\(index)]", "unknown entity type '\(entity.prefix(64))'")
                }
            }
        }
        checkParts(injection, input, output, at: "")
        for (tenant, override) in tenants.sorted(by: { $0.key < $1.key }) {
            checkParts(override.injection, override.input, override.output, at: "tenants.\(tenant).")
        }
        var names = Set<String>()
        for (index, pattern) in patterns.enumerated() {
            if !IdentityName.isValid(pattern.name) { check("patterns[\(index)].name", IdentityName.rule(pattern.name)) }
            if entityNames.contains(pattern.name) || !names.insert(pattern.name).inserted {
                check("patterns[\(index)].name", "'\(pattern.name)' is already an entity type")
            }
            if pattern.regex.isEmpty || pattern.regex.utf8.count > 1_024 { check("patterns[\(index)].regex", "must be 1 to 1024 bytes long") }
        }
        return problems
    }
}
