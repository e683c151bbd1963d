import Foundation
import ProximaBench
import ProximaCore

/// What the evidence report runs: two fleets of equal capacity (one region, and the same GPUs spread
/// over the world), the real traces, load levels, and the events of each experiment.
public struct EvidenceSettings: Sendable {
    public var centralFleet: Fleet
    public var globalFleet: Fleet
    /// Policies, weights, TTFT target and central site, from the global fleet's file.
    public var routing: RoutingSettings
    public var breaker: BreakerSettings
    public var telemetry: TelemetrySettings
    public var maxAttempts: Int
    public var traces: [Trace]
    /// Simulated seconds of arrivals per run.
    public var runSeconds: Double
    public var skipSeconds: Double
    /// Offered loads (shares of capacity) of the one-region sweep.
    public var kneeLoads: [Double]
    /// Offered loads of the per-policy sweep on the global fleet.
    public var loads: [Double]
    /// The load of the ablation, outage and prefix experiments, and of the cost figure.
    public var mainLoad: Double
    /// Offered loads of the single-engine queueing check.
    public var queueingLoads: [Double]
    public var queueingSeconds: Double
    /// The site that fails mid-run in the outage experiment.
    public var outageSite: String
    /// The caller population (a metro region) the sovereignty section puts under `sovereigntyRule`.
    public var sovereigntyRegion: String
    /// Its residency rule: jurisdiction codes or groups (`EU`).
    public var sovereigntyRule: [String]
    public var seed: UInt64
    /// Source file names, quoted in the report.
    public var centralFleetFile: String
    public var globalFleetFile: String

    public init(
        centralFleet: Fleet, globalFleet: Fleet, routing: RoutingSettings, breaker: BreakerSettings = .init(),
        telemetry: TelemetrySettings = .init(), maxAttempts: Int = 3, traces: [Trace], runSeconds: Double = 600, skipSeconds: Double = 0,
        kneeLoads: [Double] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05],
        loads: [Double] = [0.3, 0.5, 0.7, 0.85, 0.95], mainLoad: Double = 0.85,
        queueingLoads: [Double] = [0.2, 0.4, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95], queueingSeconds: Double = 3_600, outageSite: String = "us-east",
        sovereigntyRegion: String = "europe", sovereigntyRule: [String] = ["EU"], seed: UInt64 = 7, centralFleetFile: String = "", globalFleetFile: String = ""
    ) {
        self.centralFleet = centralFleet
        self.globalFleet = globalFleet
        self.routing = routing
        self.breaker = breaker
        self.telemetry = telemetry
        self.maxAttempts = maxAttempts
        self.traces = traces
        self.runSeconds = runSeconds
        self.skipSeconds = skipSeconds
        self.kneeLoads = kneeLoads
        self.loads = loads
        self.mainLoad = mainLoad
        self.queueingLoads = queueingLoads
        self.queueingSeconds = queueingSeconds
        self.outageSite = outageSite
        self.sovereigntyRegion = sovereigntyRegion
        self.sovereigntyRule = sovereigntyRule
        self.seed = seed
        self.centralFleetFile = centralFleetFile
        self.globalFleetFile = globalFleetFile
    }

    /// The policies compared, in report order.
    public static let comparedPolicies = ["centralized", "round-robin", "least-inflight", "nearest", "balanced", "slo"]
}

/// One run of the report, tagged with the experiment it belongs to.
public struct EvidenceRun: Codable, Sendable {
    public var experiment: String
    public var trace: String
    public var fleet: String
    public var result: ScenarioResult
}

/// The evidence report: every experiment run in simulation, written up as Markdown with SVG figures.
public struct EvidenceReport: Sendable {
    public var markdown: String
    /// File name and SVG document of each figure; the Markdown links them from `figuresPath`.
    public var figures: [(name: String, svg: String)]
    public var runs: [EvidenceRun]
    /// Requests simulated over all runs, and the wall-clock seconds they took.
    public var simulatedRequests: Int
    public var wallSeconds: Double

    /// Label of the row that runs the one-region fleet.
    static let oneRegion = "one region"

    /// Runs every experiment. `log` receives a line per run; `figuresPath` is how the Markdown
    /// refers to the figures' directory.
    public static func run(
        _ settings: EvidenceSettings, figuresPath: String, log: @escaping (String) -> Void = { _ in }
    ) throws -> EvidenceReport {
        var runner = Runner(settings: settings, log: log)
        return try runner.report(figuresPath: figuresPath)
    }
}

/// Why the report cannot run.
public struct EvidenceError: Error, CustomStringConvertible {
    public var description: String
}

private struct Runner {
    let settings: EvidenceSettings
    let log: (String) -> Void
    var runs: [EvidenceRun] = []
    var figures: [(name: String, svg: String)] = []
    var simulatedRequests = 0
    var wallSeconds = 0.0
    var text: [String] = []
    /// Found along the way, for the headline.
    var kneeLoad: Double?
    var outageDuring: [String: ScenarioResult] = [:]
    /// One line per trace from the sovereignty section.
    var sovereigntyHeadline: [String] = []

    init(settings: EvidenceSettings, log: @escaping (String) -> Void) {
        self.settings = settings
        self.log = log
    }

    var target: Double { settings.routing.ttftTargetSeconds }

    func policy(_ name: String) throws -> RoutingPolicy {
        guard let policy = RoutingPolicy.named(name, in: settings.routing) else { throw EvidenceError(description: "unknown policy '\(name)'") }
        return policy
    }

    func simulationSettings(_ policy: RoutingPolicy, outages: [Outage] = [], routerSeesPrefixes: Bool = true) -> SimulationSettings {
        SimulationSettings(
            policy: policy, maxAttempts: settings.maxAttempts, scrapeIntervalSeconds: settings.telemetry.scrapeIntervalSeconds,
            telemetry: settings.telemetry, breaker: settings.breaker, seed: settings.seed, outages: outages,
            routerSeesPrefixes: routerSeesPrefixes)
    }

    /// Runs one simulation and records it.
    mutating func simulate(
        _ experiment: String, trace: String, fleetName: String, fleet: Fleet, label: String, requests: [SimulatedRequest],
        settings simulation: SimulationSettings, load: Double?
    ) -> (ScenarioResult, FleetSimulation) {
        let (result, finished) = FleetSimulation.run(
            label: label, fleet: fleet, requests: requests, settings: simulation, ttftTargetSeconds: target, offeredLoad: load)
        runs.append(EvidenceRun(experiment: experiment, trace: trace, fleet: fleetName, result: result))
        simulatedRequests += requests.count
        wallSeconds += result.wallSeconds
        log(
            "[\(runs.count)] \(experiment) \(trace) \(label)" + (load.map { " load \(Format.percent($0))" } ?? "")
                + ": \(requests.count) requests in \(Format.fixed(result.wallSeconds, 2)) s, TTFT p99 \(Format.ms(result.summary.timeToFirstToken.p99))")
        return (result, finished)
    }

