import NIOCore
import Synchronization

/// Tells in-flight requests when their caller's connection closes, so the upstream work they drive
/// is cancelled at once instead of at the next write (which may be many seconds away between tokens).
///
/// One close callback is registered per connection, not per request: a keep-alive connection that
/// carries a million requests holds one callback, and each request adds and removes its waiter.
final class ConnectionCloseWatch: Sendable {
    private struct Connection {
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var closed = false
    }

    private let connections = Mutex<[ObjectIdentifier: Connection]>([:])
    private let nextWaiterID = Atomic<Int>(0)

    init() {}

    /// Returns when `channel` closes or when the calling task is cancelled, whichever comes first.
    func waitForClose(of channel: any Channel) async {
        let key = ObjectIdentifier(channel)
        let waiterID = nextWaiterID.wrappingAdd(1, ordering: .relaxed).oldValue
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let action: RegistrationOutcome = connections.withLock { connections in
                    if Task.isCancelled { return .resumeNow }
                    if var connection = connections[key] {
                        if connection.closed { return .resumeNow }
                        connection.waiters[waiterID] = continuation
                        connections[key] = connection
                        return .registered
                    }
                    var connection = Connection()
                    connection.waiters[waiterID] = continuation
                    connections[key] = connection
                    return .registeredFirst
                }
                switch action {
                case .resumeNow:
                    continuation.resume()
                case .registered:
                    break
                case .registeredFirst:
                    channel.closeFuture.whenComplete { [self] _ in connectionClosed(key) }
                }
            }
        } onCancel: {
            let continuation = connections.withLock { $0[key]?.waiters.removeValue(forKey: waiterID) }
            continuation?.resume()
        }
    }

    private enum RegistrationOutcome { case resumeNow, registered, registeredFirst }

    private func connectionClosed(_ key: ObjectIdentifier) {
        let waiters = connections.withLock { connections in
            connections.removeValue(forKey: key)?.waiters.values.map { $0 } ?? []
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Connections currently tracked (for tests and the debug endpoint).
    var trackedConnections: Int { connections.withLock { $0.count } }
}
