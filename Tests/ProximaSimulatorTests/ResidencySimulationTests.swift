import Testing
@testable import ProximaBench
@testable import ProximaCore
@testable import ProximaSimulator

/// Caller populations under residency rules: requests route only inside the rule, retries too, and
/// what nothing inside it can take is refused and counted, never placed elsewhere.
@Suite struct ResidencySimulationTests {
    static let london = Coordinates(latitude: 51.51, longitude: -0.13)
    static let newYork = Coordinates(latitude: 40.71, longitude: -74.01)
    static let euOnly = ResidencyRule(jurisdictions: JurisdictionGroups.builtIn.expand(["EU"]), named: ["EU"])

    /// London (GB, outside the EU), Frankfurt (DE) and New York: for London callers the nearest
    /// endpoint is outside the EU.
    static func fleet() throws -> Fleet {
        try Fleet(
            configuration: ProximaConfiguration(
                sites: [
                    SiteSettings(name: "london", latitude: 51.51, longitude: -0.13, jurisdiction: "GB"),
                    SiteSettings(name: "frankfurt", latitude: 50.11, longitude: 8.68, jurisdiction: "DE"),
                    SiteSettings(name: "new-york", latitude: 40.71, longitude: -74.01, jurisdiction: "US-NY"),
                ],
                endpoints: [("lon-1", "london"), ("fra-1", "frankfurt"), ("nyc-1", "new-york")].map { name, site in
                    EndpointSettings(
                        name: name, url: "http://127.0.0.1:1/v1", site: site, engine: .emulated, models: [.init(name: "m")],
                        gpu: .init(profile: "H100-8B"), pricing: .init(gpuHour: 3.5))
                }))
    }

    /// Population 0 calls from London, population 1 from New York, one request each every `spacing` seconds.
    static func requests(count: Int = 400, spacing: Double = 0.25) -> [SimulatedRequest] {
        (0..<count).map { index in
            let fromLondon = index.isMultiple(of: 2)
            return SimulatedRequest(
                arrival: Double(index) * spacing, location: fromLondon ? london : newYork, metro: fromLondon ? 0 : 1, promptTokens: 1_500,
                outputTokens: 40)
        }
    }

    static func run(_ requests: [SimulatedRequest], fleet: Fleet, residency: [ResidencyRule?], outages: [Outage] = []) -> FleetSimulation {
        var simulation = FleetSimulation(
            fleet: fleet, requests: requests,
            settings: SimulationSettings(policy: RoutingPolicy(name: "balanced", kind: .balanced), outages: outages, residency: residency))
        simulation.run()
        return simulation
    }

    @Test func anEUOnlyPopulationIsNeverPlacedOutsideTheEU() throws {
        let fleet = try Self.fleet()
        let requests = Self.requests()
        let eu = Set(fleet.endpoints.indices.filter { fleet.site(of: fleet.endpoints[$0]).jurisdiction == "DE" })
        // Without the rule London callers go to London (nearest), so the check below can fail.
        let free = Self.run(requests, fleet: fleet, residency: [])
        #expect(free.sends[0][0] > 0, "unconstrained London callers use the London endpoint")

        let ruled = Self.run(requests, fleet: fleet, residency: [Self.euOnly, nil])
        for endpoint in fleet.endpoints.indices where !eu.contains(endpoint) {
            #expect(ruled.sends[0][endpoint] == 0, "EU-only requests sent to \(fleet.endpoints[endpoint].name)")
        }
        #expect(ruled.sends[0].reduce(0, +) == requests.filter { $0.metro == 0 }.count)
        for (request, outcome) in zip(ruled.requests, ruled.outcomes) where request.metro == 0 {
            #expect(outcome.error == nil)
            #expect(outcome.endpoint.map { eu.contains($0) } == true)
        }
        // The unconstrained population still uses the rest of the fleet.
        #expect(ruled.sends[1].enumerated().contains { !eu.contains($0.offset) && $0.element > 0 })
    }