    mutating func report(figuresPath: String) throws -> EvidenceReport {
        guard !settings.traces.isEmpty else { throw EvidenceError(description: "no traces") }
        for name in EvidenceSettings.comparedPolicies { _ = try policy(name) }
        guard settings.globalFleet.siteNames.contains(settings.outageSite) else {
            throw EvidenceError(description: "the outage site '\(settings.outageSite)' is not in the global fleet")
        }
        let builders = settings.traces.map {
            WorkloadBuilder(trace: $0, fleet: settings.globalFleet, skipSeconds: settings.skipSeconds, runSeconds: settings.runSeconds, seed: settings.seed)
        }
        intro(builders)
        try knee(builders[0])
        queueing()
        var sweeps: [[String: [ScenarioResult]]] = []
        for builder in builders { sweeps.append(try policySweep(builder)) }
        try ablation(builders)
        try outage(builders[0])
        if let mooncake = builders.first(where: { $0.trace.requests.contains { !$0.prefixBlockIDs.isEmpty } }) {
            try prefixAffinity(mooncake)
        }
        limits(builders, sweeps: sweeps)
        try sovereignty(builders)
        headline(builders, sweeps: sweeps, kneeLoad: kneeLoad, outage: outageDuring)
        reproduce()
        let markdown = text.joined(separator: "\n")
            .replacingOccurrences(of: "](FIGURES/", with: "](\(figuresPath.isEmpty ? "" : figuresPath + "/")")
        return EvidenceReport(
            markdown: markdown, figures: figures, runs: runs, simulatedRequests: simulatedRequests, wallSeconds: wallSeconds)
    }

    // MARK: sections

    mutating func intro(_ builders: [WorkloadBuilder]) {
        let central = settings.centralFleet
        let global = settings.globalFleet
        func describe(_ fleet: Fleet) -> String {
            let profiles = FleetCapacity.profiles(of: fleet)
            var counts: [String: Int] = [:]
            for profile in profiles { counts[profile.name, default: 0] += 1 }
            let gpus = counts.sorted { $0.key < $1.key }.map { "\($0.value) x \($0.key)" }.joined(separator: ", ")
            let sites = fleet.siteNames.map { site in "\(site) \(fleet.endpoints.filter { $0.siteName == site }.count)" }
            return "\(gpus) on \(fleet.siteNames.count == 1 ? "one site" : "\(fleet.siteNames.count) sites") (\(sites.joined(separator: ", ")))"
        }
        text += [
            "# Evidence: does distributed inference beat centralized, and by how much?",
            "",
            "<!-- Generated by `scripts/evidence` (`proxima evidence`); edit the generator, not this file. -->",
            "",
            "Every number below comes from `proxima simulate`'s engine: a discrete-event simulation in virtual time of "
                + "callers, network and fleet, in which every request is placed by the gateway's own `FleetRouter` over the "
                + "gateway's own `FleetTelemetry`, and served by the emulator's continuous-batching `EngineModel` of its GPU. "
                + "`scripts/validate-simulator` checks the simulation against the emulated fleet over real HTTP.",
            "",
            "## Setup",
            "",
            "- **One region** (`\(settings.centralFleetFile)`): \(describe(central)).",
            "- **Global fleet** (`\(settings.globalFleetFile)`): the same GPUs spread out: \(describe(global)). "
                + "Prices per GPU-hour differ by site (cheapest in the large regions).",
            "- **Callers**: \(Metro.world.count) metros on every inhabited continent, weighted by size. Each metro replays the whole "
                + "trace on its own, shifted by its time zone (the trace read as one day of a region's traffic), so regional "
                + "peaks fall at different times; prefix ids are made distinct per metro.",
            "- **Network**: great-circle fibre time x 2 plus 2 ms, the router's own round-trip model.",
            "- **Load**: offered request rate as a share of *capacity*, the rate the fleet completes when every engine always "
                + "has work waiting, measured on the engine model with the trace's own mix of sizes: "
                + builders.map { "\($0.trace.name) \(Format.fixed($0.capacity, 1)) requests/s" }.joined(separator: ", ") + ".",
            "- **Runs**: \(Format.fixed(settings.runSeconds, 0)) simulated seconds of arrivals each, seed \(settings.seed); "
                + "TTFT target \(Format.seconds(target)); retries up to \(settings.maxAttempts) attempts.",
            "",
        ]
    }

    /// Section 1: one region under rising load.
    mutating func knee(_ builder: WorkloadBuilder) throws {
        let policy = try policy("least-inflight")
        var rows: [ScenarioResult] = []
        for load in settings.kneeLoads {
            let (result, _) = simulate(
                "knee", trace: builder.trace.name, fleetName: "central", fleet: settings.centralFleet, label: EvidenceReport.oneRegion,
                requests: builder.requests(atLoad: load), settings: simulationSettings(policy), load: load)
            rows.append(result)
        }
        let base = rows.first
        let knee = rows.first { ($0.summary.timeToFirstToken.mean) > 2 * (base?.summary.timeToFirstToken.mean ?? .infinity) }
        kneeLoad = knee?.offeredLoad
        let kneeP99 = rows.first { ($0.summary.timeToFirstToken.p99) > 2 * (base?.summary.timeToFirstToken.p99 ?? .infinity) }
        text += [
            "## 1. One large region under rising load: the knee",
            "",
            "All \(settings.centralFleet.endpoints.count) endpoints in \(settings.centralFleet.siteNames.joined(separator: ", ")), "
                + "`least-inflight` spreading requests over them, \(builder.trace.name) trace, callers worldwide.",
            "",
            "| offered load | requests/s | GPU busy | TTFT mean | p50 | p99 | SLO met |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows {
            let busy = row.sites.map(\.gpuUtilization).reduce(0, +) / Double(max(row.sites.count, 1))
            text.append(
                "| \(Format.percent(row.offeredLoad ?? 0)) | \(Format.fixed(row.offeredRate, 1)) | \(Format.percent(busy)) | "
                    + "\(Format.ms(row.summary.timeToFirstToken.mean)) | \(Format.ms(row.summary.timeToFirstToken.p50)) | "
                    + "\(Format.ms(row.summary.timeToFirstToken.p99)) | \(Format.percent(row.summary.sloAttainment)) |")
        }
        text.append("")
        if let base {
            text.append(
                "Mean TTFT doubles from its \(Format.percent(base.offeredLoad ?? 0)) level (\(Format.ms(base.summary.timeToFirstToken.mean))) "
                    + (knee.map {
                        "at **\(Format.percent($0.offeredLoad ?? 0)) offered load** (\(Format.ms($0.summary.timeToFirstToken.mean)), GPUs busy "
                            + "\(Format.percent($0.sites.map(\.gpuUtilization).reduce(0, +) / Double(max($0.sites.count, 1)))) of the time)"
                    }
                        ?? "nowhere in the sweep")
                    + "; p99 doubles "
                    + (kneeP99.map { "at \(Format.percent($0.offeredLoad ?? 0)) (\(Format.ms($0.summary.timeToFirstToken.p99)))" } ?? "nowhere in the sweep")
                    + ". \"GPU busy\" is the share of time the engines were computing, what a utilization gauge shows: it "
                    + "reaches its ceiling long before the queue does, so it says little about where the knee is.")
        }
        text += ["", "![TTFT against offered load in one region](FIGURES/knee.svg)", ""]
        let series: [(String, KeyPath<LatencySummary, Double>)] = [("TTFT p50", \.p50), ("TTFT mean", \.mean), ("TTFT p99", \.p99)]
        figures.append(
            (
                "knee.svg",
                SVGChart(
                    title: "One region under rising load (\(builder.trace.name))", xLabel: "offered load (share of capacity)",
                    yLabel: "TTFT (s)", yScale: .logarithmic,
                    series: series.map { name, path in
                        SVGChart.Series(
                            name: name,
                            points: rows.map { .init(x: $0.offeredLoad ?? 0, y: $0.summary.timeToFirstToken[keyPath: path] / 1_000) })
                    }, referenceY: .init(value: target, label: "target")
                ).render()
            ))
    }

