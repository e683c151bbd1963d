/// What the router assumes about an endpoint's speed, capacity, power and price: from its GPU
/// profile when the configuration names one, else from conservative defaults and `max_concurrency`.
public struct EndpointPerformance: Sendable, Equatable {
    /// Sequences the engine runs at once (batch slots).
    public var slots: Int
    public var prefillTokensPerSecond: Double
    public var decodeStepBaseSeconds: Double
    public var decodeStepPerSequenceSeconds: Double
    /// Tokens one engine step processes (decode plus chunked prefill).
    public var stepTokenBudget: Int
    public var kvCapacityTokens: Int?
    public var idleWatts: Double?
    public var powerCapWatts: Double?
    /// US dollars per prompt token and per output token.
    public var inputCostPerToken: Double
    public var outputCostPerToken: Double
    /// Requests in flight from this gateway beyond which the endpoint takes no more (`max_concurrency`).
    public var admissionLimit: Int?
    /// Whether the figures come from a GPU profile (else they are defaults).
    public var profiled: Bool

    /// Defaults for an endpoint nothing is known about: a mid-range single-GPU deployment.
    public static let unprofiled = EndpointPerformance(
        slots: 32, prefillTokensPerSecond: 4_000, decodeStepBaseSeconds: 0.02, decodeStepPerSequenceSeconds: 0.0005,
        stepTokenBudget: 2_048, kvCapacityTokens: nil, idleWatts: nil, powerCapWatts: nil, inputCostPerToken: 0,
        outputCostPerToken: 0, admissionLimit: nil, profiled: false)

    public init(
        slots: Int, prefillTokensPerSecond: Double, decodeStepBaseSeconds: Double, decodeStepPerSequenceSeconds: Double,
        stepTokenBudget: Int, kvCapacityTokens: Int?, idleWatts: Double?, powerCapWatts: Double?,
        inputCostPerToken: Double, outputCostPerToken: Double, admissionLimit: Int?, profiled: Bool
    ) {
        self.slots = slots
        self.prefillTokensPerSecond = prefillTokensPerSecond
        self.decodeStepBaseSeconds = decodeStepBaseSeconds
        self.decodeStepPerSequenceSeconds = decodeStepPerSequenceSeconds
        self.stepTokenBudget = stepTokenBudget
        self.kvCapacityTokens = kvCapacityTokens
        self.idleWatts = idleWatts
        self.powerCapWatts = powerCapWatts
        self.inputCostPerToken = inputCostPerToken
        self.outputCostPerToken = outputCostPerToken
        self.admissionLimit = admissionLimit
        self.profiled = profiled
    }

    /// The performance of a configured endpoint. Prices: per token when given; a GPU-hour price
    /// (per GPU) is turned into per-token prices through the deployment's throughput at a quarter
    /// of its batch slots; with neither, the profile's own rental price is used.
    public init(settings: EndpointSettings) {
        var result = EndpointPerformance.unprofiled
        var hourly: Double?
        if let gpu = settings.gpu, let profile = GPUProfile.named(gpu.profile) {
            result.slots = profile.maxRunningSequences
            result.prefillTokensPerSecond = profile.prefillTokensPerSecond
            result.decodeStepBaseSeconds = profile.decodeStepBaseSeconds
            result.decodeStepPerSequenceSeconds = profile.decodeStepPerSequenceSeconds
            result.stepTokenBudget = profile.maxBatchedTokensPerStep
            result.kvCapacityTokens = profile.kvCapacityTokens
            result.idleWatts = profile.idleWatts
            result.powerCapWatts = profile.powerCapWatts
            result.profiled = true
            hourly = (settings.pricing?.gpuHour).map { $0 * Double(profile.gpuCount) } ?? profile.pricePerHour
        } else if let gpuHour = settings.pricing?.gpuHour {
            hourly = gpuHour * Double(settings.gpu?.count ?? 1)
        }
        if let limit = settings.maxConcurrency {
            result.admissionLimit = limit
            if !result.profiled { result.slots = limit }
        }
        if let hourly {
            let perSecond = hourly / 3600
            let batch = max(1, result.slots / 4)
            let decodeTokensPerSecond = Double(batch) / result.decodeStepSeconds(batch: Double(batch))
            result.inputCostPerToken = perSecond / result.prefillTokensPerSecond
            result.outputCostPerToken = perSecond / decodeTokensPerSecond
        }
        if let input = settings.pricing?.inputPerMillion { result.inputCostPerToken = input / 1_000_000 }
        if let output = settings.pricing?.outputPerMillion { result.outputCostPerToken = output / 1_000_000 }
        self = result
    }

    /// Seconds of a decode step with `batch` sequences running.
    @inline(__always)
    public func decodeStepSeconds(batch: Double) -> Double {
        decodeStepBaseSeconds + decodeStepPerSequenceSeconds * batch
    }

    /// Prefill tokens per second while `batch` sequences decode: each step gives the budget left
    /// after one token per running sequence to prefill, and takes a decode step plus that prefill.
    @inline(__always)
    public func prefillRate(batch: Double) -> Double {
        let budget = max(1, Double(stepTokenBudget) - batch)
        return budget / (decodeStepSeconds(batch: batch) + budget / prefillTokensPerSecond)
    }
}
