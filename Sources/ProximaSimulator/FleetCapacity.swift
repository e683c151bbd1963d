import ProximaCore

/// How many requests of a workload a fleet can complete per second when every engine always has work
/// waiting: the reference that turns an offered rate into a utilization.
public enum FleetCapacity {
    /// The GPU profile each endpoint runs in simulation (`defaultProfile` when its own is not in the catalog).
    public static func profiles(of fleet: Fleet, defaultProfile: GPUProfile = GPUProfile.named("H100-8B")!) -> [GPUProfile] {
        fleet.endpoints.map { $0.gpu.flatMap { GPUProfile.named($0.profile) } ?? defaultProfile }
    }

    /// Requests per second one deployment completes with `sample` all queued at once: its saturated
    /// throughput for that mix of sizes (and prefix sharing).
    public static func requestsPerSecond(of profile: GPUProfile, sample: [SimulatedRequest]) -> Double {
        guard !sample.isEmpty else { return 0 }
        var engine = EngineModel(profile: profile)
        for (index, request) in sample.enumerated() {
            engine.submit(
                EngineRequest(id: index, promptTokens: request.promptTokens, outputTokens: request.outputTokens, prefixBlockIDs: request.prefixBlocks),
                at: 0)
        }
        var finished = 0
        while let next = engine.nextEventTime() {
            for event in engine.advance(to: next) {
                if case .finished = event { finished += 1 }
            }
        }
        return engine.time > 0 ? Double(finished) / engine.time : 0
    }

    /// The sum over the fleet's endpoints (or over `endpoints` only, for the capacity a residency
    /// rule leaves) of their saturated throughput, each profile measured once.
    public static func requestsPerSecond(of fleet: Fleet, sample: [SimulatedRequest], endpoints: Set<Int>? = nil) -> Double {
        var byProfile: [String: Double] = [:]
        var total = 0.0
        for (index, profile) in profiles(of: fleet).enumerated() where endpoints?.contains(index) ?? true {
            if byProfile[profile.name] == nil { byProfile[profile.name] = requestsPerSecond(of: profile, sample: sample) }
            total += byProfile[profile.name] ?? 0
        }
        return total
    }
}