    /// The queueing-theory check: one endpoint, Poisson arrivals of fixed size.
    mutating func queueing() {
        let fleet = settings.centralFleet
        guard let endpoint = fleet.endpoints.first else { return }
        let configuration = ProximaConfiguration(
            sites: [SiteSettings(name: endpoint.siteName, latitude: endpoint.location.latitude, longitude: endpoint.location.longitude)],
            endpoints: [
                EndpointSettings(
                    name: endpoint.name, url: "http://127.0.0.1:1/v1", site: endpoint.siteName, engine: .emulated, models: [.init(name: "m")],
                    gpu: endpoint.gpu, pricing: endpoint.pricing)
            ])
        guard let single = try? Fleet(configuration: configuration) else { return }
        let sizes = SyntheticWorkload.Sizes(medianInputTokens: 1_500, medianOutputTokens: 150, sigma: 0)
        let sample = SyntheticWorkload.poisson(rate: 1, duration: 500, sizes: sizes, seed: settings.seed).requests.map {
            SimulatedRequest(arrival: 0, location: endpoint.location, promptTokens: $0.inputTokens, outputTokens: $0.outputTokens)
        }
        let capacity = FleetCapacity.requestsPerSecond(of: single, sample: sample)
        let policy = RoutingPolicy(name: "least-inflight", kind: .leastInflight)
        var rows: [(load: Double, result: ScenarioResult)] = []
        for load in settings.queueingLoads {
            let trace = SyntheticWorkload.poisson(
                rate: load * capacity, duration: settings.queueingSeconds, sizes: sizes, seed: settings.seed &+ UInt64(load * 1_000))
            let requests = trace.requests.map {
                SimulatedRequest(
                    arrival: $0.time, location: endpoint.location, promptTokens: $0.inputTokens, outputTokens: $0.outputTokens)
            }
            let (result, _) = simulate(
                "queueing", trace: "poisson", fleetName: "single", fleet: single, label: "one engine", requests: requests,
                settings: simulationSettings(policy), load: load)
            rows.append((load, result))
        }
        // Fit W = k / (1 - rho) on the upper half of the loads, where queueing dominates.
        let upper = rows.filter { $0.load >= 0.7 }
        let k = upper.isEmpty ? 0 : upper.map { $0.result.meanWaitSeconds * (1 - $0.load) }.reduce(0, +) / Double(upper.count)
        text += [
            "### Sanity against queueing theory",
            "",
            "One \(endpoint.gpu?.profile ?? "endpoint") deployment, callers beside it, Poisson arrivals of fixed size "
                + "(1,500 prompt and 150 output tokens; capacity \(Format.fixed(capacity, 2)) requests/s), \(Format.fixed(settings.queueingSeconds, 0)) s "
                + "per load. *Wait* is the TTFT less the round trip and the unloaded prefill. Queueing theory says the "
                + "wait grows like 1/(1-ρ) near saturation; the last column is that shape fitted to the loads from 70% up "
                + "(k = \(Format.ms(k * 1_000))).",
            "",
            "| ρ (offered) | TTFT mean | wait mean | wait x (1-ρ) | k / (1-ρ) |",
            "|---:|---:|---:|---:|---:|",
        ]
        for row in rows {
            text.append(
                "| \(Format.percent(row.load)) | \(Format.ms(row.result.summary.timeToFirstToken.mean)) | \(Format.ms(row.result.meanWaitSeconds * 1_000)) | "
                    + "\(Format.ms(row.result.meanWaitSeconds * (1 - row.load) * 1_000)) | \(Format.ms(k / (1 - row.load) * 1_000)) |")
        }
        let products = rows.map { $0.result.meanWaitSeconds * (1 - $0.load) }
        if let low = products.min(), let high = products.max(), low > 0 {
            text += [
                "",
                "Over the whole range, wait x (1-ρ) stays within a factor of \(Format.fixed(high / low, 1)) while the wait itself grows "
                    + "\(Format.fixed((rows.last?.result.meanWaitSeconds ?? 0) / max(rows.first?.result.meanWaitSeconds ?? 1, 1e-9), 0))-fold: "
                    + "the engine model queues like a single server. At low load the wait is prefill sharing engine steps with "
                    + "decoding batches rather than a queue for a slot.",
                "",
            ]
        }
    }

