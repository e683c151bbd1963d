import ProximaCore
import Testing

@Suite struct ResidencyRuleTests {
    static func site(_ name: String, _ jurisdiction: String?, provider: String? = nil) -> Site {
        Site(name: name, location: Coordinates(latitude: 0, longitude: 0), jurisdiction: jurisdiction, provider: provider)
    }

    @Test func groupsExpandToTheirMembersAndKeepTheirOwnName() {
        let rules = ResidencyRules(ResidencySettings(tenants: ["acme": .init(jurisdictions: ["EU"])]))
        let rule = rules.rule(tenant: "acme", key: nil, model: nil)!
        #expect(rule.allowsJurisdiction("DE"))
        #expect(rule.allowsJurisdiction("fr"))
        #expect(rule.allowsJurisdiction("EU"))
        #expect(!rule.allowsJurisdiction("US"))
        #expect(!rule.allowsJurisdiction("GB"))
        #expect(!rule.allowsJurisdiction("NO"))
        #expect(!rule.allowsJurisdiction(nil))
        #expect(rule.exclusionReason(site: Self.site("iad", "US")) == "site 'iad' is in US; residency allows EU")
        #expect(rule.exclusionReason(site: Self.site("lab", nil)) == "site 'lab' declares no jurisdiction; residency allows EU")
        #expect(rules.rule(tenant: "other", key: nil, model: nil) == nil)
    }

    @Test func aCountryAllowsItsSubdivisionsButNotTheOtherWayRound() {
        let country = ResidencyRule(ResidencyRuleSettings(jurisdictions: ["US"]), groups: .builtIn)
        #expect(country.allowsJurisdiction("US-CA"))
        let state = ResidencyRule(ResidencyRuleSettings(jurisdictions: ["US-CA"]), groups: .builtIn)
        #expect(!state.allowsJurisdiction("US"))
        #expect(!state.allowsJurisdiction("US-NY"))
        // Both at once: the narrower.
        let both = country.intersecting(state)
        #expect(both.allowsJurisdiction("US-CA"))
        #expect(!both.allowsJurisdiction("US-NY"))
    }

    @Test func tenantKeyAndModelRulesAllHold() {
        let settings = ResidencySettings(
            groups: ["dach": ["DE", "AT", "CH"]],
            tenants: ["acme": .init(jurisdictions: ["EU"])],
            keys: ["acme-batch": .init(jurisdictions: ["DACH"])],
            models: ["llama": .init(providers: ["ownhost"])])
        let rules = ResidencyRules(settings)
        let rule = rules.rule(tenant: "acme", key: "acme-batch", model: "llama")!
        #expect(rule.allowsJurisdiction("DE"))
        #expect(rule.allowsJurisdiction("AT"))
        #expect(!rule.allowsJurisdiction("CH"))  // DACH but not EU
        #expect(!rule.allowsJurisdiction("FR"))  // EU but not DACH
        #expect(rule.exclusionReason(site: Self.site("fra", "DE", provider: "bigcloud")) != nil)
        #expect(rule.exclusionReason(site: Self.site("fra", "DE", provider: "ownhost")) == nil)
        #expect(rule.exclusionReason(site: Self.site("fra", "DE")) == nil)  // the operator's own site
        // A different key under the same tenant has a different rule, hence a different cache partition.
        #expect(rules.rule(tenant: "acme", key: "other", model: nil)!.canonicalKey != rule.canonicalKey)
    }

    @Test func invalidRulesAreRefusedByKey() {
        var configuration = ProximaConfiguration()
        configuration.residency = ResidencySettings(
            groups: ["bad group": ["DE"], "EMPTY": []],
            tenants: ["acme": .init(jurisdictions: []), "beta": .init(), "gamma": .init(jurisdictions: ["D E"])],
            models: ["nope": .init(jurisdictions: ["DE"])])
        let keys = Set(configuration.problems().map(\.keyPath))
        #expect(keys.isSuperset(of: [
            "residency.groups.bad group", "residency.groups.EMPTY", "residency.tenants.acme.jurisdictions", "residency.tenants.beta",
            "residency.tenants.gamma.jurisdictions", "residency.models.nope",
        ]))
    }
}
