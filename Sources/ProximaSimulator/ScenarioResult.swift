import ProximaBench
import ProximaCore

/// One site's share of a simulated run: where requests went, how busy its GPUs were, what they drew.
public struct SiteUsage: Codable, Sendable, Equatable {
    public var name: String
    public var endpoints: Int
    /// Share of the answered requests the site served.
    public var requestShare: Double
    /// Share of the run its engines spent computing (a GPU utilization gauge), averaged over its endpoints.
    public var gpuUtilization: Double
    /// Mean power of all its deployments over the run, in watts.
    public var averagePowerWatts: Double
}

/// One simulated run summarised: the comparison row `proxima demo` prints, plus what only a
/// simulation can see (where the TTFT went, cache hits, per-site utilization and power).
public struct ScenarioResult: Codable, Sendable {
    /// The policy or variant the run used.
    public var label: String
    public var summary: PolicyResult
    /// The offered load the experiment set, as a share of the fleet's capacity, when it set one.
    public var offeredLoad: Double?
    /// Requests offered per second of the run (between the first and the last arrival).
    public var offeredRate: Double
    /// Requests answered within the TTFT target per second of the run.
    public var goodput: Double
    /// Share of answered prompt tokens served from engines' prefix caches.
    public var cacheHitRate: Double
    /// Mean over answered requests of the round trip to the serving endpoint.
    public var meanRoundTripSeconds: Double
    /// Mean over answered requests of the unloaded prefill of their uncached prompt.
    public var meanUnloadedPrefillSeconds: Double
    /// Mean over answered requests of the rest of the TTFT: waiting behind other work.
    public var meanWaitSeconds: Double
    /// Mean over answered requests of the TTFT the router predicted when it chose the endpoint less the
    /// TTFT that came (from the gateway's side, so without the caller's wait before sending).
    public var meanPredictionErrorSeconds: Double
    /// Mean absolute value of the same error.
    public var meanAbsolutePredictionErrorSeconds: Double
    public var sites: [SiteUsage]
    /// Requests refused because no endpoint their population's residency rule allows could take them
    /// (counted in the errors and as SLO misses).
    public var residencyRefused: Int
    /// Virtual seconds from the first arrival until the last request ended.
    public var simulatedSeconds: Double
    /// Wall-clock seconds the simulation took.
    public var wallSeconds: Double

    /// Summarises a finished simulation; `including` picks which requests count (all by default),
    /// for example those that arrived during an outage. Site figures always cover the whole run.
    public init(
        label: String, simulation: FleetSimulation, ttftTargetSeconds: Double, offeredLoad: Double? = nil, wallSeconds: Double = 0,
        including: (SimulatedRequest) -> Bool = { _ in true }
    ) {
        let fleet = simulation.fleet
        let requests = simulation.requests
        var outcomes: [RequestOutcome] = []
        outcomes.reserveCapacity(requests.count)
        var network = 0.0
        var prefill = 0.0
        var wait = 0.0
        var answered = 0
        var predictionError = 0.0
        var absolutePredictionError = 0.0
        var promptTokens = 0
        var cachedTokens = 0
        var first = Double.infinity
        var last = -Double.infinity
        var residencyRefused = 0
        for (index, outcome) in simulation.outcomes.enumerated() where including(requests[index]) {
            let request = requests[index]
            if outcome.error == "residency" { residencyRefused += 1 }
            first = min(first, request.arrival)
            last = max(last, request.arrival)
            outcomes.append(
                RequestOutcome(
                    metro: request.metro, timeToFirstToken: outcome.timeToFirstToken, endToEnd: outcome.endToEnd ?? 0,
                    outputTokens: outcome.outputTokens, lateStart: 0, error: outcome.error,
                    endpoint: outcome.endpoint.map { fleet.endpoints[$0].name }, promptTokens: request.promptTokens))
            guard outcome.error == nil, let ttft = outcome.timeToFirstToken else { continue }
            let roundTrip = outcome.roundTripSeconds ?? 0
            let unloaded = outcome.unloadedPrefillSeconds ?? 0
            network += roundTrip
            prefill += unloaded
            wait += max(0, ttft - roundTrip - unloaded)
            if let predicted = outcome.predictedTTFTSeconds {
                predictionError += predicted - ttft
                absolutePredictionError += abs(predicted - ttft)
            }
            answered += 1
            promptTokens += request.promptTokens
            cachedTokens += outcome.cachedPromptTokens
        }
        let span = last > first ? last - first : 0
        self.label = label
        self.summary = PolicyResult(
            policy: label, outcomes: outcomes, fleet: fleet, ttftTargetSeconds: ttftTargetSeconds, wallSeconds: max(span, 1e-9))
        self.offeredLoad = offeredLoad
        self.offeredRate = span > 0 ? Double(outcomes.count) / span : 0
        self.goodput = span > 0 ? summary.sloAttainment * Double(outcomes.count) / span : 0
        self.residencyRefused = residencyRefused
        self.cacheHitRate = promptTokens > 0 ? Double(cachedTokens) / Double(promptTokens) : 0
        let count = Double(max(answered, 1))
        self.meanRoundTripSeconds = network / count
        self.meanUnloadedPrefillSeconds = prefill / count
        self.meanWaitSeconds = wait / count
        self.meanPredictionErrorSeconds = predictionError / count
        self.meanAbsolutePredictionErrorSeconds = absolutePredictionError / count
        self.simulatedSeconds = simulation.now
        self.wallSeconds = wallSeconds
        let usage = simulation.usage
        let elapsed = max(simulation.now, 1e-9)
        self.sites = fleet.siteNames.enumerated().compactMap { siteIndex, name in
            let members = fleet.endpoints.indices.filter { fleet.endpoints[$0].siteIndex == siteIndex }
            guard !members.isEmpty else { return nil }
            let busy = members.map { usage[$0].busySeconds }.reduce(0, +)
            let energy = members.map { usage[$0].energyJoules }.reduce(0, +)
            return SiteUsage(
                name: name, endpoints: members.count, requestShare: 0, gpuUtilization: busy / elapsed / Double(members.count),
                averagePowerWatts: energy / elapsed)
        }
        for index in sites.indices { sites[index].requestShare = summary.siteShares[sites[index].name] ?? 0 }
    }
}