    /// Section 2: the global fleet per policy and load, plus one region, on one trace.
    mutating func policySweep(_ builder: WorkloadBuilder) throws -> [String: [ScenarioResult]] {
        let name = builder.trace.name
        var byLabel: [String: [ScenarioResult]] = [:]
        var floors: [Double: [Double]] = [:]
        for load in settings.loads {
            let requests = builder.requests(atLoad: load)
            floors[load] = PhysicalFloor.timeToFirstToken(of: requests, in: settings.globalFleet)
            let (central, _) = simulate(
                "policies", trace: name, fleetName: "central", fleet: settings.centralFleet, label: EvidenceReport.oneRegion, requests: requests,
                settings: simulationSettings(try policy("least-inflight")), load: load)
            byLabel[EvidenceReport.oneRegion, default: []].append(central)
            for policyName in EvidenceSettings.comparedPolicies {
                let (result, _) = simulate(
                    "policies", trace: name, fleetName: "global", fleet: settings.globalFleet, label: policyName, requests: requests,
                    settings: simulationSettings(try policy(policyName)), load: load)
                byLabel[policyName, default: []].append(result)
            }
        }
        let labels = [EvidenceReport.oneRegion] + EvidenceSettings.comparedPolicies
        let mainIndex = settings.loads.enumerated().min { abs($0.element - settings.mainLoad) < abs($1.element - settings.mainLoad) }?.offset ?? 0
        let mainLoad = settings.loads[mainIndex]
        let floor = floors[mainLoad] ?? []
        let floorSummary = Percentiles(floor)
        if text.last(where: { $0.hasPrefix("## ") }) != "## 2. The same capacity spread over the world, per policy" {
            text += [
                "## 2. The same capacity spread over the world, per policy",
                "",
                "`one region` is the one-region fleet (its best policy, `least-inflight`); every other row is the global fleet "
                    + "under that policy. `centralized` sends everything to the global fleet's central site. The physical floor "
                    + "is, per request, the round trip to the site nearest in time plus the unloaded prefill of the whole prompt.",
                "",
            ]
        }
        text += [
            "### \(name) trace at \(Format.percent(mainLoad)) offered load",
            "",
            "| policy | TTFT p50 | p90 | p99 | TPOT p50 | E2E p50 | SLO met | goodput/s | $ / 1M tokens | errors | busiest site |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            "| *physical floor* | \(Format.ms(floorSummary.p50 * 1_000)) | \(Format.ms(floorSummary.p90 * 1_000)) | \(Format.ms(floorSummary.p99 * 1_000)) | | | "
                + "\(Format.percent(floor.isEmpty ? 0 : Double(floor.filter { $0 <= target }.count) / Double(floor.count))) | | | | |",
        ]
        for label in labels {
            guard let row = byLabel[label]?[mainIndex] else { continue }
            let summary = row.summary
            let busiest = row.sites.max { $0.requestShare < $1.requestShare }
            text.append(
                "| \(label) | \(Format.ms(summary.timeToFirstToken.p50)) | \(Format.ms(summary.timeToFirstToken.p90)) | "
                    + "\(Format.ms(summary.timeToFirstToken.p99)) | \(Format.ms(summary.timePerOutputToken.p50)) | \(Format.ms(summary.endToEnd.p50)) | "
                    + "\(Format.percent(summary.sloAttainment)) | \(Format.fixed(row.goodput, 1)) | \(Format.fixed(summary.costPerMillionTokens, 3)) | "
                    + "\(summary.errors) | \(busiest.map { "\($0.name) \(Format.percent($0.requestShare))" } ?? "-") |")
        }
        text += [
            "",
            "TTFT p99 by offered load:",
            "",
            "| policy | " + settings.loads.map { Format.percent($0) }.joined(separator: " | ") + " |",
            "|---|" + settings.loads.map { _ in "---:" }.joined(separator: "|") + "|",
        ]
        for label in labels {
            guard let rows = byLabel[label] else { continue }
            text.append("| \(label) | " + rows.map { Format.ms($0.summary.timeToFirstToken.p99) }.joined(separator: " | ") + " |")
        }
        text += ["", "SLO attainment by offered load:", "", "| policy | " + settings.loads.map { Format.percent($0) }.joined(separator: " | ") + " |",
            "|---|" + settings.loads.map { _ in "---:" }.joined(separator: "|") + "|"]
        for label in labels {
            guard let rows = byLabel[label] else { continue }
            text.append("| \(label) | " + rows.map { Format.percent($0.summary.sloAttainment) }.joined(separator: " | ") + " |")
        }
        if let balanced = byLabel["balanced"]?[mainIndex] {
            text += ["", "Per site under `balanced` at \(Format.percent(mainLoad)): share of requests, GPU busy time and mean power.", ""]
            text.append(balanced.siteTable())
        }
        text += [
            "",
            "![TTFT p99 against offered load, per policy](FIGURES/ttft-vs-load-\(name).svg)",
            "![Cost against TTFT p99, per policy](FIGURES/cost-vs-p99-\(name).svg)",
            "",
        ]
        let ordered = labels.flatMap { byLabel[$0] ?? [] }
        for (file, chart) in ScenarioCharts.charts(ordered, trace: name, load: mainLoad) { figures.append((file, chart.render())) }
        return byLabel
    }

    /// Section 3: `balanced` with each axis weight set to zero in turn.
    mutating func ablation(_ builders: [WorkloadBuilder]) throws {
        let base = try policy("balanced")
        let axes: [(String, WritableKeyPath<AxisWeights, Double>?)] = [
            ("all axes", nil), ("no ttft", \.ttft), ("no cost", \.cost), ("no affinity", \.affinity), ("no headroom", \.headroom),
            ("no proximity", \.proximity),
        ]
        text += [
            "## 3. Ablation: what each axis of `balanced` is worth",
            "",
            "The global fleet at \(Format.percent(settings.mainLoad)) offered load, `balanced` with one axis weight set to zero "
                + "(weights otherwise \(Format.weights(base.weights))).",
            "",
        ]
        for builder in builders {
            let requests = builder.requests(atLoad: settings.mainLoad)
            text += [
                "### \(builder.trace.name)", "",
                "| variant | TTFT p50 | p99 | SLO met | $ / 1M tokens | cache hits | mean round trip | mean wait |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for (label, axis) in axes {
                var policy = base
                policy.name = label
                if let axis { policy.weights[keyPath: axis] = 0 }
                let (row, _) = simulate(
                    "ablation", trace: builder.trace.name, fleetName: "global", fleet: settings.globalFleet, label: label, requests: requests,
                    settings: simulationSettings(policy), load: settings.mainLoad)
                let summary = row.summary
                text.append(
                    "| \(label) | \(Format.ms(summary.timeToFirstToken.p50)) | \(Format.ms(summary.timeToFirstToken.p99)) | "
                        + "\(Format.percent(summary.sloAttainment)) | \(Format.fixed(summary.costPerMillionTokens, 3)) | \(Format.percent(row.cacheHitRate)) | "
                        + "\(Format.ms(row.meanRoundTripSeconds * 1_000)) | \(Format.ms(row.meanWaitSeconds * 1_000)) |")
            }
            text.append("")
        }
    }

