extension Duration {
    /// The duration in seconds, as the models in this module take time.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    /// The duration in whole nanoseconds, as NIO and the HTTP client take timeouts; saturates at
    /// `Int64.max` and `Int64.min` (about 292 years) instead of trapping.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, sumOverflow) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        if sumOverflow { return whole < 0 ? .min : .max }
        return sum
    }

    /// The longest duration made from seconds by ``seconds(clampedSeconds:)``: a century.
    public static let maximumClampedSeconds: Int64 = 3_153_600_000

    /// A duration from seconds that cannot trap, for every `Double` that comes from outside or from a
    /// prediction: negative values and NaN give zero, values beyond a century (infinity included)
    /// give a century. `Duration.seconds(_: Double)` traps on those.
    public static func seconds(clampedSeconds seconds: Double) -> Duration {
        guard seconds > 0 else { return .zero }
        guard seconds < Double(maximumClampedSeconds) else { return .seconds(maximumClampedSeconds) }
        return .nanoseconds(Int64(seconds * 1e9))
    }
}

extension Int {
    /// The integer part of `value`, saturating at `Int.min` and `Int.max` instead of trapping; NaN
    /// gives zero. For numbers that come from outside or from arithmetic on them.
    public init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= 9.223372036854775807e18 {
            self = .max
        } else if value <= -9.223372036854775808e18 {
            self = .min
        } else {
            self = Int(value)
        }
    }
}
