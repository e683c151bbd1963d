import ProximaCache
import Synchronization

/// A cacheable request on its way upstream, which identical requests arriving meanwhile may wait for
/// instead of running it again (request coalescing). It ends once: with the answer (the waiters are
/// served it) or without (they go upstream themselves). New waiters may join only until the leader's
/// answer starts reaching its caller: a stream that already started is not waited for.
final class CacheFlight: Sendable {
    private struct State {
        var waiters: [Int: CheckedContinuation<CachedAnswer?, Never>] = [:]
        var nextWaiter = 0
        var ended = false
        var answer: CachedAnswer?
        var started = false
    }

    private let state = Mutex(State())

    /// Whether a request arriving now may wait for this one.
    var isJoinable: Bool { state.withLock { !$0.started && !$0.ended } }

    /// The leader's answer started reaching its caller: no new waiters.
    func markStarted() { state.withLock { $0.started = true } }

    /// Ends the flight: `answer` (nil when there is none to share) goes to every waiter.
    func end(with answer: CachedAnswer?) {
        let waiters = state.withLock { state -> [CheckedContinuation<CachedAnswer?, Never>] in
            guard !state.ended else { return [] }
            state.ended = true
            state.answer = answer
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: answer) }
    }

    /// Waits for the flight's answer, at most `timeout`; nil when it ended without one, when the
    /// time ran out, or when the waiting task was cancelled.
    func wait(timeout: Duration) async -> CachedAnswer? {
        await withTaskGroup(of: CachedAnswer?.self) { group in
            group.addTask { await self.answer() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// The answer once the flight ends (nil at once if the task is cancelled).
    private func answer() async -> CachedAnswer? {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let immediate = state.withLock { state -> CachedAnswer?? in
                    if state.ended { return .some(state.answer) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }
}