    @Test func theRuleMakesTTFTNoBetterThanUnconstrainedWhenTheNearestSiteIsOutside() throws {
        let fleet = try Self.fleet()
        let requests = Self.requests()
        let free = ScenarioResult(
            label: "free", simulation: Self.run(requests, fleet: fleet, residency: []), ttftTargetSeconds: 1) { $0.metro == 0 }
        let ruled = ScenarioResult(
            label: "EU", simulation: Self.run(requests, fleet: fleet, residency: [Self.euOnly]), ttftTargetSeconds: 1) { $0.metro == 0 }
        #expect(ruled.summary.errors == 0 && free.summary.errors == 0)
        #expect(ruled.meanRoundTripSeconds > free.meanRoundTripSeconds + 0.005, "\(ruled.meanRoundTripSeconds) vs \(free.meanRoundTripSeconds)")
        #expect(ruled.summary.timeToFirstToken.mean >= free.summary.timeToFirstToken.mean)
        #expect(ruled.summary.timeToFirstToken.p50 >= free.summary.timeToFirstToken.p50)
        #expect(ruled.summary.sloAttainment <= free.summary.sloAttainment)
    }

    @Test func withEveryEUEndpointDownTheRequestsAreRefusedAndCountedNotSentAbroad() throws {
        let fleet = try Self.fleet()
        let requests = Self.requests(count: 200, spacing: 0.5)
        let outage = try Outage(parsing: "frankfurt@0-", in: fleet)
        let simulation = Self.run(requests, fleet: fleet, residency: [Self.euOnly], outages: [outage])
        let london = ScenarioResult(label: "EU", simulation: simulation, ttftTargetSeconds: 1) { $0.metro == 0 }
        let others = ScenarioResult(label: "EU", simulation: simulation, ttftTargetSeconds: 1) { $0.metro == 1 }
        // Every EU-only request fails: at first refused by the dead endpoint, then (its breaker open)
        // refused by the router for residency. None is answered elsewhere.
        #expect(london.summary.errors == london.summary.requests)
        #expect(london.summary.sloAttainment == 0)
        #expect(london.residencyRefused > london.summary.requests / 2, "\(london.residencyRefused) of \(london.summary.requests)")
        let errors = Set(zip(simulation.requests, simulation.outcomes).filter { $0.0.metro == 0 }.compactMap(\.1.error))
        #expect(errors.isSubset(of: ["residency", "refused"]), "\(errors)")
        #expect(simulation.sends[0][0] == 0 && simulation.sends[0][2] == 0)
        #expect(others.summary.errors == 0 && others.residencyRefused == 0)
        // Without the rule the same callers are served from London.
        let free = ScenarioResult(
            label: "free", simulation: Self.run(requests, fleet: fleet, residency: [], outages: [outage]), ttftTargetSeconds: 1) { $0.metro == 0 }
        #expect(free.summary.errors < london.summary.errors / 4)
    }

    @Test func populationRulesAreReadAndAttachedToMetrosByNameOrRegion() throws {
        let rule = try PopulationResidency(parsing: "europe=EU")
        #expect(rule.populations == "europe" && rule.rule.allowsJurisdiction("DE") && !rule.rule.allowsJurisdiction("GB"))
        let metros = try PopulationResidency.apply([rule, try PopulationResidency(parsing: "london=GB,DE")], to: Metro.world)
        let byName = Dictionary(uniqueKeysWithValues: metros.map { ($0.name, $0) })
        #expect(byName["frankfurt"]?.residency?.allowsJurisdiction("DE") == true)
        // London is under both rules: their intersection, Germany only.
        #expect(byName["london"]?.residency?.jurisdictions == ["DE"])
        #expect(byName["tokyo"]?.residency == nil)
        #expect(throws: PopulationResidencyError.self) { try PopulationResidency.apply([try PopulationResidency(parsing: "atlantis=EU")], to: Metro.world) }
        #expect(throws: PopulationResidencyError.self) { try PopulationResidency(parsing: "europe") }
        #expect(throws: PopulationResidencyError.self) { try PopulationResidency(parsing: "europe=E U") }
        // A configured group expands.
        let dach = try PopulationResidency(parsing: "all=DACH", groups: JurisdictionGroups(groups: ["DACH": ["DE", "AT", "CH"]]))
        #expect(dach.rule.allowsJurisdiction("CH") && !dach.rule.allowsJurisdiction("FR"))
    }
}
