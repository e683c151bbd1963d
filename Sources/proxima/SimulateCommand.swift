import ArgumentParser
import Foundation
import ProximaBench
import ProximaCore
import ProximaGateway
import ProximaSimulator

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Simulate a fleet in virtual time under a real trace, once per routing policy, with the gateway's own router.",
        discussion: """
            The fleet file has the gateway's configuration format; every endpoint runs the engine model of its
            GPU profile. Callers come from ten metros weighted by size and local time of day; the network is the
            router's round-trip model. Prints the same comparison table as `proxima demo`.
            """)

    @Option(help: "Fleet file (the gateway's configuration format).")
    var fleet: String = "examples/fleet-global.yaml"

    @Option(help: "Trace to replay: azure, mooncake or a file.")
    var trace: String = "azure"

    @Option(help: "Directory holding the shared traces.")
    var tracesDir: String = "../shared/data/traces"

    @Option(help: "Start this many recorded seconds into the trace.")
    var skip: Double = 0

    @Option(help: "Seconds of simulated load (after time scaling).")
    var duration: Double = 600

    @Option(help: "Replay the trace this many times faster than recorded.")
    var timeScale: Double = 1

    @Option(help: "Multiply the request rate (requests are kept or replicated).")
    var rateScale: Double = 1

    @Option(help: "Routing policies to compare (comma-separated).")
    var policies: String = "balanced,slo,round-robin,least-inflight,nearest,centralized"

    @Option(help: "TTFT target in seconds for the slo policy and for SLO attainment.")
    var ttftTarget: Double = 1.0

    @Option(help: "Cap on each request's output tokens.")
    var maxOutputTokens: Int?

    @Option(help: "Random seed (callers, routing ties).")
    var seed: UInt64 = 7

    @Option(help: "Also write the comparison as JSON to this file.")
    var json: String?

    @Option(help: "An outage, repeatable: NAME@START-END in simulated seconds (END optional), NAME an endpoint or a site.")
    var outage: [String] = []

    @Option(help: "Instead of --fleet, a synthetic fleet of this many endpoints, one site each, around the world.")
    var syntheticEndpoints: Int?

    func run() async throws {
        var configuration = try ConfigurationLoader.load(path: fleet, environment: ProcessInfo.processInfo.environment)
        configuration.routing.ttftTargetSeconds = ttftTarget
        let fleetModel = try syntheticEndpoints.map { try RouterBenchmark.makeFleet(endpoints: $0, sites: $0, seed: seed) }
            ?? Fleet(configuration: configuration)
        let names = policies.split(separator: ",").map { String($0.trimmingSpaces()) }.filter { !$0.isEmpty }
        let chosen = try names.map { name -> RoutingPolicy in
            guard let policy = RoutingPolicy.named(name, in: configuration.routing) else {
                throw ValidationError("unknown policy '\(name)' (known: \(RoutingPolicy.names(in: configuration.routing).joined(separator: ", ")))")
            }
            return policy
        }
        let outages = try outage.map { text -> Outage in
            do { return try Outage(parsing: text, in: fleetModel) } catch let error as OutageSyntaxError { throw ValidationError(error.description) }
        }
        let workload = try TraceFiles.load(trace, from: tracesDir)
        let plan = LoadPlan(
            trace: workload, metros: Metro.world, skipSeconds: skip, timeScale: timeScale, rateScale: rateScale, maxDuration: duration,
            maxOutputTokens: maxOutputTokens, seed: seed)
        let requests = plan.requests.map {
            SimulatedRequest(
                arrival: $0.sendAt, location: plan.metros[$0.metro].location, metro: $0.metro, promptTokens: $0.inputTokens,
                outputTokens: max(1, $0.outputTokens), prefixBlocks: $0.prefixBlockIDs)
        }
        print("Simulating \(fleetModel.endpoints.count) endpoints on \(fleetModel.sites.count) sites; \(workload.name): \(requests.count) requests over \(Int(plan.duration)) s\n")
        var results: [PolicyResult] = []
        for policy in chosen {
            let started = ContinuousClock.now
            var simulation = FleetSimulation(
                fleet: fleetModel, requests: requests,
                settings: SimulationSettings(
                    policy: policy, maxAttempts: configuration.server.maxAttempts,
                    scrapeIntervalSeconds: configuration.routing.telemetry.scrapeIntervalSeconds,
                    telemetry: configuration.routing.telemetry, breaker: configuration.routing.breaker, seed: seed,
                    outages: outages))
            simulation.run()
            let wall = (ContinuousClock.now - started).seconds
            let outcomes = simulation.outcomes.enumerated().map { index, outcome in
                RequestOutcome(
                    metro: requests[index].metro, timeToFirstToken: outcome.timeToFirstToken, endToEnd: outcome.endToEnd ?? 0,
                    outputTokens: outcome.outputTokens, lateStart: 0, error: outcome.error,
                    endpoint: outcome.endpoint.map { fleetModel.endpoints[$0].name }, promptTokens: requests[index].promptTokens)
            }
            let result = PolicyResult(
                policy: policy.name, outcomes: outcomes, fleet: fleetModel, ttftTargetSeconds: ttftTarget, wallSeconds: plan.duration)
            results.append(result)
            print(
                "  \(policy.name): \(requests.count) requests simulated in "
                    + String(format: "%.2f s (%.0f requests/s, %d routing decisions)", wall, Double(requests.count) / max(wall, 1e-9), simulation.decisions))
        }
        print("\nPolicies compared in simulation (\(workload.name), \(requests.count) requests, \(Int(plan.duration)) s):\n")
        print(PolicyResult.table(results))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(results).write(to: URL(fileURLWithPath: json))
        }
    }
}

