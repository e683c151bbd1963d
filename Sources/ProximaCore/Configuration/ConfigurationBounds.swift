/// The ranges configuration validation accepts for numbers, wherever they come from (the file, the
/// environment, the admin API). Every number is bounded so that arithmetic on it cannot trap and
/// every duration made from it is representable; the ranges are listed in docs/configuration.md.
public enum ConfigurationBounds {
    /// Timeouts and other durations in seconds: at most a day.
    public static let maximumSeconds = 86_400.0
    /// The `slo` policy's TTFT target, hedging's minimum delay and the scrape interval: at most an hour.
    public static let maximumShortSeconds = 3_600.0
    /// Body limits: at most 1 GiB.
    public static let maximumBodyBytes = 1 << 30
    /// Token counts (`context_length`; a request's `max_tokens` is held to the same): 2^31 - 1.
    public static let maximumTokens = Int(Int32.max)
    /// `routing.expected_output_tokens`.
    public static let maximumExpectedOutputTokens = 1_000_000
    /// Counts of connections, requests and probes.
    public static let maximumCount = 1_000_000
    /// Endpoints one request may try.
    public static let maximumAttempts = 16
    /// GPUs of one endpoint.
    public static let maximumGPUs = 1_024
    /// Prices in US dollars (per million tokens or per GPU-hour).
    public static let maximumPrice = 1_000_000.0
    /// Axis weights and the tie tolerance (only ratios of weights matter).
    public static let maximumWeight = 1_000.0
    /// Hedging's delay factor.
    public static let maximumDelayFactor = 100.0

    /// Why `value` is outside `range` (or nil): NaN and infinities are always outside. With
    /// `excludingLowerBound` the lower bound itself is refused too (a positive duration).
    public static func problem(_ value: Double, in range: ClosedRange<Double>, excludingLowerBound: Bool = false, unit: String = "")
        -> String?
    {
        let inside = value.isFinite && range.contains(value) && !(excludingLowerBound && value == range.lowerBound)
        if inside { return nil }
        let suffix = unit.isEmpty ? "" : " " + unit
        let lower = excludingLowerBound ? "above \(format(range.lowerBound))" : "at least \(format(range.lowerBound))"
        return "must be a number \(lower) and at most \(format(range.upperBound))\(suffix), got \(value)"
    }

    /// Why `value` is outside `range`, or nil.
    public static func problem(_ value: Int, in range: ClosedRange<Int>) -> String? {
        range.contains(value) ? nil : "must be between \(range.lowerBound) and \(range.upperBound), got \(value)"
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
