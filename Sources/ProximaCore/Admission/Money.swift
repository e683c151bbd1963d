/// An amount of US dollars, kept in whole nanodollars (10^-9 USD) so that sums of per-token prices
/// are exact and the same on every replica. Arithmetic saturates instead of trapping; amounts are
/// never negative and at most about 9.2 × 10^9 USD.
public struct Money: Sendable, Hashable, Comparable, CustomStringConvertible {
    public private(set) var nanodollars: Int64

    public init(nanodollars: Int64) {
        self.nanodollars = max(nanodollars, 0)
    }

    /// Dollars rounded to the nearest nanodollar; NaN and negative amounts give zero, amounts too
    /// large for the range give the largest amount.
    public init(dollars: Double) {
        self.init(exactNanodollars: dollars * 1e9)
    }

    init(exactNanodollars value: Double) {
        guard value > 0 else {
            nanodollars = 0
            return
        }
        // Beyond 9.2e18 a Double can round past Int64.max; such amounts saturate.
        nanodollars = value >= 9.2e18 ? Int64.max : Int64(value.rounded())
    }

    public static let zero = Money(nanodollars: 0)

    public var dollars: Double { Double(nanodollars) / 1e9 }

    public static func + (left: Money, right: Money) -> Money {
        let (sum, overflow) = left.nanodollars.addingReportingOverflow(right.nanodollars)
        return Money(nanodollars: overflow ? Int64.max : sum)
    }

    public static func += (left: inout Money, right: Money) { left = left + right }

    public static func < (left: Money, right: Money) -> Bool { left.nanodollars < right.nanodollars }

    /// Dollars with six decimals, e.g. `$0.000150`.
    public var description: String {
        let micro = (nanodollars + 500) / 1000
        let whole = micro / 1_000_000
        let fraction = String(micro % 1_000_000)
        return "$\(whole)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }
}

/// What the serving endpoint charges per token, in US dollars per million tokens.
public struct TokenPrice: Sendable, Equatable {
    public var inputPerMillion: Double
    public var outputPerMillion: Double

    /// Negative, NaN or infinite prices count as zero (configuration validation refuses them).
    public init(inputPerMillion: Double, outputPerMillion: Double) {
        self.inputPerMillion = inputPerMillion.isFinite ? max(inputPerMillion, 0) : 0
        self.outputPerMillion = outputPerMillion.isFinite ? max(outputPerMillion, 0) : 0
    }

    /// The per-token prices of an endpoint's pricing; an endpoint priced only per GPU-hour, or not
    /// at all, costs nothing per token here.
    public init(_ pricing: PricingSettings?) {
        self.init(inputPerMillion: pricing?.inputPerMillion ?? 0, outputPerMillion: pricing?.outputPerMillion ?? 0)
    }

    public static let free = TokenPrice(inputPerMillion: 0, outputPerMillion: 0)

    /// The cost of one answer's usage; negative token counts count as zero.
    public func spend(promptTokens: Int, completionTokens: Int) -> Money {
        // Dollars per million tokens are thousands of nanodollars per token.
        let prompt = AdmissionArithmetic.units(promptTokens) * inputPerMillion * 1000
        let completion = AdmissionArithmetic.units(completionTokens) * outputPerMillion * 1000
        return Money(exactNanodollars: prompt + completion)
    }
}
