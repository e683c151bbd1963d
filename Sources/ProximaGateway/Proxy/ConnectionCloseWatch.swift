import NIOCore
import Synchronization

/// Cancels the request work of a connection when the caller closes it, so the upstream work it
/// drives stops at once instead of at the next write (which may be many seconds away between tokens).
///
/// Work registers the task it runs in; a close cancels every task registered on that connection.
/// One close callback is registered per connection, not per request: a keep-alive connection that
/// carries a million requests holds one callback, and each request adds and removes one entry.
/// No task is created per request.
final class ConnectionCloseWatch: Sendable {
    struct Registration {
        fileprivate let key: ObjectIdentifier
        fileprivate let id: Int
    }

    /// A running task to cancel; only cancelled while registered, that is while it runs.
    private struct RegisteredTask: @unchecked Sendable {
        let task: UnsafeCurrentTask
    }

    private struct Connection {
        var tasks: [Int: RegisteredTask] = [:]
    }

    private let connections = Mutex<[ObjectIdentifier: Connection]>([:])
    private let nextID = Atomic<Int>(0)

    init() {}

    /// Cancels `task` if `channel` closes before ``release(_:)``; nil when the channel has closed
    /// already. The task must call ``release(_:)`` before it ends.
    func cancelOnClose(of channel: any Channel, task: UnsafeCurrentTask) -> Registration? {
        guard channel.isActive else { return nil }
        let key = ObjectIdentifier(channel)
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let task = RegisteredTask(task: task)
        let first = connections.withLock { connections -> Bool in
            if connections[key] != nil {
                connections[key]!.tasks[id] = task
                return false
            }
            connections[key] = Connection(tasks: [id: task])
            return true
        }
        if first { channel.closeFuture.whenComplete { [self] _ in connectionClosed(key) } }
        return Registration(key: key, id: id)
    }

    /// Ends a registration; true when the connection closed meanwhile (and the task was cancelled).
    func release(_ registration: Registration) -> Bool {
        connections.withLock { connections in
            connections[registration.key]?.tasks.removeValue(forKey: registration.id) == nil
        }
    }

    private func connectionClosed(_ key: ObjectIdentifier) {
        // Cancelled under the lock: a task cannot release (and end) between being found and cancelled.
        connections.withLock { connections in
            for registered in connections.removeValue(forKey: key)?.tasks.values ?? [:].values { registered.task.cancel() }
        }
    }

    /// Connections currently tracked (for tests and the debug endpoint).
    var trackedConnections: Int { connections.withLock { $0.count } }
}
