import Foundation
import ProximaCore
import Testing

@Suite struct GuardSettingsTests {
    @Test func edgePoliciesDefaultToBlockingImpersonatorsAndTenantsOverrideThem() {
        var edge = EdgeSettings()
        #expect(edge.policy(for: .caller(.impersonator), tenant: "acme") == .block)
        #expect(edge.policy(for: .caller(.declaredBot), tenant: "acme") == .allow)
        edge.policies["declared_bot"] = EdgePolicy(.rateLimit, requestsPerMinute: 10)
        edge.tenants["acme"] = ["declared_bot": .block]
        #expect(edge.policy(for: .caller(.declaredBot), tenant: "acme") == .block)
        #expect(edge.policy(for: .caller(.declaredBot), tenant: "other") == EdgePolicy(.rateLimit, requestsPerMinute: 10))
    }

    @Test func anUnknownCallerAtTheSuspiciousScoreMeetsTheSuspiciousPolicy() {
        #expect(CallerClassification(.unknown, score: 0.7).policyKey(suspiciousScore: 0.7) == .suspicious)
        #expect(CallerClassification(.unknown, score: 0.69).policyKey(suspiciousScore: 0.7) == .caller(.unknown))
        #expect(CallerClassification(.declaredBot, score: 1).policyKey(suspiciousScore: 0.7) == .caller(.declaredBot))
    }

    @Test func badEdgeAndGuardSettingsAreNamedByKey() {
        var configuration = ProximaConfiguration()
        configuration.edge.policies["robots"] = .allow
        configuration.edge.policies["unknown"] = EdgePolicy(.rateLimit)
        configuration.edge.crawlers.dnsServers = ["not-an-address"]
        configuration.guards.input.entities = ["shoe_size"]
        configuration.guards.patterns = [.init(name: "email", regex: "x")]
        configuration.guards.tenants["acme"] = .init(output: .init(action: .refuse))
        let keys = Set(configuration.problems().map(\.keyPath))
        #expect(keys.contains("edge.policies.robots"))
        #expect(keys.contains("edge.policies.unknown.requests_per_minute"))
        #expect(keys.contains("edge.crawlers.dns_servers[0]"))
        #expect(keys.contains("guards.input.entities[0]"))
        #expect(keys.contains("guards.patterns[0].name"))
        #expect(keys.contains("guards.tenants.acme.output.action"))
    }

    @Test func dnsServerAddressesTakeAnOptionalPort() {
        #expect(DNSServerAddress(parsing: "127.0.0.1:5353") == DNSServerAddress(address: IPAddress("127.0.0.1")!, port: 5353))
        #expect(DNSServerAddress(parsing: "127.0.0.1")?.port == 53)
        #expect(DNSServerAddress(parsing: "[::1]:53")?.address == IPAddress("::1"))
        #expect(DNSServerAddress(parsing: "::1")?.port == 53)
        #expect(DNSServerAddress(parsing: "127.0.0.1:0") == nil)
        #expect(DNSServerAddress(parsing: "host:53") == nil)
    }
}
