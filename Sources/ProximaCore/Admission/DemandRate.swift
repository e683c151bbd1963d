#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Units per second seen recently: a sum of units that decays by half every `halfLife` seconds, so
/// a steady rate r settles at r × halfLife / ln 2 and old traffic fades. Pure, time passed in.
public struct DemandRate: Sendable, Equatable {
    public let halfLife: Double
    public private(set) var weight: Double = 0
    public private(set) var updatedAt: Double

    /// A half-life that is not a positive finite number counts as one second.
    public init(halfLife: Double, at: Double) {
        self.halfLife = halfLife.isFinite && halfLife > 0 ? min(halfLife, AdmissionArithmetic.timeBound) : 1
        updatedAt = AdmissionArithmetic.time(at, fallback: 0)
    }

    public mutating func record(units: Double, at: Double) {
        weight = decayed(to: at) + (units > 0 ? min(units, AdmissionArithmetic.maximumUnits) : 0)
        updatedAt = AdmissionArithmetic.time(at, fallback: updatedAt)
    }

    /// The estimated rate at `at`, units per second.
    public func perSecond(at: Double) -> Double {
        decayed(to: at) * Self.ln2 / halfLife
    }

    private func decayed(to at: Double) -> Double {
        let elapsed = AdmissionArithmetic.time(at, fallback: updatedAt) - updatedAt
        guard elapsed > 0 else { return weight }
        return weight * exp2(-elapsed / halfLife)
    }

    private static let ln2 = 0.693_147_180_559_945_3
}
