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

    @Test func servingCandidatesPutFallbacksAfterTheModelsOwnEndpoints() throws {
        let fleet = try Fleet(configuration: ConfigurationValidationTests.valid())
        let candidates = fleet.servingCandidates(for: try #require(fleet.model(named: "small")))
        #expect(candidates.map(\.endpoint) == [0, 1])
        #expect(candidates[1].isFallback)
        #expect(candidates[1].upstreamModel == "org/large-v2")
        #expect(candidates[1].servedModel == "large")
    }
}

@Suite struct RotationSelectorTests {
    static func fleet(endpoints: Int) throws -> Fleet {
        try Fleet(
            configuration: ProximaConfiguration(
                endpoints: (0..<endpoints).map {
                    EndpointSettings(name: "e\($0)", url: "http://127.0.0.1:\(9000 + $0)/v1", models: [.init(name: "m")])
                }))
    }

    @Test func rotatesEvenlyAmongHealthyEndpoints() throws {
        let fleet = try Self.fleet(endpoints: 3)
        let selector = RotationSelector()
        let board = EndpointHealthBoard(endpointCount: 3, cooldownSeconds: 5)
        var firstChoices: [Int: Int] = [:]
        for _ in 0..<30 {
            let plan = selector.plan(for: .init(model: fleet.models[0], stream: false), in: fleet, health: board, now: 0)
            #expect(Set(plan.candidates.map(\.endpoint)) == [0, 1, 2])
            firstChoices[plan.candidates[0].endpoint, default: 0] += 1
        }
        #expect(firstChoices == [0: 10, 1: 10, 2: 10])
    }

    @Test func endpointsCoolingDownAfterAFailureGoLast() throws {
        let fleet = try Self.fleet(endpoints: 3)
        let selector = RotationSelector()
        var board = EndpointHealthBoard(endpointCount: 3, cooldownSeconds: 5)
        board.recordFailure(1, at: 10)
        for _ in 0..<6 {
            let plan = selector.plan(for: .init(model: fleet.models[0], stream: false), in: fleet, health: board, now: 11)
            #expect(plan.candidates.last?.endpoint == 1)
            #expect(plan.exclusions.map(\.endpoint) == [1])
        }
        let later = selector.plan(for: .init(model: fleet.models[0], stream: false), in: fleet, health: board, now: 16)
        #expect(later.exclusions.isEmpty)
    }
}

@Suite struct EndpointHealthBoardTests {
    @Test func cooldownDoublesWithConsecutiveFailuresUpToTheBound() {
        var board = EndpointHealthBoard(endpointCount: 1, cooldownSeconds: 2, maximumCooldownSeconds: 10)
        board.recordFailure(0, at: 0)
        #expect(!board.isHealthy(0, at: 1.9))
        #expect(board.isHealthy(0, at: 2))
        board.recordFailure(0, at: 2)
        #expect(!board.isHealthy(0, at: 5.9))
        #expect(board.isHealthy(0, at: 6))
        for _ in 0..<10 { board.recordFailure(0, at: 100) }
        #expect(board.isHealthy(0, at: 110))
    }

    @Test func oneSuccessClearsTheFailures() {
        var board = EndpointHealthBoard(endpointCount: 2, cooldownSeconds: 5)
        board.recordFailure(1, at: 0)
        board.recordSuccess(1, at: 1)
        #expect(board.isHealthy(1, at: 1))
        #expect(board.states[1].consecutiveFailures == 0)
        #expect(!board.isHealthy(7, at: 0))
    }
}
