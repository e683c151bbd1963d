/// The clamps that keep admission arithmetic from trapping on any input: costs and times come from
/// callers, engines and clocks, and are brought into ranges where `Double` arithmetic is exact
/// enough and conversions back to integers cannot overflow.
enum AdmissionArithmetic {
    /// The largest number of units a single charge counts: 2^53, below which every integer is exact
    /// in a `Double`. Negative costs count as zero.
    static let maximumUnits = 9_007_199_254_740_992.0

    /// Times are seconds on any clock; beyond ±10^12 s (about 31,700 years) they are clamped.
    static let timeBound = 1e12

    static func units(_ cost: Int) -> Double {
        cost <= 0 ? 0 : min(Double(cost), maximumUnits)
    }

    /// A finite time in the accepted range; a NaN or infinite time is replaced by `fallback`.
    static func time(_ value: Double, fallback: Double) -> Double {
        guard value.isFinite else { return fallback }
        return min(max(value, -timeBound), timeBound)
    }

    /// Whole units of a non-negative amount, rounded down, clamped into `Int`.
    static func wholeUnits(_ value: Double) -> Int {
        guard value > 0 else { return 0 }
        return value >= maximumUnits ? Int(maximumUnits) : Int(value.rounded(.down))
    }

    /// Seconds, clamped to zero and the time bound; NaN counts as zero.
    static func seconds(_ value: Double) -> Double {
        guard value > 0 else { return 0 }
        return min(value, timeBound)
    }
}
