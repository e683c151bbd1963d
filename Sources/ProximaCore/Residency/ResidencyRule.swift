/// A residency rule in effect for one request: the intersection of every rule that applies to it
/// (tenant, key, model). `nil` parts are unconstrained.
public struct ResidencyRule: Sendable, Hashable {
    /// Allowed jurisdiction codes, groups already expanded (upper-case). A code without a subdivision
    /// (`US`) also allows its subdivisions (`US-CA`).
    public var jurisdictions: Set<String>?
    /// Allowed providers of hosted sites; sites without a provider always pass.
    public var providers: Set<String>?
    /// The rules' names as configured, for explanations (`EU`, `DE`).
    public var named: [String]

    public init(jurisdictions: Set<String>? = nil, providers: Set<String>? = nil, named: [String] = []) {
        self.jurisdictions = jurisdictions
        self.providers = providers
        self.named = named
    }

    /// A configured rule with its groups expanded.
    public init(_ settings: ResidencyRuleSettings, groups: JurisdictionGroups) {
        self.init(
            jurisdictions: settings.jurisdictions.map { groups.expand($0) },
            providers: settings.providers.map { Set($0) },
            named: settings.jurisdictions?.map { $0.uppercased() } ?? [])
    }

    /// Both rules at once: what each allows, intersected.
    public func intersecting(_ other: ResidencyRule) -> ResidencyRule {
        func meet(_ a: Set<String>?, _ b: Set<String>?) -> Set<String>? {
            guard let a else { return b }
            guard let b else { return a }
            // `US` in one rule and `US-CA` in the other meet at `US-CA`.
            var result = a.intersection(b)
            for code in a where code.contains("-") && b.contains(Self.country(of: code)) { result.insert(code) }
            for code in b where code.contains("-") && a.contains(Self.country(of: code)) { result.insert(code) }
            return result
        }
        var named = self.named
        for name in other.named where !named.contains(name) { named.append(name) }
        return ResidencyRule(
            jurisdictions: meet(jurisdictions, other.jurisdictions), providers: meet(providers, other.providers), named: named)
    }

    static func country(of code: String) -> String {
        guard let dash = code.firstIndex(of: "-") else { return code }
        return String(code[..<dash])
    }

    /// Whether a site in `jurisdiction` (upper-case or not) satisfies the jurisdiction part.
    public func allowsJurisdiction(_ jurisdiction: String?) -> Bool {
        guard let jurisdictions else { return true }
        guard let jurisdiction else { return false }
        let code = jurisdiction.uppercased()
        return jurisdictions.contains(code) || (code.contains("-") && jurisdictions.contains(Self.country(of: code)))
    }

    /// Why a site may not serve under this rule, or nil when it may.
    public func exclusionReason(site: Site) -> String? {
        if !allowsJurisdiction(site.jurisdiction) {
            let rule = named.isEmpty ? (jurisdictions ?? []).sorted().joined(separator: ", ") : named.joined(separator: " and ")
            guard let jurisdiction = site.jurisdiction else { return "site '\(site.name)' declares no jurisdiction; residency allows \(rule)" }
            return "site '\(site.name)' is in \(jurisdiction); residency allows \(rule)"
        }
        if let providers, let provider = site.provider, !providers.contains(provider) {
            return "site '\(site.name)' is hosted by \(provider); residency allows providers \(providers.sorted().joined(separator: ", "))"
        }
        return nil
    }

    /// A stable text naming exactly what the rule allows, for cache partitions and records.
    public var canonicalKey: String {
        let j = jurisdictions.map { $0.sorted().joined(separator: ",") } ?? "*"
        let p = providers.map { $0.sorted().joined(separator: ",") } ?? "*"
        return "j=\(j);p=\(p)"
    }
}

/// The router's view of a residency rule.
public struct ResidencyConstraint: RouteConstraint {
    public var rule: ResidencyRule
    public var exclusionKind: ExclusionKind { .residency }

    public init(rule: ResidencyRule) {
        self.rule = rule
    }

    public func exclusionReason(endpoint: Endpoint, site: Site) -> String? {
        rule.exclusionReason(site: site)
    }
}

/// Every configured residency rule, resolved once per configuration: the rule for a request is the
/// intersection of its tenant's, its key's and its model's.
public struct ResidencyRules: Sendable {
    public var groups: JurisdictionGroups
    public var tenants: [String: ResidencyRule]
    public var keys: [String: ResidencyRule]
    public var models: [String: ResidencyRule]

    public init(_ settings: ResidencySettings) {
        let groups = settings.resolvedGroups
        self.groups = groups
        tenants = settings.tenants.mapValues { ResidencyRule($0, groups: groups) }
        keys = settings.keys.mapValues { ResidencyRule($0, groups: groups) }
        models = settings.models.mapValues { ResidencyRule($0, groups: groups) }
    }

    public var isEmpty: Bool { tenants.isEmpty && keys.isEmpty && models.isEmpty }

    /// The rule for a request, or nil when none applies.
    public func rule(tenant: String?, key: String?, model: String?) -> ResidencyRule? {
        if isEmpty { return nil }
        var result: ResidencyRule?
        for candidate in [tenant.flatMap { tenants[$0] }, key.flatMap { keys[$0] }, model.flatMap { models[$0] }] {
            guard let candidate else { continue }
            result = result.map { $0.intersecting(candidate) } ?? candidate
        }
        return result
    }
}
