import ProximaCore
import Synchronization

/// Runs an `EngineModel` in real time: engine time follows the wall clock (divided by the slowdown
/// fault), one task sleeps until the engine's next step ends, and each request's events are handed
/// to it through its own stream. The model is only touched under a short lock, never across an await.
final class EngineDriver: Sendable {
    fileprivate struct State {
        var model: EngineModel
        var sinks: [Int: AsyncStream<EngineEvent>.Continuation] = [:]
        var nextID = 0
        /// Engine time = engineAnchor + (wall - wallAnchor) / slowdown.
        var wallAnchor: ContinuousClock.Instant
        var engineAnchor: Double = 0
        var slowdown: Double = 1
        /// Time-to-first-token and inter-token samples for the metrics histograms.
        var metrics = EngineMetricsRecorder()
        var firstTokenAt: [Int: Double] = [:]
        var lastTokenAt: [Int: Double] = [:]
        var arrivals: [Int: Double] = [:]

        func engineTime(at wall: ContinuousClock.Instant) -> Double {
            engineAnchor + (wall - wallAnchor).seconds / slowdown
        }

        func wallTime(ofEngineTime time: Double) -> ContinuousClock.Instant {
            wallAnchor + .nanoseconds(Int64((time - engineAnchor) * slowdown * 1e9))
        }
    }

    private let state: Mutex<State>
    private let kick: AsyncStream<Void>.Continuation
    private let kicks: AsyncStream<Void>
    let profile: GPUProfile

    init(profile: GPUProfile) {
        self.profile = profile
        self.state = Mutex(State(model: EngineModel(profile: profile, reportsEveryToken: true), wallAnchor: .now))
        (kicks, kick) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues a request; its events arrive on the returned stream, which finishes after `.finished`.
    func submit(promptTokens: Int, outputTokens: Int, prefixBlockIDs: [UInt64]) -> (id: Int, events: AsyncStream<EngineEvent>) {
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream()
        let id: Int = state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            let now = state.engineTime(at: .now)
            state.sinks[id] = continuation
            state.arrivals[id] = now
            state.model.submit(
                EngineRequest(id: id, promptTokens: promptTokens, outputTokens: max(1, outputTokens), prefixBlockIDs: prefixBlockIDs, arrival: now),
                at: now)
            return id
        }
        kick.yield()
        return (id, stream)
    }

    /// Changes the slowdown factor from now on, keeping engine time continuous.
    func setSlowdown(_ factor: Double) {
        state.withLock { state in
            let wall = ContinuousClock.now
            state.engineAnchor = state.engineTime(at: wall)
            state.wallAnchor = wall
            state.slowdown = max(1, factor)
        }
        kick.yield()
    }

    /// The wall-clock instant an engine time corresponds to.
    func wallTime(ofEngineTime time: Double) -> ContinuousClock.Instant {
        state.withLock { $0.wallTime(ofEngineTime: time) }
    }

    /// A consistent reading of the engine's state for `/metrics`.
    func snapshot() -> EngineSnapshot {
        state.withLock { state in
            let now = state.engineTime(at: .now)
            return EngineSnapshot(
                running: state.model.runningCount, waiting: state.model.waitingCount, kvUsage: state.model.kvUsage,
                prefixCacheQueries: state.model.prefixCacheQueries, prefixCacheHits: state.model.prefixCacheHits,
                promptTokens: state.model.promptTokensProcessed + state.model.cachedPromptTokens,
                generatedTokens: state.model.generatedTokens, powerWatts: state.model.powerWatts(at: now), busySeconds: state.model.busySeconds,
                energyJoules: state.model.energyJoules, metrics: state.metrics)
        }
    }

    /// Steps the engine until cancelled.
    func run() async {
        var kickIterator = kicks.makeAsyncIterator()
        while !Task.isCancelled {
            let next: ContinuousClock.Instant? = state.withLock { state in
                state.model.nextEventTime().map { state.wallTime(ofEngineTime: $0) }
            }
            if let next {
                if next > .now { try? await Task.sleep(until: next, clock: .continuous) }
            } else {
                guard await kickIterator.next() != nil else { return }
                continue
            }
            let deliveries: [(AsyncStream<EngineEvent>.Continuation, EngineEvent, Bool)] = state.withLock { state in
                let events = state.model.advance(to: state.engineTime(at: .now))
                var deliveries: [(AsyncStream<EngineEvent>.Continuation, EngineEvent, Bool)] = []
                deliveries.reserveCapacity(events.count)
                for event in events {
                    state.record(event)
                    guard let sink = state.sinks[event.id] else { continue }
                    var finished = false
                    if case .finished = event {
                        state.sinks[event.id] = nil
                        finished = true
                    }
                    deliveries.append((sink, event, finished))
                }
                return deliveries
            }
            for (sink, event, finished) in deliveries {
                sink.yield(event)
                if finished { sink.finish() }
            }
        }
    }
}

extension EngineDriver.State {
    fileprivate mutating func record(_ event: EngineEvent) {
        switch event {
        case .firstToken(let id, let time):
            if let arrival = arrivals[id] { metrics.timeToFirstToken.record(time - arrival) }
            lastTokenAt[id] = time
        case .token(let id, _, let time):
            if let last = lastTokenAt[id] { metrics.interTokenLatency.record(time - last) }
            lastTokenAt[id] = time
        case .finished(let id, _, _, _, _):
            arrivals[id] = nil
            lastTokenAt[id] = nil
            firstTokenAt[id] = nil
            metrics.finishedRequests += 1
        }
    }
}

/// A reading of an emulated engine for its metrics endpoint.
struct EngineSnapshot: Sendable {
    var running: Int
    var waiting: Int
    var kvUsage: Double
    var prefixCacheQueries: Int
    var prefixCacheHits: Int
    var promptTokens: Int
    var generatedTokens: Int
    var powerWatts: Double
    /// Seconds of completed engine steps: GPU busy time.
    var busySeconds: Double
    /// Energy of completed steps and idle time so far.
    var energyJoules: Double
    var metrics: EngineMetricsRecorder
}

/// Cumulative histograms with vLLM's bucket bounds.
struct EngineMetricsRecorder: Sendable {
    struct CumulativeHistogram: Sendable {
        let bounds: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0

        init(bounds: [Double]) {
            self.bounds = bounds
            self.counts = Array(repeating: 0, count: bounds.count)
        }

        mutating func record(_ value: Double) {
            sum += value
            count += 1
            for index in bounds.indices where value <= bounds[index] { counts[index] += 1 }
        }
    }

    var timeToFirstToken = CumulativeHistogram(bounds: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560])
    var interTokenLatency = CumulativeHistogram(bounds: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80])
    var finishedRequests = 0
}

