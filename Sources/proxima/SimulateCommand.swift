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
            The fleet file has the gateway's configuration format; every endpoint runs the engine model of its \
            GPU profile. Callers come from the metros (ten by default, weighted by size and local time of day); \
            the network is the router's round-trip model. Prints a table per policy and load, per-site use, \
            and optionally JSON, Markdown and SVG plots. With --residency a caller population's requests route \
            only to sites its rule allows: one no allowed endpoint can take is refused (`residency`), never placed \
            elsewhere, and counts as an SLO miss. See docs/simulator.md.
            """)

    @Option(help: "Fleet file (the gateway's configuration format).")
    var fleet: String = "examples/fleet-global.yaml"

    @OptionGroup var workloadOptions: WorkloadOptions

    @Option(help: "Seconds of simulated arrivals (after time scaling; the length of a synthetic workload).")
    var duration: Double = 600

    @Option(help: "Routing policies to compare (comma-separated).")
    var policies: String = "balanced,slo,round-robin,least-inflight,nearest,centralized"

    @Option(help: "TTFT target in seconds for the slo policy and for SLO attainment.")
    var ttftTarget: Double = 1.0

    @Option(help: "Random seed (callers, routing ties).")
    var seed: UInt64 = 7

    @Option(
        help: """
            Offered loads as shares of the fleet's capacity (comma-separated, e.g. 0.5,0.9): each metro replays the \
            trace from its time-zone offset, scaled to the load; overrides --rate-scale.
            """)
    var load: String?

    @Flag(help: "Every metro replays the whole trace from its own time-zone offset (instead of sharing one arrival stream).")
    var replicateRegions = false

    @Option(help: "An outage, repeatable: NAME@START-END in simulated seconds (END optional), NAME an endpoint or a site.")
    var outage: [String] = []

    @Option(help: "A capacity change, repeatable: NAME@START-END drains an endpoint or site (0-T adds it at T; T- removes it).")
    var drain: [String] = []

    @Option(
        help: """
            A residency rule for a caller population, repeatable: POPULATION=JURISDICTIONS, POPULATION a metro, a region \
            (americas, europe, africa, asia, oceania) or all; JURISDICTIONS codes or groups (EU, EEA, DE,FR), groups \
            expanded with the fleet file's residency.groups. Example: --residency europe=EU.
            """)
    var residency: [String] = []

    @Option(help: "Instead of --fleet, a synthetic fleet of this many endpoints, one site each, around the world.")
    var syntheticEndpoints: Int?

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @Option(help: "Also write the results as Markdown to this file.")
    var markdown: String?

    @Option(help: "Write SVG plots (TTFT p99 against load, cost against TTFT p99) into this directory.")
    var svg: String?

    @Flag(inversion: .prefixedNo, help: "Show a progress bar on stderr (default: when stderr is a terminal).")
    var progress: Bool = isatty(STDERR_FILENO) != 0

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
        let events = try outage.map { try Self.event($0, in: fleetModel, kind: .failure) } + drain.map { try Self.event($0, in: fleetModel, kind: .drain) }
        let loads = try load.map { text in
            try text.split(separator: ",").map { part -> Double in
                guard let value = Double(part.trimmingSpaces()), value > 0 else { throw ValidationError("--load takes positive shares of capacity, like 0.5,0.9") }
                return value
            }
        }
        let workload = try workloadOptions.workload(duration: duration, seed: seed)
        let groups = configuration.residency.resolvedGroups
        let metros: [Metro]
        do {
            metros = try PopulationResidency.apply(
                residency.map { text throws(PopulationResidencyError) in try PopulationResidency(parsing: text, groups: groups) },
                to: try workloadOptions.selectedMetros())
        } catch let error as PopulationResidencyError {
            throw ValidationError(error.description)
        }
        let ruled = Set(metros.indices.filter { metros[$0].residency != nil })
        // One request list per load level (a single one without --load).
        var levels: [(load: Double?, requests: [SimulatedRequest])] = []
        let builder = WorkloadBuilder(
            trace: workload, fleet: fleetModel, metros: metros, skipSeconds: workloadOptions.skip, runSeconds: duration,
            timeScale: workloadOptions.timeScale, seed: seed,
            sample: workloadOptions.synthetic != nil ? try workloadOptions.workload(duration: 2_000 / workloadOptions.rate, seed: seed) : nil)
        print("Capacity of the fleet for \(workload.name): \(String(format: "%.2f", builder.capacity)) requests/s")
        if let loads {
            levels = loads.map { ($0, builder.requests(atLoad: $0)) }
        } else {
            let plan = workloadOptions.plan(workload, metros: metros, duration: duration, replicateRegions: replicateRegions, seed: seed)
            levels = [(nil, SimulatedRequest.from(plan))]
        }
        if let maxOutputTokens = workloadOptions.maxOutputTokens, loads != nil {
            levels = levels.map { level in (level.load, level.requests.map { var r = $0; r.outputTokens = min(r.outputTokens, maxOutputTokens); return r }) }
        }
        print("Simulating \(fleetModel.endpoints.count) endpoints on \(fleetModel.sites.count) sites; \(workload.name)\n")
        var results: [ScenarioResult] = []
        for level in levels {
            for policy in chosen {
                let bar = progress ? ProgressBar(title: "\(policy.name)" + (level.load.map { " @ \(Int(($0 * 100).rounded()))%" } ?? "")) : nil
                let (result, simulation) = FleetSimulation.run(
                    label: policy.name, fleet: fleetModel, requests: level.requests,
                    settings: SimulationSettings(
                        policy: policy, maxAttempts: configuration.server.maxAttempts,
                        scrapeIntervalSeconds: configuration.routing.telemetry.scrapeIntervalSeconds,
                        telemetry: configuration.routing.telemetry, breaker: configuration.routing.breaker, seed: seed, outages: events,
                        residency: metros.map(\.residency)),
                    ttftTargetSeconds: ttftTarget, offeredLoad: level.load, progress: bar.map { bar in { bar.update($0) } })
                bar?.finish()
                results.append(result)
                print(
                    "  \(policy.name)\(level.load.map { String(format: " at %.0f%% load", $0 * 100) } ?? ""): \(level.requests.count) requests over "
                        + String(
                            format: "%.0f s simulated in %.2f s (%.0f requests/s, %d routing decisions)", result.simulatedSeconds, result.wallSeconds,
                            Double(level.requests.count) / max(result.wallSeconds, 1e-9), simulation.decisions))
                if !ruled.isEmpty {
                    let under = ScenarioResult(label: policy.name, simulation: simulation, ttftTargetSeconds: ttftTarget) { ruled.contains($0.metro) }
                    let rules = ruled.sorted().map { "\(metros[$0].name) \(metros[$0].residency!.named.joined(separator: "+"))" }.joined(separator: ", ")
                    print(
                        "    under residency (\(rules)): \(under.summary.requests) requests, \(under.residencyRefused) refused (residency), "
                            + String(
                                format: "%d errors, TTFT p50 %.0f ms p99 %.0f ms, SLO met %.0f%%", under.summary.errors,
                                under.summary.timeToFirstToken.p50, under.summary.timeToFirstToken.p99, under.summary.sloAttainment * 100))
                }
            }
        }
        let table = ScenarioResult.table(results)
        print("\nPolicies compared in simulation (\(workload.name)):\n")
        print(table)
        if let best = results.first(where: { $0.label == "balanced" }) ?? results.first {
            print("\nSites under \(best.label)\(best.offeredLoad.map { String(format: " at %.0f%% load", $0 * 100) } ?? ""):\n")
            print(best.siteTable())
        }
        if let json {
            try writeJSON(results, to: json)
        }
        if let markdown {
            let text = "# Simulation: \(workload.name) on \(fleet)\n\n" + table + "\n"
            try Data(text.utf8).write(to: URL(fileURLWithPath: markdown))
        }
        if let svg {
            let directory = URL(fileURLWithPath: svg, isDirectory: true)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for (name, chart) in ScenarioCharts.charts(results, trace: workload.name) {
                try Data(chart.render().utf8).write(to: directory.appendingPathComponent(name))
            }
        }
    }

    static func event(_ text: String, in fleet: Fleet, kind: Outage.Kind) throws -> Outage {
        do { return try Outage(parsing: text, in: fleet, kind: kind) } catch { throw ValidationError(error.description) }
    }
}

/// A one-line progress bar on stderr, redrawn in place.
final class ProgressBar: @unchecked Sendable {
    let title: String
    let started = ContinuousClock.now
    private var lastPercent = -1

    init(title: String) { self.title = title }

    func update(_ fraction: Double) {
        let percent = Int((min(max(fraction, 0), 1) * 100).rounded(.down))
        guard percent != lastPercent else { return }
        lastPercent = percent
        let filled = percent * 30 / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: 30 - filled)
        let elapsed = (ContinuousClock.now - started).seconds
        FileHandle.standardError.write(Data("\r\(title) [\(bar)] \(percent)% \(String(format: "%.1f s", elapsed))".utf8))
    }

    func finish() {
        update(1)
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