    /// Section 4: a site fails for the middle third of the run.
    mutating func outage(_ builder: WorkloadBuilder) throws {
        let start = settings.runSeconds / 3
        let end = 2 * settings.runSeconds / 3
        let load = min(settings.mainLoad, 0.7)
        let requests = builder.requests(atLoad: load)
        text += [
            "## 4. A site outage mid-run",
            "",
            "\(settings.outageSite) fails (connections refused, running requests lost) from \(Format.fixed(start, 0)) s to "
                + "\(Format.fixed(end, 0)) s of a \(Format.fixed(settings.runSeconds, 0)) s run, \(builder.trace.name) trace at "
                + "\(Format.percent(load)) offered load. Columns marked *during* count requests that arrived while it was down; "
                + "*after* the minute after it came back.",
            "",
            "| policy | errors during | SLO met during | TTFT p99 during | TTFT p99 after | errors overall |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        let rows: [(String, Fleet, String)] =
            [(EvidenceReport.oneRegion, settings.centralFleet, "least-inflight")] + EvidenceSettings.comparedPolicies.map { ($0, settings.globalFleet, $0) }
        for (label, fleet, policyName) in rows {
            let outage = try Outage(parsing: "\(settings.outageSite)@\(start)-\(end)", in: fleet)
            let (overall, simulation) = simulate(
                "outage", trace: builder.trace.name, fleetName: label == EvidenceReport.oneRegion ? "central" : "global", fleet: fleet, label: label, requests: requests,
                settings: simulationSettings(try policy(policyName), outages: [outage]), load: load)
            let during = ScenarioResult(label: label, simulation: simulation, ttftTargetSeconds: target) { $0.arrival >= start && $0.arrival < end }
            let after = ScenarioResult(label: label, simulation: simulation, ttftTargetSeconds: target) { $0.arrival >= end && $0.arrival < end + 60 }
            outageDuring[label] = during
            text.append(
                "| \(label) | \(Format.count(during.summary.errors)) of \(Format.count(during.summary.requests)) | \(Format.percent(during.summary.sloAttainment)) | "
                    + "\(Format.p99(during.summary)) | \(Format.p99(after.summary)) | "
                    + "\(Format.count(overall.summary.errors)) of \(Format.count(overall.summary.requests)) |")
        }
        text += [
            "",
            "The one-region fleet loses everything while its region is down: no policy routes around a single site. Errors "
                + "overall include the requests queued or streaming in the failed site when it went down: a stream cannot be "
                + "moved, and a queued request is retried on the next candidates of its original decision, which under "
                + "`centralized` are in the same site.",
            "",
        ]
    }

    /// Section 5: prefix affinity on a trace with shared-prefix block ids.
    mutating func prefixAffinity(_ recorded: WorkloadBuilder) throws {
        let balanced = try policy("balanced")
        var compressed = recorded
        compressed.timeScale = 8
        text += [
            "## 5. Prefix affinity (\(recorded.trace.name))",
            "",
            "The trace's block ids become shared prompt prefixes; engines keep a prefix cache of their KV capacity. "
                + "*Router blind to prefixes* is `balanced` without the prefix blocks in its routing requests: it can neither "
                + "prefer the endpoint holding a prefix nor count the shorter prefill (the engines still cache).",
            "",
            "Engines' prefix caches hold what their KV memory holds (about a thousand 512-token blocks on an H100 "
                + "serving an 8B model). At the recorded pace a conversation's next turn comes minutes later (median about "
                + "5 minutes), by which time a busy engine has evicted it; *8x* replays the trace eight times faster, with "
                + "eight times fewer conversations for the same load, so turns come back within tens of seconds.",
            "",
            "| pace | load | variant | cache hits | TTFT p50 | p99 | mean prefill | SLO met |",
            "|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        var findings: [String] = []
        for (pace, builder, load) in [("1x", recorded, settings.mainLoad), ("8x", compressed, settings.loads.first ?? 0.5), ("8x", compressed, settings.mainLoad)] {
            let requests = builder.requests(atLoad: load)
            let variants: [(String, RoutingPolicy, Bool)] = [
                ("balanced", balanced, true), ("balanced, router blind to prefixes", balanced, false),
                ("least-inflight", try policy("least-inflight"), true), ("round-robin", try policy("round-robin"), true),
            ]
            var group: [String: ScenarioResult] = [:]
            for (label, policy, sees) in variants {
                let (row, _) = simulate(
                    "prefix \(pace)", trace: builder.trace.name, fleetName: "global", fleet: settings.globalFleet, label: label, requests: requests,
                    settings: simulationSettings(policy, routerSeesPrefixes: sees), load: load)
                text.append(
                    "| \(pace) | \(Format.percent(load)) | \(label) | \(Format.percent(row.cacheHitRate)) | \(Format.ms(row.summary.timeToFirstToken.p50)) | "
                        + "\(Format.ms(row.summary.timeToFirstToken.p99)) | \(Format.ms(row.meanUnloadedPrefillSeconds * 1_000)) | "
                        + "\(Format.percent(row.summary.sloAttainment)) |")
                group[label] = row
            }
            if let seeing = group["balanced"], let blind = group["balanced, router blind to prefixes"], let spread = group["least-inflight"] {
                findings.append(
                    "- \(pace) at \(Format.percent(load)): prefix-aware `balanced` reuses \(Format.percent(seeing.cacheHitRate)) of prompt tokens, "
                        + "blind \(Format.percent(blind.cacheHitRate)), `least-inflight` \(Format.percent(spread.cacheHitRate)); TTFT p50 "
                        + "\(Format.ms(seeing.summary.timeToFirstToken.p50)) / \(Format.ms(blind.summary.timeToFirstToken.p50)) / "
                        + "\(Format.ms(spread.summary.timeToFirstToken.p50)).")
            }
        }
        text += [""] + findings + [
            "",
            "Affinity pays when a conversation comes back while its prefix is still cached; when it does not, steering "
                + "towards a prefix only narrows the choice of endpoint.",
            "",
        ]
    }

    /// Section 6: where the win comes from, and where it does not hold.
    mutating func limits(_ builders: [WorkloadBuilder], sweeps: [[String: [ScenarioResult]]]) {
        guard let lowIndex = settings.loads.indices.first, let highIndex = settings.loads.indices.last else { return }
        text += [
            "## 6. Where the win comes from, and where the claim does not hold",
            "",
            "The mean TTFT split into the round trip to the serving site, the unloaded prefill, and the wait behind other work:",
            "",
            "| trace | load | fleet and policy | TTFT mean | round trip | prefill | wait | $ / 1M tokens |",
            "|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        var findings: [String] = []
        var nearSaturation: [String] = []
        for (builder, sweep) in zip(builders, sweeps) {
            guard let central = sweep[EvidenceReport.oneRegion], let balanced = sweep["balanced"], let nearest = sweep["nearest"] else { continue }
            for index in [lowIndex, highIndex] {
                for (label, rows) in [(EvidenceReport.oneRegion, central), ("global, nearest", nearest), ("global, balanced", balanced)] {
                    let row = rows[index]
                    text.append(
                        "| \(builder.trace.name) | \(Format.percent(settings.loads[index])) | \(label) | \(Format.ms(row.summary.timeToFirstToken.mean)) | "
                            + "\(Format.ms(row.meanRoundTripSeconds * 1_000)) | \(Format.ms(row.meanUnloadedPrefillSeconds * 1_000)) | "
                            + "\(Format.ms(row.meanWaitSeconds * 1_000)) | \(Format.fixed(row.summary.costPerMillionTokens, 3)) |")
                }
                let one = central[index]
                let spread = balanced[index]
                let gain = one.summary.timeToFirstToken.mean - spread.summary.timeToFirstToken.mean
                let distance = (one.meanRoundTripSeconds - spread.meanRoundTripSeconds) * 1_000
                let waiting = (one.meanWaitSeconds - spread.meanWaitSeconds) * 1_000
                findings.append(
                    "- \(builder.trace.name) at \(Format.percent(settings.loads[index])): `balanced` on the global fleet has a mean TTFT "
                        + Format.signed(gain, lower: "lower", higher: "higher") + " than one region; shorter round trips account for "
                        + "\(Format.ms(distance)), and it waits " + Format.signed(waiting, lower: "less", higher: "more")
                        + ". Cost per 1M tokens \(Format.fixed(spread.summary.costPerMillionTokens, 3)) against "
                        + "\(Format.fixed(one.summary.costPerMillionTokens, 3)) (\(Format.change(spread.summary.costPerMillionTokens, one.summary.costPerMillionTokens))).")
            }
            let oneWait = central[highIndex].meanWaitSeconds
            let spreadWait = balanced[highIndex].meanWaitSeconds
            let relative = oneWait > 0 ? (spreadWait - oneWait) / oneWait : 0
            nearSaturation.append(
                "on \(builder.trace.name) the global fleet waits "
                    + (abs(relative) <= 0.1
                        ? "about as long as one pooled region (\(Format.change(spreadWait, oneWait)))"
                        : relative < 0 ? "\(Format.percent(-relative)) less than one pooled region" : "\(Format.percent(relative)) more than one pooled region"))
            let high = nearest[highIndex]
            findings.append(
                "- Distance alone is not the answer: on \(builder.trace.name) at \(Format.percent(settings.loads[highIndex])) `nearest` has TTFT p99 "
                    + "\(Format.ms(high.summary.timeToFirstToken.p99)) against one region's \(Format.ms(central[highIndex].summary.timeToFirstToken.p99)): "
                    + "the sites near the busiest callers saturate while others idle.")
        }
        text += [""] + findings + [
            "- Round trips are tens to a couple of hundred milliseconds; a saturated queue adds seconds. Below the knee, "
                + "spreading out gains the round trip and little else, and the edge sites' higher prices make every token dearer. "
                + "Near saturation what matters is the wait: " + nearSaturation.joined(separator: "; ") + ".",
            "- The simulated engine is a model calibrated from published figures, not a GPU: no preemption, no network "
                + "jitter, one model per fleet, and callers that never give up (so overloaded policies show queues of minutes).",
            "",
        ]
    }

    /// Section 7: one caller population under a residency rule (European callers, EU-only) against
    /// the same traffic without it, on the global fleet under `balanced`.
    mutating func sovereignty(_ builders: [WorkloadBuilder]) throws {
        let fleet = settings.globalFleet
        let balanced = try policy("balanced")
        let ruleNames = settings.sovereigntyRule.map { $0.uppercased() }
        let rule = ResidencyRule(jurisdictions: JurisdictionGroups.builtIn.expand(ruleNames), named: ruleNames)
        let ruleText = ruleNames.joined(separator: "+")
        let allowed = Set(fleet.endpoints.indices.filter { rule.exclusionReason(site: fleet.site(of: fleet.endpoints[$0])) == nil })
        let allowedSites = Set(allowed.map { fleet.endpoints[$0].siteName })
        let region = settings.sovereigntyRegion
        text += ["## 7. The cost of sovereignty", ""]
        guard let first = builders.first, first.metros.contains(where: { $0.region == region }) else {
            text += ["No caller metro is in the region '\(region)'; nothing to compare.", ""]
            return
        }
        let loads = Array(Set([settings.loads.first ?? settings.mainLoad, settings.mainLoad, settings.loads.last ?? settings.mainLoad])).sorted()
        let outageLoad = loads.first ?? settings.mainLoad
        let start = settings.runSeconds / 3
        let end = 2 * settings.runSeconds / 3
        let regionMetros = first.metros.filter { $0.region == region }.map(\.name)
        text += [
            "Callers in \(region) (\(regionMetros.joined(separator: ", "))) belong to a tenant whose data must stay in the \(ruleText) "
                + "(a residency rule, as `residency.tenants` sets it in the gateway); everyone else is unconstrained. Each row pair "
                + "replays the same requests under `balanced` without and with the rule. Under the rule only "
                + (allowedSites.isEmpty ? "no site" : allowedSites.sorted().joined(separator: ", "))
                + " may serve those callers (\(allowed.count) of \(fleet.endpoints.count) endpoints); a request no allowed endpoint can take is "
                + "refused (`residency`, the gateway's 503), never sent abroad, and counts as an SLO miss. The last rows fail "
                + (allowedSites.isEmpty ? "the allowed sites" : allowedSites.sorted().joined(separator: ", "))
                + " from \(Format.fixed(start, 0)) s to \(Format.fixed(end, 0)) s.",
            "",
            "| trace | load | event | rule | \(region): TTFT p50 | p99 | SLO met | refused | everyone: TTFT p50 | p99 | SLO met | \(ruleText) sites GPU busy |",
            "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        var findings: [String] = []
        var refusedWithoutOutage = 0
        var shorterTrip = true
        var slowerEverywhere = true
        var othersAtPeak: [String] = []
        var saturations: [String] = []
        for builder in builders {
            let populations = builder.metros.indices.filter { builder.metros[$0].region == region }
            let members = Set(populations)
            let residency: [ResidencyRule?] = builder.metros.indices.map { members.contains($0) ? rule : nil }
            var pairs: [(load: Double, event: String, free: [ScenarioResult], ruled: [ScenarioResult])] = []
            var demandShare = 0.0
            var capacityShare = 0.0
            /// Europe's busiest minute at the main load against what the allowed endpoints complete.
            var peakRatio = 0.0
            var cases: [(Double, String, [Outage])] = loads.map { ($0, "-", []) }
            if !allowed.isEmpty {
                let outage = Outage(endpoints: allowed.sorted().map { fleet.endpoints[$0].name }, start: start, end: end)
                cases.append((outageLoad, "\(allowedSites.sorted().joined(separator: ", ")) down", [outage]))
            }
            for (load, event, outages) in cases {
                let requests = builder.requests(atLoad: load)
                if load == settings.mainLoad, event == "-", !requests.isEmpty {
                    demandShare = Double(requests.filter { members.contains($0.metro) }.count) / Double(requests.count)
                    let sample = Array(requests.prefix(2_000))
                    let total = FleetCapacity.requestsPerSecond(of: fleet, sample: sample)
                    let allowedRate = FleetCapacity.requestsPerSecond(of: fleet, sample: sample, endpoints: allowed)
                    capacityShare = total > 0 ? allowedRate / total : 0
                    var perMinute: [Int: Int] = [:]
                    for request in requests where members.contains(request.metro) { perMinute[Int(request.arrival / 60), default: 0] += 1 }
                    peakRatio = allowedRate > 0 ? Double(perMinute.values.max() ?? 0) / 60 / allowedRate : 0
                }
                var results: [[ScenarioResult]] = []
                for (label, rules) in [("none", [ResidencyRule?]()), (ruleText, residency)] {
                    var simulation = simulationSettings(balanced, outages: outages)
                    simulation.residency = rules
                    let (everyone, finished) = simulate(
                        "sovereignty", trace: builder.trace.name, fleetName: "global", fleet: fleet,
                        label: "balanced, \(region) \(label)" + (outages.isEmpty ? "" : ", \(event)"), requests: requests, settings: simulation,
                        load: load)
                    let ruled = ScenarioResult(label: label, simulation: finished, ttftTargetSeconds: target) {
                        members.contains($0.metro) && (outages.isEmpty || ($0.arrival >= start && $0.arrival < end))
                    }
                    let all =
                        outages.isEmpty
                        ? everyone : ScenarioResult(label: label, simulation: finished, ttftTargetSeconds: target) { $0.arrival >= start && $0.arrival < end }
                    let others = ScenarioResult(label: label, simulation: finished, ttftTargetSeconds: target) {
                        !members.contains($0.metro) && (outages.isEmpty || ($0.arrival >= start && $0.arrival < end))
                    }
                    let busy = all.sites.filter { allowedSites.contains($0.name) }
                    let gpu = busy.isEmpty ? 0 : busy.map(\.gpuUtilization).reduce(0, +) / Double(busy.count)
                    text.append(
                        "| \(builder.trace.name) | \(Format.percent(load)) | \(outages.isEmpty ? "-" : event + " (arrivals meanwhile)") | \(label) | "
                            + "\(Format.p50(ruled.summary)) | \(Format.p99(ruled.summary)) | \(Format.percent(ruled.summary.sloAttainment)) | "
                            + "\(Format.count(ruled.residencyRefused)) of \(Format.count(ruled.summary.requests)) | "
                            + "\(Format.p50(all.summary)) | \(Format.p99(all.summary)) | \(Format.percent(all.summary.sloAttainment)) | "
                            + "\(Format.percent(gpu)) |")
                    results.append([ruled, all, others])
                }
                pairs.append((load, event, results[0], results[1]))
            }
            // The findings, from the rows above.
            let saturation = demandShare > 0 ? capacityShare / demandShare : 0
            findings.append(
                "- \(builder.trace.name): the \(ruleText) sites hold \(Format.percent(capacityShare)) of the fleet's capacity while \(region) sends "
                    + "\(Format.percent(demandShare)) of the requests, so under the rule those sites alone must carry \(region)'s traffic and "
                    + "saturate on average from about **\(Format.percent(saturation)) offered load**; in its busiest minute at "
                    + "\(Format.percent(settings.mainLoad)) \(region) offers \(Format.fixed(peakRatio, 1))x what they complete.")
            let steady = pairs.filter { $0.event == "-" }
            shorterTrip = shorterTrip && steady.allSatisfy { $0.ruled[0].meanRoundTripSeconds <= $0.free[0].meanRoundTripSeconds }
            slowerEverywhere = slowerEverywhere && steady.allSatisfy { $0.ruled[0].summary.timeToFirstToken.p50 >= $0.free[0].summary.timeToFirstToken.p50 }
            if let high = steady.last {
                othersAtPeak.append(
                    "\(builder.trace.name) at \(Format.percent(high.load)) p99 \(Format.p99(high.ruled[2].summary)) against \(Format.p99(high.free[2].summary)), "
                        + "SLO attainment \(Format.percent(high.ruled[2].summary.sloAttainment)) against \(Format.percent(high.free[2].summary.sloAttainment))")
            }
            saturations.append("\(Format.percent(saturation)) on \(builder.trace.name)")
            if let main = steady.first(where: { $0.load == settings.mainLoad }) ?? steady.last {
                sovereigntyHeadline.append(
                    "\(builder.trace.name) at \(Format.percent(main.load)): TTFT p50 \(Format.ms(main.ruled[0].summary.timeToFirstToken.p50)) vs "
                        + "\(Format.ms(main.free[0].summary.timeToFirstToken.p50)), SLO attainment \(Format.percent(main.ruled[0].summary.sloAttainment)) vs "
                        + "\(Format.percent(main.free[0].summary.sloAttainment))")
            }
            for pair in pairs where pair.event == "-" {
                let (free, ruled) = (pair.free[0], pair.ruled[0])
                let (freeAll, ruledAll) = (pair.free[1], pair.ruled[1])
                let (freeOthers, ruledOthers) = (pair.free[2], pair.ruled[2])
                refusedWithoutOutage += ruled.residencyRefused
                findings.append(
                    "  At \(Format.percent(pair.load)): \(region) TTFT p50 \(Format.ms(ruled.summary.timeToFirstToken.p50)) under the rule against "
                        + "\(Format.ms(free.summary.timeToFirstToken.p50)) without, p99 \(Format.p99(ruled.summary)) against \(Format.p99(free.summary)), "
                        + "SLO attainment \(Format.percent(ruled.summary.sloAttainment)) against \(Format.percent(free.summary.sloAttainment)), "
                        + "mean round trip \(Format.ms(ruled.meanRoundTripSeconds * 1_000)) against \(Format.ms(free.meanRoundTripSeconds * 1_000)); "
                        + "everyone else p99 \(Format.p99(ruledOthers.summary)) against \(Format.p99(freeOthers.summary)); everyone's SLO attainment "
                        + "\(Format.percent(ruledAll.summary.sloAttainment)) against \(Format.percent(freeAll.summary.sloAttainment)); "
                        + "\(Format.count(ruled.residencyRefused)) refused.")
            }
            for pair in pairs where pair.event != "-" {
                let ruled = pair.ruled[0]
                findings.append(
                    "  With \(pair.event) at \(Format.percent(pair.load)): \(Format.count(ruled.residencyRefused)) of \(Format.count(ruled.summary.requests)) "
                        + "\(region) requests arriving meanwhile are refused (`residency`) and \(Format.count(ruled.summary.errors)) fail in all, "
                        + "against \(Format.count(pair.free[0].summary.errors)) failures without the rule, where they are served elsewhere.")
            }
        }
        text += [""] + findings + [
            "- What sovereignty costs: "
                + (shorterTrip
                    ? "not distance here. Under the rule \(region)'s callers travel less (the allowed sites are near them, and "
                        + "without the rule busy nearby sites push them farther); "
                    : "a longer round trip for callers whose nearest site is outside the rule, and more: ")
                + "they lose the rest of the fleet's capacity. \(allowed.count) of \(fleet.endpoints.count) endpoints must absorb their bursts "
                    + "alone, which without the rule spill over the whole fleet"
                + (slowerEverywhere ? ", so their TTFT is longer at every load, the lowest included." : "."),
            "- When it costs most: past the load where the allowed sites saturate on average (" + saturations.joined(separator: ", ")
                + ") their queue grows for the whole run and the wait reaches minutes (the simulated callers never give up); "
                + "below it, in the traffic's bursts; and during an outage of the allowed sites, when the rule turns what would "
                + "have been a detour into refusals. The remedy is capacity inside the jurisdiction, not routing: the rule is a "
                + "hard constraint by design.",
            "- Everyone else, at the highest load: " + othersAtPeak.joined(separator: "; ")
                + " (under the rule against without): the constrained traffic no longer spills onto their sites, but it fills "
                + "the allowed sites they could otherwise use.",
            refusedWithoutOutage == 0
                ? "- Without an outage nothing is refused: "
                    + (fleet.routingFacts.allSatisfy { $0.performance.admissionLimit == nil }
                        ? "the global fleet sets no admission limits, so an overloaded allowed site queues instead of refusing; with "
                            + "`max_concurrency` set, the overflow would be refused (`residency`) rather than sent abroad."
                        : "the allowed sites never reached their admission limits.")
                : "- Without an outage \(Format.count(refusedWithoutOutage)) requests were refused (`residency`): the allowed sites were at "
                    + "their admission limits and the rule forbids the rest of the fleet.",
            "",
        ]
    }

    /// The headline numbers, placed after the setup.
    mutating func headline(_ builders: [WorkloadBuilder], sweeps: [[String: [ScenarioResult]]], kneeLoad: Double?, outage: [String: ScenarioResult]) {
        var lines = ["## Headline", ""]
        if let kneeLoad {
            lines.append("- One region's mean TTFT doubles at **\(Format.percent(kneeLoad)) of its capacity** (section 1); GPU busy gauges say little about it.")
        }
        let mainIndex = settings.loads.enumerated().min { abs($0.element - settings.mainLoad) < abs($1.element - settings.mainLoad) }?.offset ?? 0
        for (builder, sweep) in zip(builders, sweeps) {
            guard let one = sweep[EvidenceReport.oneRegion], let balanced = sweep["balanced"] else { continue }
            let low = 0
            lines.append(
                "- \(builder.trace.name), same GPUs spread over the world with `balanced` against one region: at \(Format.percent(settings.loads[low])) load "
                    + "TTFT p50 \(Format.ms(balanced[low].summary.timeToFirstToken.p50)) vs \(Format.ms(one[low].summary.timeToFirstToken.p50)), "
                    + "p99 \(Format.ms(balanced[low].summary.timeToFirstToken.p99)) vs \(Format.ms(one[low].summary.timeToFirstToken.p99)); "
                    + "at \(Format.percent(settings.loads[mainIndex])) p99 \(Format.ms(balanced[mainIndex].summary.timeToFirstToken.p99)) vs "
                    + "\(Format.ms(one[mainIndex].summary.timeToFirstToken.p99)) and SLO attainment \(Format.percent(balanced[mainIndex].summary.sloAttainment)) vs "
                    + "\(Format.percent(one[mainIndex].summary.sloAttainment)); cost per token "
                    + "\(Format.change(balanced[mainIndex].summary.costPerMillionTokens, one[mainIndex].summary.costPerMillionTokens)).")
            if let nearest = sweep["nearest"], let centralized = sweep["centralized"] {
                lines.append(
                    "  Naive policies on the same global fleet collapse: `nearest` p99 \(Format.ms(nearest[mainIndex].summary.timeToFirstToken.p99)), "
                        + "`centralized` \(Format.ms(centralized[mainIndex].summary.timeToFirstToken.p99)).")
            }
        }
        if let one = outage[EvidenceReport.oneRegion], let balanced = outage["balanced"] {
            lines.append(
                "- \(settings.outageSite) down for a third of the run: one region fails \(Format.count(one.summary.errors)) of "
                    + "\(Format.count(one.summary.requests)) requests arriving meanwhile; the global fleet under `balanced` fails "
                    + "\(Format.count(balanced.summary.errors)) and meets the target for "
                    + "\(Format.percent(balanced.summary.sloAttainment)).")
        }
        if !sovereigntyHeadline.isEmpty {
            lines.append(
                "- Sovereignty has a price when the allowed capacity is small: European callers held to \(settings.sovereigntyRule.joined(separator: "+")) "
                    + "sites against unconstrained, " + sovereigntyHeadline.joined(separator: "; ") + " (section 7).")
        }
        lines += [
            "- Where it does not hold: below the knee the gain is the round trip only, tens of milliseconds, paid for with "
                + "dearer edge GPUs; near saturation the gain depends on the traffic (section 6).",
            "",
        ]
        if let index = text.firstIndex(of: "## 1. One large region under rising load: the knee") {
            text.insert(contentsOf: lines, at: index)
        } else {
            text += lines
        }
    }

    mutating func reproduce() {
        text += [
            "## Reproduce",
            "",
            "```",
            "scripts/evidence        # builds, then: proxima evidence --out docs/evidence.md --figures docs/evidence",
            "```",
            "",
            "\(runs.count) simulated runs, \(Format.count(simulatedRequests)) requests, \(Format.fixed(wallSeconds, 1)) s of simulation "
                + "(\(Format.count(Int(Double(simulatedRequests) / max(wallSeconds, 1e-9)))) requests/s on one core); the JSON of every run "
                + "is written with `--json`.",
            "",
        ]
    }
}

/// Percentiles of a list of seconds, by sorting (for the physical floor).
struct Percentiles {
    var p50 = 0.0
    var p90 = 0.0
    var p99 = 0.0

    init(_ values: [Double]) {
        guard !values.isEmpty else { return }
        let sorted = values.sorted()
        func at(_ q: Double) -> Double { sorted[min(sorted.count - 1, Int((q * Double(sorted.count)).rounded(.up)) - 1)] }
        p50 = at(0.5)
        p90 = at(0.9)
        p99 = at(0.99)
    }
}

/// Number formats of the report.
enum Format {
    static func ms(_ milliseconds: Double) -> String {
        if !milliseconds.isFinite { return "-" }
        if abs(milliseconds) >= 1_000 { return String(format: "%.2f s", milliseconds / 1_000) }
        return String(format: "%.0f ms", milliseconds)
    }

    static func seconds(_ seconds: Double) -> String { ms(seconds * 1_000) }

    /// TTFT p99 of a run, or a dash when nothing was answered.
    static func p99(_ summary: PolicyResult) -> String { summary.timeToFirstToken.count > 0 ? ms(summary.timeToFirstToken.p99) : "-" }
    static func p50(_ summary: PolicyResult) -> String { summary.timeToFirstToken.count > 0 ? ms(summary.timeToFirstToken.p50) : "-" }

    /// "120 ms lower" or "40 ms higher" for a difference in milliseconds (positive meaning lower).
    static func signed(_ milliseconds: Double, lower: String, higher: String) -> String {
        milliseconds >= 0 ? "\(ms(milliseconds)) \(lower)" : "\(ms(-milliseconds)) \(higher)"
    }

    /// "+17%" or "-4%": `value` relative to `reference`.
    static func change(_ value: Double, _ reference: Double) -> String {
        guard reference != 0 else { return "-" }
        let share = (value - reference) / reference
        return (share >= 0 ? "+" : "") + String(format: "%.0f%%", share * 100)
    }
    static func percent(_ share: Double) -> String { String(format: "%.0f%%", share * 100) }
    static func fixed(_ value: Double, _ places: Int) -> String { String(format: "%.\(places)f", value) }

    static func count(_ value: Int) -> String {
        let digits = String(value)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return out
    }

    static func weights(_ weights: AxisWeights) -> String {
        "ttft \(weights.ttft), cost \(weights.cost), affinity \(weights.affinity), headroom \(weights.headroom), proximity \(weights.proximity)"
    }
}
