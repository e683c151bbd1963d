/// The response cache (docs/cache.md): an exact tier keyed by the canonical request, and a semantic
/// tier that serves an answer to a prompt that means the same, inside a hard partition (tenant, model,
/// system prompt and earlier turns, tools, sampling parameters), after the false-hit guards agree.
/// Off unless `enabled`; tenants and models can opt out (or in, when `default_enabled` is false).
public struct CacheSettings: Codable, Sendable, Equatable {
    /// What a caller's usage says (and its budget is charged) for an answer served from the cache.
    public enum Billing: String, Codable, Sendable, CaseIterable {
        /// Nothing: no tokens were generated for this request.
        case zero
        /// What the original answer cost: the usage it reported.
        case original
    }

    /// Overrides for one tenant or one logical model; unset fields keep the cache-wide value. A
    /// model's setting wins over the tenant's for `threshold`; either can switch caching off.
    public struct Override: Codable, Sendable, Equatable {
        public var enabled: Bool?
        public var threshold: Double?

        public init(enabled: Bool? = nil, threshold: Double? = nil) {
            self.enabled = enabled
            self.threshold = threshold
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case enabled, threshold }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled)
            threshold = try c.decodeIfPresent(Double.self, forKey: .threshold)
        }
    }

    /// The semantic tier: embeddings from a model of the fleet, nearest neighbour in the partition.
    public struct Semantic: Codable, Sendable, Equatable {
        public var enabled: Bool
        /// The logical model (of this configuration's `models`) that embeds prompts, through its
        /// OpenAI-compatible `/v1/embeddings`. Required when the semantic tier is on.
        public var model: String?
        /// Cosine similarity at or above which a cached prompt may answer (then the guards decide).
        public var threshold: Double
        /// How long the embedding call may take; past it the request goes on uncached.
        public var deadlineSeconds: Double
        /// Prompts (the last user turn) longer than this are not embedded.
        public var maxPromptBytes: Int
        /// Nearest entries the guards may look at, best first, before the lookup is a miss.
        public var candidates: Int
        /// Sent as `input_type` with each embeddings request when set: models trained with query and
        /// passage prefixes (the e5 family) separate prompts better as `query` (docs/cache.md). Unset
        /// for APIs that refuse unknown fields.
        public var inputType: String?

        public init(
            enabled: Bool = true, model: String? = nil, threshold: Double = Semantic.defaultThreshold, deadlineSeconds: Double = 0.25,
            maxPromptBytes: Int = 8_192, candidates: Int = 4, inputType: String? = nil
        ) {
            self.enabled = enabled
            self.model = model
            self.threshold = threshold
            self.deadlineSeconds = deadlineSeconds
            self.maxPromptBytes = maxPromptBytes
            self.candidates = candidates
            self.inputType = inputType
        }

        /// Chosen from the labelled-pair evaluation in docs/cache.md.
        public static let defaultThreshold = 0.96

        enum CodingKeys: String, CodingKey, CaseIterable {
            case enabled, model, threshold, deadlineSeconds = "deadline_seconds", maxPromptBytes = "max_prompt_bytes", candidates
            case inputType = "input_type"
        }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Semantic()
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
            model = try c.decodeIfPresent(String.self, forKey: .model)
            threshold = try c.decodeIfPresent(Double.self, forKey: .threshold) ?? d.threshold
            deadlineSeconds = try c.decodeIfPresent(Double.self, forKey: .deadlineSeconds) ?? d.deadlineSeconds
            maxPromptBytes = try c.decodeIfPresent(Int.self, forKey: .maxPromptBytes) ?? d.maxPromptBytes
            candidates = try c.decodeIfPresent(Int.self, forKey: .candidates) ?? d.candidates
            inputType = try c.decodeIfPresent(String.self, forKey: .inputType)
        }
    }

    public var enabled: Bool
    /// Whether tenants and models without an override are cached (false: only those that opt in).
    public var defaultEnabled: Bool
    public var exact: Bool
    public var semantic: Semantic
    /// Entries kept at most, both tiers together.
    public var maxEntries: Int
    /// Bytes kept at most (answers, vectors and bookkeeping), both tiers together.
    public var maxBytes: Int
    /// How long an entry may answer after it was stored.
    public var ttlSeconds: Double
    /// Answers larger than this are not stored.
    public var maxAnswerBytes: Int
    /// Requests that set a `temperature` above this are neither read from nor written to the cache.
    public var temperatureCeiling: Double
    public var billing: Billing
    /// How long a request waits for an identical one already in flight before it goes upstream itself.
    public var coalesceTimeoutSeconds: Double
    public var tenants: [String: Override]
    public var models: [String: Override]

    public init(
        enabled: Bool = false, defaultEnabled: Bool = true, exact: Bool = true, semantic: Semantic = .init(), maxEntries: Int = 100_000,
        maxBytes: Int = 256 << 20, ttlSeconds: Double = 3_600, maxAnswerBytes: Int = 1 << 20, temperatureCeiling: Double = 1,
        billing: Billing = .zero, coalesceTimeoutSeconds: Double = 60, tenants: [String: Override] = [:], models: [String: Override] = [:]
    ) {
        self.enabled = enabled
        self.defaultEnabled = defaultEnabled
        self.exact = exact
        self.semantic = semantic
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
        self.ttlSeconds = ttlSeconds
        self.maxAnswerBytes = maxAnswerBytes
        self.temperatureCeiling = temperatureCeiling
        self.billing = billing
        self.coalesceTimeoutSeconds = coalesceTimeoutSeconds
        self.tenants = tenants
        self.models = models
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, defaultEnabled = "default_enabled", exact, semantic, maxEntries = "max_entries", maxBytes = "max_bytes"
        case ttlSeconds = "ttl_seconds", maxAnswerBytes = "max_answer_bytes", temperatureCeiling = "temperature_ceiling", billing
        case coalesceTimeoutSeconds = "coalesce_timeout_seconds", tenants, models
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CacheSettings()
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
        defaultEnabled = try c.decodeIfPresent(Bool.self, forKey: .defaultEnabled) ?? d.defaultEnabled
        exact = try c.decodeIfPresent(Bool.self, forKey: .exact) ?? d.exact
        semantic = try c.decodeIfPresent(Semantic.self, forKey: .semantic) ?? d.semantic
        maxEntries = try c.decodeIfPresent(Int.self, forKey: .maxEntries) ?? d.maxEntries
        maxBytes = try c.decodeIfPresent(Int.self, forKey: .maxBytes) ?? d.maxBytes
        ttlSeconds = try c.decodeIfPresent(Double.self, forKey: .ttlSeconds) ?? d.ttlSeconds
        maxAnswerBytes = try c.decodeIfPresent(Int.self, forKey: .maxAnswerBytes) ?? d.maxAnswerBytes
        temperatureCeiling = try c.decodeIfPresent(Double.self, forKey: .temperatureCeiling) ?? d.temperatureCeiling
        billing = try c.decodeIfPresent(Billing.self, forKey: .billing) ?? d.billing
        coalesceTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .coalesceTimeoutSeconds) ?? d.coalesceTimeoutSeconds
        tenants = try c.decodeIfPresent([String: Override].self, forKey: .tenants) ?? [:]
        models = try c.decodeIfPresent([String: Override].self, forKey: .models) ?? [:]
    }

    public static let thresholdRange = 0.0...1.0
    public static let maxEntriesRange = 1...100_000_000
    public static let maxBytesRange = 1_024...(1 << 40)
    public static let ttlRange = 1.0...(86_400.0 * 365)
    public static let deadlineRange = 0.001...60.0
    public static let promptBytesRange = 1...(1 << 20)
    public static let candidatesRange = 1...64
    public static let coalesceRange = 0.0...3_600.0
    public static let temperatureRange = 0.0...2.0

    /// Whether caching applies to `tenant` asking for `model` (the logical model's name).
    public func applies(tenant: String, model: String) -> Bool {
        guard enabled else { return false }
        if models[model]?.enabled == false || tenants[tenant]?.enabled == false { return false }
        return models[model]?.enabled ?? tenants[tenant]?.enabled ?? defaultEnabled
    }

    /// The similarity threshold for `tenant` asking for `model`: the model's, else the tenant's,
    /// else the semantic tier's.
    public func threshold(tenant: String, model: String) -> Double {
        models[model]?.threshold ?? tenants[tenant]?.threshold ?? semantic.threshold
    }

    /// Every value out of range, named by its key under `keyPath` (`cache`). `models` are the logical
    /// models the configuration defines (in `models` or served by an endpoint), `names` those and aliases.
    public func problems(at keyPath: String, models knownModels: Set<String>, names: Set<String>) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        func check(_ key: String, _ problem: String?) { if let problem { problems.append(.init("\(keyPath).\(key)", problem)) } }
        check("max_entries", ConfigurationBounds.problem(maxEntries, in: Self.maxEntriesRange))
        check("max_bytes", ConfigurationBounds.problem(maxBytes, in: Self.maxBytesRange))
        check("max_answer_bytes", ConfigurationBounds.problem(maxAnswerBytes, in: Self.maxBytesRange))
        check("ttl_seconds", ConfigurationBounds.problem(ttlSeconds, in: Self.ttlRange, unit: "seconds"))
        check("temperature_ceiling", ConfigurationBounds.problem(temperatureCeiling, in: Self.temperatureRange))
        check("coalesce_timeout_seconds", ConfigurationBounds.problem(coalesceTimeoutSeconds, in: Self.coalesceRange, unit: "seconds"))
        check("semantic.threshold", ConfigurationBounds.problem(semantic.threshold, in: Self.thresholdRange))
        check("semantic.deadline_seconds", ConfigurationBounds.problem(semantic.deadlineSeconds, in: Self.deadlineRange, unit: "seconds"))
        check("semantic.max_prompt_bytes", ConfigurationBounds.problem(semantic.maxPromptBytes, in: Self.promptBytesRange))
        check("semantic.candidates", ConfigurationBounds.problem(semantic.candidates, in: Self.candidatesRange))
        if let inputType = semantic.inputType, inputType.isEmpty || inputType.utf8.count > 64 {
            check("semantic.input_type", "must be 1 to 64 bytes long")
        }
        if enabled, semantic.enabled {
            if let model = semantic.model {
                if !names.contains(model) { check("semantic.model", "names no model of this configuration: '\(model)'") }
            } else {
                check("semantic.model", "is required when the semantic tier is on (the embeddings model), or set semantic.enabled: false")
            }
        }
        for (name, override) in tenants.sorted(by: { $0.key < $1.key }) {
            if let threshold = override.threshold {
                check("tenants.\(name).threshold", ConfigurationBounds.problem(threshold, in: Self.thresholdRange))
            }
        }
        for (name, override) in models.sorted(by: { $0.key < $1.key }) {
            if !knownModels.contains(name) { check("models.\(name)", "names no logical model of this configuration") }
            if let threshold = override.threshold {
                check("models.\(name).threshold", ConfigurationBounds.problem(threshold, in: Self.thresholdRange))
            }
        }
        return problems
    }
}
