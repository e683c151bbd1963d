#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Generated workloads for when no trace fits: Poisson arrivals, or bursty arrivals that switch
/// between a calm and a burst rate (a two-state Markov-modulated Poisson process). Sizes are drawn
/// from log-normal distributions around the given medians. Deterministic for a seed.
public enum SyntheticWorkload {
    public struct Sizes: Sendable, Equatable {
        public var medianInputTokens: Int
        public var medianOutputTokens: Int
        /// Spread of the log-normal size distributions (0 gives fixed sizes).
        public var sigma: Double

        public init(medianInputTokens: Int = 1_500, medianOutputTokens: Int = 150, sigma: Double = 0.8) {
            self.medianInputTokens = medianInputTokens
            self.medianOutputTokens = medianOutputTokens
            self.sigma = sigma
        }
    }

    /// Requests at a constant mean rate (per second) for `duration` seconds.
    public static func poisson(rate: Double, duration: Double, sizes: Sizes = .init(), seed: UInt64) -> Trace {
        var trace = bursty(
            calmRate: rate, burstRate: rate, meanCalmSeconds: duration, meanBurstSeconds: 1, duration: duration, sizes: sizes, seed: seed)
        trace.name = "poisson"
        return trace
    }

    /// Requests whose rate alternates between `calmRate` and `burstRate`; each state lasts an
    /// exponentially distributed time with the given mean.
    public static func bursty(
        calmRate: Double, burstRate: Double, meanCalmSeconds: Double = 20, meanBurstSeconds: Double = 5,
        duration: Double, sizes: Sizes = .init(), seed: UInt64
    ) -> Trace {
        var random = SplitMix64(seed: seed)
        var requests: [TraceRequest] = []
        var time = 0.0
        var inBurst = false
        var stateEnds = exponential(mean: meanCalmSeconds, &random)
        while time < duration {
            let rate = inBurst ? burstRate : calmRate
            guard rate > 0 else { break }
            let next = time + exponential(mean: 1 / rate, &random)
            if next >= stateEnds {
                // Memorylessness: restart the draw from the state change at the new rate.
                time = stateEnds
                inBurst.toggle()
                stateEnds = time + exponential(mean: inBurst ? meanBurstSeconds : meanCalmSeconds, &random)
                continue
            }
            time = next
            guard time < duration else { break }
            requests.append(
                TraceRequest(
                    time: time, inputTokens: logNormal(median: sizes.medianInputTokens, sigma: sizes.sigma, &random),
                    outputTokens: logNormal(median: sizes.medianOutputTokens, sigma: sizes.sigma, &random)))
        }
        return Trace(name: "bursty", requests: requests)
    }

    static func uniform(_ random: inout SplitMix64) -> Double {
        (Double(random.next() >> 11) + 0.5) / Double(1 << 53)
    }

    static func exponential(mean: Double, _ random: inout SplitMix64) -> Double {
        -mean * log(uniform(&random))
    }

    static func logNormal(median: Int, sigma: Double, _ random: inout SplitMix64) -> Int {
        guard sigma > 0 else { return max(1, median) }
        // Box-Muller for a standard normal draw.
        let normal = (-2 * log(uniform(&random))).squareRoot() * cos(2 * Double.pi * uniform(&random))
        return max(1, Int((Double(max(1, median)) * exp(sigma * normal)).rounded()))
    }
}

extension Metro {
    /// How busy the metro is at an hour of the UTC day, from its local time: full from 08:00 to
    /// 23:00 local, a quarter of that at night.
    public func activity(atUTCHour hour: Double) -> Double {
        var local = (hour + utcOffsetHours).truncatingRemainder(dividingBy: 24)
        if local < 0 { local += 24 }
        return local >= 8 && local < 23 ? 1 : 0.25
    }
}
