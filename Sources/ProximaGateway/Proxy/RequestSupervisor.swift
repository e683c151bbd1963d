import NIOCore

/// Why supervised work stopped before it finished.
enum SupervisionStop: Error, Equatable {
    /// The caller closed the connection.
    case callerDisconnected
    /// The deadline passed.
    case deadlineExceeded
}

/// Runs a piece of request work so that it is cancelled when the caller disconnects or a deadline
/// passes. The work runs as a child task; the caller's connection and the clock are watched beside it.
struct RequestSupervisor: Sendable {
    let watch: ConnectionCloseWatch
    let channel: (any Channel)?

    /// Runs `operation`; throws ``SupervisionStop`` when it was cut short. The operation may capture
    /// inout state of the caller: it never outlives this call. Without a deadline only the caller's
    /// connection is watched (for work that bounds its own time).
    func run<Value: Sendable>(
        until deadline: ContinuousClock.Instant?,
        _ operation: () async throws -> Value
    ) async throws -> Value {
        try await withoutActuallyEscaping(operation) { escapable in
            let work = UncheckedSendableBox(escapable)
            return try await withThrowingTaskGroup(of: Outcome<Value>.self) { group in
                group.addTask { .finished(try await work.value()) }
                if let channel {
                    let watch = self.watch
                    group.addTask {
                        await watch.waitForClose(of: channel)
                        return .stopped(.callerDisconnected)
                    }
                }
                if let deadline {
                    group.addTask {
                        try? await Task.sleep(until: deadline, clock: .continuous)
                        return .stopped(.deadlineExceeded)
                    }
                }
                defer { group.cancelAll() }
                while let outcome = try await group.next() {
                    switch outcome {
                    case .finished(let value):
                        return value
                    case .stopped(let reason):
                        if Task.isCancelled { throw CancellationError() }
                        throw reason
                    }
                }
                throw CancellationError()
            }
        }
    }

    private enum Outcome<Value: Sendable>: Sendable {
        case finished(Value)
        case stopped(SupervisionStop)
    }
}

/// Carries a non-Sendable value into a child task that is awaited before the value's owner returns.
struct UncheckedSendableBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
