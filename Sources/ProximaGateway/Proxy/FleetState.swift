import ProximaCore
import Synchronization

/// The fleet the request path routes over and the live state kept about it (passive health).
/// Reads take a short lock and copy a value; no lock is held across an await.
final class FleetState: Sendable {
    let fleet: Fleet
    private let health: Mutex<EndpointHealthBoard>
    private let origin = ContinuousClock.now

    init(fleet: Fleet, failureCooldownSeconds: Double) {
        self.fleet = fleet
        self.health = Mutex(EndpointHealthBoard(endpointCount: fleet.endpoints.count, cooldownSeconds: failureCooldownSeconds))
    }

    /// Seconds since this state was created, on the monotonic clock: the time Core's models take.
    func now() -> Double {
        let elapsed = ContinuousClock.now - origin
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    var healthBoard: EndpointHealthBoard { health.withLock { $0 } }

    func recordSuccess(_ endpoint: Int) {
        let now = now()
        health.withLock { $0.recordSuccess(endpoint, at: now) }
    }

    func recordFailure(_ endpoint: Int) {
        let now = now()
        health.withLock { $0.recordFailure(endpoint, at: now) }
    }
}
