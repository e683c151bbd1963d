import NIOCore

/// Why supervised work stopped before it finished.
enum SupervisionStop: Error, Equatable {
    /// The caller closed the connection.
    case callerDisconnected
    /// The deadline passed.
    case deadlineExceeded
}

/// Runs a piece of request work so that it is cancelled when the caller disconnects or a deadline
/// passes. A disconnect cancels the running task itself (see ``ConnectionCloseWatch``), which costs
/// no extra task; a deadline runs the work as a child task beside a timer.
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
        guard let channel else { return try await bounded(until: deadline, operation) }
        let registration = withUnsafeCurrentTask { task in task.flatMap { watch.cancelOnClose(of: channel, task: $0) } }
        guard let registration else { throw SupervisionStop.callerDisconnected }
        let value: Value
        do {
            value = try await bounded(until: deadline, operation)
        } catch {
            if watch.release(registration) { throw SupervisionStop.callerDisconnected }
            throw error
        }
        if watch.release(registration) { throw SupervisionStop.callerDisconnected }
        return value
    }

    private func bounded<Value: Sendable>(
        until deadline: ContinuousClock.Instant?,
        _ operation: () async throws -> Value
    ) async throws -> Value {
        guard let deadline else { return try await operation() }
        return try await withoutActuallyEscaping(operation) { escapable in
            let work = UncheckedSendableBox(escapable)
            return try await withThrowingTaskGroup(of: Outcome<Value>.self) { group in
                group.addTask { .finished(try await work.value()) }
                group.addTask {
                    try? await Task.sleep(until: deadline, clock: .continuous)
                    return .stopped(.deadlineExceeded)
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
