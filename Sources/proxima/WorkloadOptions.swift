import ArgumentParser
import ProximaBench
import ProximaCore

/// Where requests come from, for `proxima bench load` and `proxima simulate`: a real trace (scaled)
/// or a synthetic process, and the caller metros.
struct WorkloadOptions: ParsableArguments {
    @Option(help: "Trace: 'azure', 'mooncake' (looked up in --traces-dir) or a file path (.csv Azure format, .jsonl Mooncake format).")
    var trace: String?

    @Option(help: "Directory holding azure-llm-2023-code.csv and mooncake-conversation.jsonl.")
    var tracesDir: String = TraceFiles.shippedDirectory

    @Option(help: "Synthetic workload instead of a trace: poisson or bursty.")
    var synthetic: String?

    @Option(help: "Synthetic: mean requests per second (bursty: the calm rate; bursts are 8x).")
    var rate: Double = 2

    @Option(help: "Synthetic: median prompt tokens.")
    var inputTokens: Int = 1_000

    @Option(help: "Synthetic: median output tokens.")
    var outputTokens: Int = 100

    @Option(help: "Synthetic: spread of the log-normal sizes (0 gives every request the median sizes).")
    var sizeSpread: Double = 0.8

    @Option(help: "Start this many recorded seconds into the trace.")
    var skip: Double = 0

    @Option(help: "Replay the trace this many times faster than recorded.")
    var timeScale: Double = 1

    @Option(help: "Multiply the request rate (0.5 sends half the requests, 2 each twice).")
    var rateScale: Double = 1

    @Option(help: "Cap each request's output tokens.")
    var maxOutputTokens: Int?

    @Option(help: "Comma-separated caller metros (default: all of \(Metro.world.map(\.name).joined(separator: ","))).")
    var metros: String?

    @Option(help: "Hour of the UTC day the run represents (callers follow their local time).")
    var startUTCHour: Double = 14

    /// The trace, or the synthetic workload of `duration` seconds.
    func workload(duration: Double, seed: UInt64) throws -> Trace {
        if let synthetic {
            guard trace == nil else { throw ValidationError("give --trace or --synthetic, not both") }
            guard rate > 0, inputTokens > 0, outputTokens > 0, sizeSpread >= 0 else {
                throw ValidationError("--rate, --input-tokens and --output-tokens must be positive and --size-spread not negative")
            }
            let sizes = SyntheticWorkload.Sizes(medianInputTokens: inputTokens, medianOutputTokens: outputTokens, sigma: sizeSpread)
            switch synthetic {
            case "poisson": return SyntheticWorkload.poisson(rate: rate, duration: duration, sizes: sizes, seed: seed)
            case "bursty":
                return SyntheticWorkload.bursty(calmRate: rate, burstRate: rate * 8, duration: duration, sizes: sizes, seed: seed)
            default: throw ValidationError("--synthetic must be poisson or bursty")
            }
        }
        do {
            return try TraceFiles.load(trace ?? "azure", from: tracesDir)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func selectedMetros() throws -> [Metro] {
        guard let metros else { return Metro.world }
        let names = metros.split(separator: ",").map { String($0.trimmingSpaces()) }
        return try names.map { name in
            guard let metro = Metro.world.first(where: { $0.name == name }) else {
                throw ValidationError("unknown metro '\(name)' (known: \(Metro.world.map(\.name).joined(separator: ", ")))")
            }
            return metro
        }
    }

    /// The requests of one run: the workload's arrivals scaled, each from a metro.
    func plan(_ workload: Trace, metros: [Metro], duration: Double, maxRequests: Int? = nil, replicateRegions: Bool = false, seed: UInt64)
        -> LoadPlan
    {
        replicateRegions
            ? LoadPlan(
                replicatingAcross: metros, trace: workload, skipSeconds: skip, timeScale: timeScale, rateScale: rateScale, maxDuration: duration,
                maxRequests: maxRequests, maxOutputTokens: maxOutputTokens, seed: seed)
            : LoadPlan(
                trace: workload, metros: metros, skipSeconds: skip, timeScale: timeScale, rateScale: rateScale, startUTCHour: startUTCHour,
                maxDuration: duration, maxRequests: maxRequests, maxOutputTokens: maxOutputTokens, seed: seed)
    }
}
