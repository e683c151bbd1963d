/// How one engine deployment (an accelerator type, a GPU count and a model) performs, draws power
/// and costs: the parameters `EngineModel` simulates it with.
public struct GPUProfile: Sendable, Hashable {
    /// Catalog key, such as "H100-70B".
    public var name: String
    /// Accelerator type: "H100", "H200", "L40S" or "RTX-PRO-6000".
    public var accelerator: String
    public var gpuCount: Int
    /// Size class of the served model: "8B" or "70B".
    public var modelClass: String
    public var prefillTokensPerSecond: Double
    /// Duration of a decode step with one sequence, mostly the time to stream the weights once.
    public var decodeStepBaseSeconds: Double
    /// What each further sequence in the batch adds to a decode step (its KV reads and compute).
    public var decodeStepPerSequenceSeconds: Double
    public var maxRunningSequences: Int
    /// Tokens of KV cache the deployment holds after its weights.
    public var kvCapacityTokens: Int
    /// Tokens per prefix-cache block; requests' `prefixBlockIDs` must use the same block size.
    public var blockTokens: Int
    /// Token budget of one engine step (decode tokens plus chunked-prefill tokens).
    public var maxBatchedTokensPerStep: Int
    /// Power of the whole deployment when it has no work.
    public var idleWatts: Double
    /// Power of the whole deployment while it prefills (compute bound).
    public var prefillWatts: Double
    /// Power of the whole deployment while it decodes (memory bound, well below board power).
    public var decodeWatts: Double
    /// Power limit of the whole deployment; steps that would draw more run slower instead.
    public var powerCapWatts: Double
    /// Rental price of one GPU for one hour, in US dollars.
    public var pricePerGPUHour: Double

    public init(
        name: String, accelerator: String, gpuCount: Int, modelClass: String, prefillTokensPerSecond: Double,
        decodeStepBaseSeconds: Double, decodeStepPerSequenceSeconds: Double, maxRunningSequences: Int,
        kvCapacityTokens: Int, blockTokens: Int, maxBatchedTokensPerStep: Int, idleWatts: Double,
        prefillWatts: Double, decodeWatts: Double, powerCapWatts: Double, pricePerGPUHour: Double
    ) {
        self.name = name
        self.accelerator = accelerator
        self.gpuCount = gpuCount
        self.modelClass = modelClass
        self.prefillTokensPerSecond = prefillTokensPerSecond
        self.decodeStepBaseSeconds = decodeStepBaseSeconds
        self.decodeStepPerSequenceSeconds = decodeStepPerSequenceSeconds
        self.maxRunningSequences = maxRunningSequences
        self.kvCapacityTokens = kvCapacityTokens
        self.blockTokens = blockTokens
        self.maxBatchedTokensPerStep = maxBatchedTokensPerStep
        self.idleWatts = idleWatts
        self.prefillWatts = prefillWatts
        self.decodeWatts = decodeWatts
        self.powerCapWatts = powerCapWatts
        self.pricePerGPUHour = pricePerGPUHour
    }

    /// Seconds of one decode step serving `batch` sequences; 0 when there is nothing to decode.
    public func decodeStepSeconds(batch: Int) -> Double {
        batch > 0 ? decodeStepBaseSeconds + decodeStepPerSequenceSeconds * Double(batch) : 0
    }

    /// Rental price of the whole deployment for one hour, in US dollars.
    public var pricePerHour: Double { pricePerGPUHour * Double(gpuCount) }

    /// Prefix-cache capacity in blocks: the whole KV capacity counted in blocks.
    public var prefixCacheBlocks: Int { blockTokens > 0 ? kvCapacityTokens / blockTokens : 0 }
}
