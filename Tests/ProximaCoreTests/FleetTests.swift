import Testing
@testable import ProximaCore

@Suite struct FleetTests {
    @Test func resolvesAliasesAndListsUndeclaredModels() throws {
        let fleet = try Fleet(configuration: ConfigurationValidationTests.valid())
        #expect(fleet.model(named: "tiny")?.name == "small")
        #expect(fleet.model(named: "large")?.name == "large")
        #expect(fleet.model(named: "nope") == nil)
        #expect(fleet.models.map(\.name) == ["small", "large"])
    }

    @Test func endpointsWithoutSiteLandInTheDefaultSite() throws {
        let fleet = try Fleet(configuration: ConfigurationValidationTests.valid())
        #expect(fleet.endpoints[1].siteName == Fleet.defaultSiteName)
        #expect(fleet.sites[Fleet.defaultSiteName] != nil)
        #expect(fleet.site(of: fleet.endpoints[0]).jurisdiction == "DE")
    }

    @Test func fallbacksRankAfterTheModelsOwnEndpointsWithTheirUpstreamName() throws {
        let fleet = try Fleet(configuration: ConfigurationValidationTests.valid())
        let telemetry = FleetTelemetry(endpointCount: fleet.endpoints.count)
        for kind in PolicyKind.allCases where kind != .centralized {
            let decision = FleetRouter().decide(
                RouteRequest(model: try #require(fleet.model(named: "small"))), policy: RoutingPolicy(name: kind.rawValue, kind: kind),
                fleet: fleet, telemetry: telemetry, now: 0, entropy: 1)
            #expect(decision.candidates.map(\.endpoint) == [0, 1], "\(kind)")
            #expect(decision.candidates[1].isFallback)
            #expect(decision.candidates[1].upstreamModel == "org/large-v2")
            #expect(decision.candidates[1].servedModel == "large")
        }
    }
}

