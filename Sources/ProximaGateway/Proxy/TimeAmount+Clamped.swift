import NIOCore
import ProximaCore

extension TimeAmount {
    /// A NIO time amount from seconds that cannot trap, like `Duration.seconds(clampedSeconds:)`:
    /// negative and NaN give zero, more than a century gives a century.
    static func seconds(clampedSeconds seconds: Double) -> TimeAmount {
        .nanoseconds(Duration.seconds(clampedSeconds: seconds).nanoseconds)
    }
}
