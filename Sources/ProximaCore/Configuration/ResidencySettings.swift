/// Where each tenant's data may be processed (docs/governance.md). Rules are hard routing
/// constraints: an endpoint outside them is excluded with the reason `residency`, and a request no
/// allowed endpoint can serve is refused with 503, never moved abroad.
///
/// ```yaml
/// residency:
///   groups: { DACH: [DE, AT, CH] }          # EU and EEA are built in
///   tenants: { acme: { jurisdictions: [EU] } }
///   keys: { acme-batch: { jurisdictions: [DE], providers: [] } }
///   models: { llama-eu: { jurisdictions: [EU] } }
/// ```
public struct ResidencySettings: Codable, Sendable, Equatable {
    /// Named groups of jurisdiction codes, added to (and overriding) the built-in ones.
    public var groups: [String: [String]]
    /// Rules by tenant id.
    public var tenants: [String: ResidencyRuleSettings]
    /// Rules by key id (narrow the tenant's).
    public var keys: [String: ResidencyRuleSettings]
    /// Rules by logical model name (a route: data sent to this model stays inside the rule).
    public var models: [String: ResidencyRuleSettings]

    public init(
        groups: [String: [String]] = [:], tenants: [String: ResidencyRuleSettings] = [:],
        keys: [String: ResidencyRuleSettings] = [:], models: [String: ResidencyRuleSettings] = [:]
    ) {
        self.groups = groups
        self.tenants = tenants
        self.keys = keys
        self.models = models
    }

    public var isEmpty: Bool { tenants.isEmpty && keys.isEmpty && models.isEmpty }

    enum CodingKeys: String, CodingKey, CaseIterable { case groups, tenants, keys, models }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        groups = try c.decodeIfPresent([String: [String]].self, forKey: .groups) ?? [:]
        tenants = try c.decodeIfPresent([String: ResidencyRuleSettings].self, forKey: .tenants) ?? [:]
        keys = try c.decodeIfPresent([String: ResidencyRuleSettings].self, forKey: .keys) ?? [:]
        models = try c.decodeIfPresent([String: ResidencyRuleSettings].self, forKey: .models) ?? [:]
    }

    /// The groups in effect: the built-in ones, then the configured ones (which win).
    public var resolvedGroups: JurisdictionGroups {
        var all = JurisdictionGroups.builtIn.groups
        for (name, members) in groups { all[name.uppercased()] = Set(members.map { $0.uppercased() }) }
        return JurisdictionGroups(groups: all)
    }

    public func problems(at keyPath: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        for (name, members) in groups.sorted(by: { $0.key < $1.key }) {
            if !JurisdictionCode.isValid(name) {
                problems.append(.init("\(keyPath).groups.\(name)", "is not a valid group name (letters, digits and '-', up to 16)"))
            }
            if members.isEmpty { problems.append(.init("\(keyPath).groups.\(name)", "must list at least one jurisdiction")) }
            for member in members where !JurisdictionCode.isValid(member) {
                problems.append(.init("\(keyPath).groups.\(name)", "'\(member)' is not a jurisdiction code such as DE or US-CA"))
            }
        }
        for (section, rules) in [("tenants", tenants), ("keys", keys), ("models", models)] {
            for (name, rule) in rules.sorted(by: { $0.key < $1.key }) {
                problems += rule.problems(at: "\(keyPath).\(section).\(name)")
            }
        }
        return problems
    }
}

/// One residency rule as configured: allowed jurisdictions (codes or group names) and, optionally,
/// the hosted providers that may see the data.
public struct ResidencyRuleSettings: Codable, Sendable, Equatable {
    /// Codes (`DE`, `US-CA`) or group names (`EU`); `nil` leaves jurisdictions unconstrained.
    public var jurisdictions: [String]?
    /// Providers of hosted upstreams allowed (the site's `provider`); `nil` allows any. Sites with no
    /// provider are the operator's own and always pass this part of the rule.
    public var providers: [String]?

    public init(jurisdictions: [String]? = nil, providers: [String]? = nil) {
        self.jurisdictions = jurisdictions
        self.providers = providers
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case jurisdictions, providers }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        jurisdictions = try c.decodeIfPresent([String].self, forKey: .jurisdictions)
        providers = try c.decodeIfPresent([String].self, forKey: .providers)
    }

    public func problems(at keyPath: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        if jurisdictions == nil && providers == nil {
            problems.append(.init(keyPath, "must name jurisdictions, providers or both"))
        }
        if let jurisdictions {
            if jurisdictions.isEmpty { problems.append(.init("\(keyPath).jurisdictions", "must list at least one jurisdiction (an empty list would allow nowhere)")) }
            for code in jurisdictions where !JurisdictionCode.isValid(code) {
                problems.append(.init("\(keyPath).jurisdictions", "'\(code)' is not a jurisdiction code or group name"))
            }
        }
        return problems
    }
}

/// Jurisdiction codes: ISO 3166-1 alpha-2 (`DE`), optionally with a subdivision (`US-CA`), or a
/// group name (`EU`). Compared case-insensitively (stored upper-case).
public enum JurisdictionCode {
    public static func isValid(_ code: String) -> Bool {
        let bytes = Array(code.utf8)
        guard (1...16).contains(bytes.count), bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { byte in
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
        }
    }
}

/// Named groups of jurisdictions.
public struct JurisdictionGroups: Sendable, Equatable {
    public var groups: [String: Set<String>]

    public init(groups: [String: Set<String>]) {
        self.groups = groups
    }

    /// The 27 member states of the European Union (2026), and the EEA (the EU plus Iceland,
    /// Liechtenstein and Norway).
    public static let europeanUnion: Set<String> = [
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL",
        "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    ]
    public static let builtIn = JurisdictionGroups(groups: ["EU": europeanUnion, "EEA": europeanUnion.union(["IS", "LI", "NO"])])

    /// The codes a list of codes and group names stands for: each group expanded, each code kept
    /// (group names are kept too, so that a site declaring `EU` itself qualifies under `EU`).
    public func expand(_ names: [String]) -> Set<String> {
        var codes: Set<String> = []
        for name in names {
            let upper = name.uppercased()
            codes.insert(upper)
            if let members = groups[upper] { codes.formUnion(members) }
        }
        return codes
    }
}
