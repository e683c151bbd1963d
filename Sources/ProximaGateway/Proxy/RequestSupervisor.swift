import NIOCore
import ProximaCore
import Synchronization

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
        if let eventLoop = channel?.eventLoop { return try await bounded(until: deadline, on: eventLoop, operation) }
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

    /// The deadline as a timer on the connection's event loop that cancels the one child task doing
    /// the work: a request pays for one task, not for a second one sleeping beside it. When the timer
    /// fired, the work's own outcome is dropped (whatever it holds ends itself) and the deadline is
    /// what is thrown, as with the sleeping task.
    private func bounded<Value: Sendable>(
        until deadline: ContinuousClock.Instant,
        on eventLoop: any EventLoop,
        _ operation: () async throws -> Value
    ) async throws -> Value {
        let timer = DeadlineTimer()
        return try await withoutActuallyEscaping(operation) { escapable in
            let work = UncheckedSendableBox(escapable)
            return try await withThrowingTaskGroup(of: Value.self) { group in
                group.addTask {
                    guard withUnsafeCurrentTask(body: { task in task.map { timer.register($0) } ?? false }) else {
                        throw SupervisionStop.deadlineExceeded
                    }
                    defer { timer.unregister() }
                    return try await work.value()
                }
                let left = deadline - ContinuousClock.now
                let scheduled = eventLoop.scheduleTask(deadline: .now() + .nanoseconds(max(0, left.nanoseconds))) { timer.fire() }
                defer { scheduled.cancel() }
                let result: Result<Value?, any Error>
                do { result = .success(try await group.next()) } catch { result = .failure(error) }
                if timer.fired {
                    if Task.isCancelled { throw CancellationError() }
                    throw SupervisionStop.deadlineExceeded
                }
                switch result {
                case .success(let value?): return value
                case .success(nil): throw CancellationError()
                case .failure(let error): throw error
                }
            }
        }
    }

    private enum Outcome<Value: Sendable>: Sendable {
        case finished(Value)
        case stopped(SupervisionStop)
    }
}

/// The state a deadline timer shares with the task it may cancel: the task is cancelled only while
/// registered (under the lock), so a finished task is never touched.
final class DeadlineTimer: Sendable {
    private struct State: @unchecked Sendable {
        var task: UnsafeCurrentTask?
        var fired = false
    }
    private let state = Mutex(State())

    /// False when the deadline passed before the work started.
    func register(_ task: UnsafeCurrentTask) -> Bool {
        state.withLock { state in
            guard !state.fired else { return false }
            state.task = task
            return true
        }
    }

    func unregister() { state.withLock { $0.task = nil } }

    func fire() {
        state.withLock { state in
            state.fired = true
            state.task?.cancel()
        }
    }

    var fired: Bool { state.withLock { $0.fired } }
}

/// Carries a non-Sendable value into a child task that is awaited before the value's owner returns.
struct UncheckedSendableBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