extension FleetSimulation {
    /// Simulates `requests` under one policy and summarises the run.
    public static func run(
        label: String, fleet: Fleet, requests: [SimulatedRequest], settings: SimulationSettings, ttftTargetSeconds: Double,
        offeredLoad: Double? = nil, progress: ((Double) -> Void)? = nil
    ) -> (result: ScenarioResult, simulation: FleetSimulation) {
        let started = ContinuousClock.now
        var simulation = FleetSimulation(fleet: fleet, requests: requests, settings: settings)
        simulation.run(progress: progress)
        let wall = (ContinuousClock.now - started).seconds
        let result = ScenarioResult(
            label: label, simulation: simulation, ttftTargetSeconds: ttftTargetSeconds, offeredLoad: offeredLoad, wallSeconds: wall)
        return (result, simulation)
    }
}

extension SimulatedRequest {
    /// The requests of a load plan, each from its metro's location.
    public static func from(_ plan: LoadPlan) -> [SimulatedRequest] {
        plan.requests.map {
            SimulatedRequest(
                arrival: $0.sendAt, location: plan.metros[$0.metro].location, metro: $0.metro, promptTokens: $0.inputTokens,
                outputTokens: max(1, $0.outputTokens), prefixBlocks: $0.prefixBlockIDs)
        }
    }
}

extension ScenarioResult {
    /// A Markdown table of several runs, one row each.
    public static func table(_ results: [ScenarioResult]) -> String {
        var lines = [
            "| policy | load | requests | errors | TTFT p50 | p90 | p99 | TPOT p50 | E2E p50 | SLO met | goodput/s | $ / 1M tokens | cache hits | prediction error | busiest site |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for result in results {
            let summary = result.summary
            let busiest = result.sites.max { $0.requestShare < $1.requestShare }
            let cells = [
                result.label, result.offeredLoad.map { Format.percent($0) } ?? "-", "\(summary.requests)", "\(summary.errors)",
                Format.ms(summary.timeToFirstToken.p50), Format.ms(summary.timeToFirstToken.p90), Format.ms(summary.timeToFirstToken.p99),
                Format.ms(summary.timePerOutputToken.p50), Format.ms(summary.endToEnd.p50),
                "\(Format.percent(summary.sloAttainment)) (\(Format.seconds(summary.ttftTargetSeconds)))", Format.fixed(result.goodput, 1),
                Format.fixed(summary.costPerMillionTokens, 3), Format.percent(result.cacheHitRate),
                (result.meanPredictionErrorSeconds >= 0 ? "+" : "") + Format.ms(result.meanPredictionErrorSeconds * 1_000),
                busiest.map { "\($0.name) \(Format.percent($0.requestShare))" } ?? "-",
            ]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }

    /// A Markdown table of where one run's requests went and what each site's GPUs did.
    public func siteTable() -> String {
        var lines = ["| site | endpoints | requests | GPU busy | mean power |", "|---|---:|---:|---:|---:|"]
        for site in sites {
            lines.append(
                "| \(site.name) | \(site.endpoints) | \(Format.percent(site.requestShare)) | \(Format.percent(site.gpuUtilization)) | "
                    + "\(Format.fixed(site.averagePowerWatts, 0)) W |")
        }
        return lines.joined(separator: "\n")
    }
}
