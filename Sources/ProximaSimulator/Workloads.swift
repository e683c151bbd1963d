import ProximaBench
import ProximaCore

/// Turns a trace into the requests of one simulated run at a chosen share of a fleet's capacity.
public struct WorkloadBuilder: Sendable {
    public var trace: Trace
    public var metros: [Metro]
    /// Requests per second the fleet completes when saturated with this trace's mix.
    public var capacity: Double
    public var skipSeconds: Double
    public var runSeconds: Double
    /// How many times faster than recorded the trace runs: conversations' turns come closer together,
    /// and fewer conversations make up the same load.
    public var timeScale: Double
    public var seed: UInt64

    /// Measures `fleet`'s capacity for the trace from a sample of its first `sampleSize` requests (or
    /// of `sample`'s, for a short trace whose few requests would all fit in one batch).
    public init(
        trace: Trace, fleet: Fleet, metros: [Metro] = Metro.world, skipSeconds: Double = 0, runSeconds: Double, timeScale: Double = 1,
        seed: UInt64, sample: Trace? = nil, sampleSize: Int = 2_000
    ) {
        self.timeScale = timeScale
        self.trace = trace
        self.metros = metros
        self.skipSeconds = skipSeconds
        self.runSeconds = runSeconds
        self.seed = seed
        let sample = (sample ?? trace).requests.prefix(sampleSize).map {
            SimulatedRequest(
                arrival: 0, location: .init(latitude: 0, longitude: 0), promptTokens: $0.inputTokens, outputTokens: max(1, $0.outputTokens),
                prefixBlocks: $0.prefixBlockIDs)
        }
        self.capacity = FleetCapacity.requestsPerSecond(of: fleet, sample: Array(sample))
    }

    /// The trace's mean arrival rate after time scaling.
    public var recordedRate: Double { trace.duration > 0 ? Double(trace.requests.count) / trace.duration * timeScale : 0 }

    /// Requests offered at `load` times the capacity: every metro replays the trace from its own
    /// time-zone offset (`LoadPlan(replicatingAcross:)`), scaled in rate.
    public func requests(atLoad load: Double) -> [SimulatedRequest] {
        let rateScale = recordedRate > 0 ? load * capacity / recordedRate : 0
        let plan = LoadPlan(
            replicatingAcross: metros, trace: trace, skipSeconds: skipSeconds, timeScale: timeScale, rateScale: rateScale, maxDuration: runSeconds,
            seed: seed)
        return SimulatedRequest.from(plan)
    }
}

/// The least TTFT physics allows each request: the round trip to the site that is nearest in time
/// plus that endpoint's prefill of the whole prompt with nothing else to do (no prefix cache).
public enum PhysicalFloor {
    public static func timeToFirstToken(
        of requests: [SimulatedRequest], in fleet: Fleet, network: RoundTripModel = RoundTripModel()
    ) -> [Double] {
        let profiles = FleetCapacity.profiles(of: fleet)
        return requests.map { request in
            var best = Double.infinity
            for (index, endpoint) in fleet.endpoints.enumerated() {
                let seconds =
                    network.roundTripSeconds(from: request.location, to: endpoint.location)
                    + Double(max(1, request.promptTokens)) / profiles[index].prefillTokensPerSecond
                best = min(best, seconds)
            }
            return best
        }
    }
}
