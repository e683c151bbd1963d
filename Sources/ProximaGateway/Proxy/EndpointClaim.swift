import ProximaCore
import Synchronization

/// The right of one request to be open on one endpoint: counted in the endpoint's in-flight and
/// awaiting-first-token figures (and its share of the prefill queue, and a half-open breaker's probe
/// slot) from the moment it is taken until it ends.
///
/// A claim ends exactly once. `succeed`, `fail` and `abandon` end it; any later call is ignored. A
/// claim that is dropped without being ended (the caller vanished between two awaits, a response
/// body that was never written, the losing leg of a hedge) abandons itself in `deinit`, so no path
/// through the request can leave a count behind: an endpoint's counts return to where they were
/// whatever happened to the request.
///
/// Lifecycle: `awaiting` → (`firstToken`) → `streaming` → `ended`; `awaiting` → `ended` directly
/// when the request fails or is abandoned before its first token.
final class EndpointClaim: Sendable {
    let ref: EndpointRef
    /// When the claim was taken, on the routing state's clock: outcomes of requests sent before a
    /// breaker tripped do not close it.
    let claimedAt: Double
    private let state: RoutingState
    private let phase = Atomic<UInt8>(Phase.awaiting)

    private enum Phase {
        static let awaiting: UInt8 = 0
        static let streaming: UInt8 = 1
        static let ended: UInt8 = 2
    }

    /// Wraps a claim already counted in `state` (by `RoutingState.route` or `claim`).
    init(state: RoutingState, ref: EndpointRef, claimedAt: Double) {
        self.state = state
        self.ref = ref
        self.claimedAt = claimedAt
    }

    /// The first token (or the whole answer) arrived; `ttft` is nil when the time says nothing about
    /// time to first token. Only the first call counts.
    func firstToken(ttft: Double?, predicted: Double?) {
        guard phase.compareExchange(expected: Phase.awaiting, desired: Phase.streaming, ordering: .acquiringAndReleasing).exchanged
        else { return }
        state.firstToken(ref, ttft: ttft, predicted: predicted)
    }

    /// The endpoint served the request; `timePerOutputToken` is a stream's measured pace.
    func succeed(timePerOutputToken: Double? = nil) { end(.success, timePerOutputToken: timePerOutputToken) }

    /// The endpoint failed the request (it counts against the endpoint's breaker).
    func fail() { end(.failure) }

    /// The request ended for a reason that says nothing about the endpoint.
    func abandon() { end(.abandoned) }

    /// Whether the claim has ended.
    var isEnded: Bool { phase.load(ordering: .acquiring) == Phase.ended }

    private func end(_ outcome: EndpointOutcome, timePerOutputToken: Double? = nil) {
        let previous = phase.exchange(Phase.ended, ordering: .acquiringAndReleasing)
        guard previous != Phase.ended else { return }
        state.end(
            ref, outcome: outcome, sawFirstToken: previous == Phase.streaming, timePerOutputToken: timePerOutputToken,
            sentAt: claimedAt)
    }

    deinit {
        let previous = phase.load(ordering: .acquiring)
        if previous != Phase.ended {
            state.end(ref, outcome: .abandoned, sawFirstToken: previous == Phase.streaming, sentAt: claimedAt)
        }
    }
}
