extension GPUProfile {
    /// Deployments of an 8B and a 70B model on four accelerator types, derived from published figures:
    ///
    /// - Llama2-70B FP16 on 2xH100 decodes at 37 ms per step for one sequence and 52 ms for 32, and
    ///   prefills about 6,100-6,800 tokens/s. The 70B profiles serve FP8 weights (~70 GB) with an FP8 KV
    ///   cache, which halves both: 12,200 tokens/s of prefill (a 5,000-token prompt in the published
    ///   0.41 s), 18.5 ms per step plus 0.24 ms per sequence. The 8B profiles serve BF16 weights (~16 GB).
    /// - KV per token (8 KV heads x 128 dims): 128 KiB for 8B in BF16, 320 KiB for 70B in BF16 and so
    ///   160 KiB in FP8. KV capacity = (90% of GPU memory, vLLM's default share - weights) / bytes per
    ///   token, with 80 GB per H100, 141 GB per H200, 48 GB per L40S and 96 GB per RTX PRO 6000.
    /// - Relative to H100, prefill scales with compute (H200 1x, RTX PRO 6000 0.55x, L40S 0.33x) and
    ///   decode with memory bandwidth (H200 1.3x, RTX PRO 6000 0.55x, L40S 0.4x), both with GPU count
    ///   (tensor parallelism assumed free).
    /// - Board power 700 W (H100, H200), 600 W (RTX PRO 6000), 350 W (L40S): idle draws 18% of it,
    ///   decode 60%, prefill 90%; the cap is board power. Prices per GPU-hour: H100 3.5, H200 5.9,
    ///   L40S 1.4, RTX PRO 6000 1.6 USD.
    ///
    /// H100-70B reproduces the shape of the published TTFT knee (see `EngineCalibrationTests`). Every
    /// profile runs up to 256 sequences (vLLM's default) and 2,048 tokens per step, a chunked-prefill
    /// budget that keeps steps short, with 512-token prefix blocks (Mooncake's).
    public static let catalog: [String: GPUProfile] = {
        var catalog: [String: GPUProfile] = [:]
        for (accelerator, gpuCountFor70B) in [(Accelerator.h100, 2), (.h200, 2), (.l40s, 4), (.rtxPro6000, 2)] {
            for (model, gpuCount) in [(ServedModel.llama8B, 1), (.llama70B, gpuCountFor70B)] {
                let profile = derive(accelerator, model, gpuCount: gpuCount)
                catalog[profile.name] = profile
            }
        }
        return catalog
    }()

    /// The catalog profile with this name, such as "H100-70B".
    public static func named(_ name: String) -> GPUProfile? { catalog[name] }

    private static func derive(_ accelerator: Accelerator, _ model: ServedModel, gpuCount: Int) -> GPUProfile {
        let gpus = Double(gpuCount)
        let scale = gpus / Double(model.referenceGPUCount)
        let kvBytes = (0.9 * accelerator.memoryGigabytes * gpus - model.weightsGigabytes) * 1e9
        let boardWatts = accelerator.boardWatts * gpus
        return GPUProfile(
            name: "\(accelerator.name)-\(model.modelClass)", accelerator: accelerator.name, gpuCount: gpuCount,
            modelClass: model.modelClass,
            prefillTokensPerSecond: model.prefillTokensPerSecond * accelerator.relativeCompute * scale,
            decodeStepBaseSeconds: model.decodeStepBaseSeconds / (accelerator.relativeBandwidth * scale),
            decodeStepPerSequenceSeconds: model.decodeStepPerSequenceSeconds / (accelerator.relativeBandwidth * scale),
            maxRunningSequences: 256, kvCapacityTokens: Int(kvBytes / model.kvBytesPerToken), blockTokens: 512,
            maxBatchedTokensPerStep: 2_048, idleWatts: 0.18 * boardWatts, prefillWatts: 0.9 * boardWatts,
            decodeWatts: 0.6 * boardWatts, powerCapWatts: boardWatts, pricePerGPUHour: accelerator.pricePerGPUHour)
    }
}

/// An accelerator's memory, power and price, and its speed relative to an H100 SXM.
private struct Accelerator {
    var name: String
    var memoryGigabytes: Double
    var boardWatts: Double
    var pricePerGPUHour: Double
    var relativeCompute: Double
    var relativeBandwidth: Double

    static let h100 = Accelerator(
        name: "H100", memoryGigabytes: 80, boardWatts: 700, pricePerGPUHour: 3.5, relativeCompute: 1,
        relativeBandwidth: 1)
    static let h200 = Accelerator(
        name: "H200", memoryGigabytes: 141, boardWatts: 700, pricePerGPUHour: 5.9, relativeCompute: 1,
        relativeBandwidth: 1.3)
    static let l40s = Accelerator(
        name: "L40S", memoryGigabytes: 48, boardWatts: 350, pricePerGPUHour: 1.4, relativeCompute: 0.33,
        relativeBandwidth: 0.4)
    static let rtxPro6000 = Accelerator(
        name: "RTX-PRO-6000", memoryGigabytes: 96, boardWatts: 600, pricePerGPUHour: 1.6, relativeCompute: 0.55,
        relativeBandwidth: 0.55)
}

/// A served model's size and its speed on `referenceGPUCount` H100s.
private struct ServedModel {
    var modelClass: String
    var weightsGigabytes: Double
    var kvBytesPerToken: Double
    var referenceGPUCount: Int
    var prefillTokensPerSecond: Double
    var decodeStepBaseSeconds: Double
    var decodeStepPerSequenceSeconds: Double

    static let llama8B = ServedModel(
        modelClass: "8B", weightsGigabytes: 16, kvBytesPerToken: 128 * 1024, referenceGPUCount: 1,
        prefillTokensPerSecond: 25_000, decodeStepBaseSeconds: 0.008, decodeStepPerSequenceSeconds: 0.000_22)
    static let llama70B = ServedModel(
        modelClass: "70B", weightsGigabytes: 70, kvBytesPerToken: 160 * 1024, referenceGPUCount: 2,
        prefillTokensPerSecond: 12_200, decodeStepBaseSeconds: 0.018_5, decodeStepPerSequenceSeconds: 0.000_24)
}
