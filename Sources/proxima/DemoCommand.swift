import ArgumentParser
import Foundation
import Logging
import ProximaBench
import ProximaCore
import ProximaEmulator
import ProximaGateway
import ServiceLifecycle
import UnixSignals

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start an emulated global fleet and the gateway in front of it, replay a real trace from callers on six continents, and show what happened.")

    @Option(help: "Fleet file with emulated endpoints.")
    var fleet: String = "examples/fleet-global.yaml"

    @Option(help: "Trace to replay: azure, mooncake or a file .")
    var trace: String = "azure"

    @Option(help: "Directory holding azure-llm-2023-code.csv and mooncake-conversation.jsonl (default: the traces shipped in data/traces).")
    var tracesDir: String = TraceFiles.shippedDirectory

    @Option(help: "Start this many recorded seconds into the trace (the Azure trace's busy part starts at minute 3).")
    var skip: Double = 180

    @Option(help: "Seconds of load.")
    var duration: Double = 30

    @Option(help: "Replay the trace this many times faster than recorded.")
    var timeScale: Double = 8

    @Option(help: "Gateway port.")
    var port: Int = 8080

    @Option(help: "Routing policies to compare, each on a fresh fleet with the same workload (comma-separated).")
    var policies: String = "balanced,slo,round-robin,least-inflight,nearest,centralized"

    @Option(help: "TTFT target in seconds for the slo policy and for SLO attainment.")
    var ttftTarget: Double = 1.0

    @Option(help: "Also write the comparison as JSON to this file.")
    var json: String?

    @Flag(help: "Leave the fleet and the gateway (last policy) running after the replay, for your own requests.")
    var keepRunning = false

    func run() async throws {
        var configuration = try ConfigurationLoader.load(path: fleet, environment: ProcessInfo.processInfo.environment)
        configuration.server.port = port
        configuration.routing.ttftTargetSeconds = ttftTarget
        let policyNames = policies.split(separator: ",").map { String($0.trimmingSpaces()) }.filter { !$0.isEmpty }
        for name in policyNames where RoutingPolicy.named(name, in: configuration.routing) == nil {
            throw ValidationError("unknown policy '\(name)' (known: \(RoutingPolicy.names(in: configuration.routing).joined(separator: ", ")))")
        }
        LoggingSystem.bootstrap { label in
            var handler = TextLogHandler(label: label)
            handler.logLevel = .warning
            return handler
        }
        var quiet = Logger(label: "proxima-demo")
        quiet.logLevel = .warning
        let fleetModel = try Fleet(configuration: configuration)
        let workload = try loadWorkload()
        let plan = LoadPlan(
            trace: workload, metros: Metro.world, skipSeconds: workload.name == "azure" ? skip : 0, timeScale: timeScale,
            maxDuration: duration, maxOutputTokens: 128, seed: 7)
        let model = configuration.models.first?.name ?? fleetModel.models.first?.name ?? "default"
        print("Emulated fleet: \(fleetModel.endpoints.count) endpoints on \(fleetModel.sites.count) sites; gateway on http://127.0.0.1:\(port)/v1")
        print("Workload: \(workload.name), \(plan.requests.count) requests over \(Int(plan.duration)) s from \(Metro.world.count) metros, replayed once per policy on a fresh fleet\n")

        var results: [PolicyResult] = []
        for (index, policy) in policyNames.enumerated() {
            var run = configuration
            run.routing.policy = policy
            let emulated = try await EmulatorFleet.start(configuration: run, logger: quiet)
            let gateway = try Gateway(configuration: run, logger: quiet)
            let group = ServiceGroup(
                configuration: gateway.serviceGroupConfiguration(services: gateway.services(), signals: [.sigterm, .sigint]))
            let gatewayTask = Task { try await group.run() }
            try await Task.sleep(for: .milliseconds(500))
            print("[\(index + 1)/\(policyNames.count)] \(policy)")
            let generator = LoadGenerator(settings: .init(baseURL: "http://127.0.0.1:\(port)/v1", model: model, maxInFlight: 4_000))
            let started = ContinuousClock.now
            let progress = Task { await showProgress(generator, total: plan.requests.count, planned: plan.duration, started: started) }
            let outcomes = await generator.run(plan)
            progress.cancel()
            _ = await progress.value
            let elapsed = ContinuousClock.now - started
            let wall = elapsed.seconds
            let result = PolicyResult(policy: policy, outcomes: outcomes, fleet: fleetModel, ttftTargetSeconds: ttftTarget, wallSeconds: wall)
            results.append(result)
            print(String(format: "\n  TTFT p50 %.0f ms, p99 %.0f ms; SLO met %.0f%%; %d errors\n", result.timeToFirstToken.p50, result.timeToFirstToken.p99, result.sloAttainment * 100, result.errors))
            if index == policyNames.count - 1 {
                let report = LoadReport(target: "gateway (\(policy))", workload: workload.name, outcomes: outcomes, metros: Metro.world, wallSeconds: wall)
                print("TTFT per caller region under \(policy):\n" + report.table())
                print("\nLoad per site under \(policy):\n" + siteTable(gateway: gateway, fleet: fleetModel))
            }
            if keepRunning && index == policyNames.count - 1 {
                print("\nThe gateway keeps running on http://127.0.0.1:\(port)/v1 (model '\(model)'); Ctrl-C stops it. Try:")
                print("  curl -s http://127.0.0.1:\(port)/v1/chat/completions -H 'content-type: application/json' \\")
                print("    -H 'x-proxima-client-location: 35.68,139.69' -d '{\"model\":\"\(model)\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}'")
                print("  curl -s http://127.0.0.1:\(port)/v1/route/explain -H 'x-proxima-client-location: tokyo' -d '{\"model\":\"\(model)\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}'")
                _ = try? await gatewayTask.value
            } else {
                await group.triggerGracefulShutdown()
                _ = try? await gatewayTask.value
            }
            await emulated.stop()
        }
        print("\nPolicies compared on the same workload (\(workload.name), \(plan.requests.count) requests, \(Int(plan.duration)) s at \(timeScale)x):\n")
        print(PolicyResult.table(results))
        if let json {
            try writeJSON(results, to: json)
        }
    }

    /// The trace to replay. A trace that cannot be read stops the demo with the reason: the real
    /// traces ship with the project (`data/traces`), so a missing one is a mistake to report, not to
    /// paper over with a synthetic workload.
    func loadWorkload() throws -> Trace {
        try TraceFiles.load(trace, from: tracesDir)
    }

    /// Requests and tokens per site, from the gateway's own metrics.
    func siteTable(gateway: Gateway, fleet: Fleet) -> String {
        let samples = PrometheusText.parse(String(decoding: gateway.metrics.exposition(), as: UTF8.self))
        var requests: [String: Double] = [:]
        for sample in samples where sample.name == "proxima_requests_total" {
            guard let endpointName = sample.labels["endpoint"], let endpoint = fleet.endpoints.first(where: { $0.name == endpointName }) else { continue }
            requests[endpoint.siteName, default: 0] += sample.value
        }
        let total = max(1, requests.values.reduce(0, +))
        let sites = fleet.sites.keys.sorted { (requests[$0] ?? 0) > (requests[$1] ?? 0) }
        var lines = ["site          endpoints  requests  share", "------------  ---------  --------  -----"]
        for site in sites {
            let count = fleet.endpoints.filter { $0.siteName == site }.count
            let served = requests[site] ?? 0
            lines.append(
                site.padding(toLength: 12, withPad: " ", startingAt: 0) + "  " + String(format: "%9d  %8.0f  %4.0f%%", count, served, served / total * 100))
        }
        return lines.joined(separator: "\n")
    }
}
