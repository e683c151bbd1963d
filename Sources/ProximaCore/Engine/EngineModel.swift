/// A deterministic model of one continuous-batching inference engine (like vLLM) on a `GPUProfile`,
/// driven by an external virtual clock: requests queue FIFO, are admitted while sequence slots and KV
/// capacity allow, and every engine step decodes one token for each decoding sequence plus a chunk of
/// pending prefill, so that simulations can reproduce TTFT, throughput, cache hits and power.
///
/// Simplifications: KV for a whole request (prompt and output) is reserved at admission and never
/// preempted; a request larger than the whole cache is admitted alone. The prefix cache is accounted
/// apart from those reservations, as if cached blocks lived in otherwise free memory, and a prompt's
/// blocks enter it only once its prefill completes. Power is constant within a step.
public struct EngineModel: Sendable {
    public let profile: GPUProfile
    /// Whether `advance(to:)` reports `.token` events for every token after the first.
    public let reportsEveryToken: Bool

    /// The engine's clock: the latest time it was advanced or submitted to.
    public private(set) var time: Double
    /// Prompt tokens computed by prefill (cached prompt tokens excluded).
    public private(set) var promptTokensProcessed = 0
    /// Prompt tokens served from the prefix cache instead of prefill.
    public private(set) var cachedPromptTokens = 0
    public private(set) var generatedTokens = 0
    /// Energy of completed steps and of idle time up to the clock.
    public private(set) var energyJoules = 0.0
    /// Seconds spent in completed steps: the time the GPUs were busy, as a utilization gauge counts it.
    public private(set) var busySeconds = 0.0
    /// Prompt blocks looked up in the prefix cache.
    public private(set) var prefixCacheQueries = 0
    /// Prompt blocks found in the prefix cache (leading blocks only).
    public private(set) var prefixCacheHits = 0

    private var waiting = FIFOQueue<EngineRequest>()
    private var running: [RunningSequence] = []
    private var reservedTokens = 0
    private var prefixCache: PrefixCache
    private var step: Step?
    /// Events of steps completed inside `submit(_:at:)`, handed out by the next `advance(to:)`.
    private var undeliveredEvents: [EngineEvent] = []

    /// An idle engine whose clock starts at `startTime`.
    public init(profile: GPUProfile, reportsEveryToken: Bool = false, startTime: Double = 0) {
        precondition(profile.prefillTokensPerSecond > 0 && profile.decodeStepBaseSeconds > 0, "the profile needs positive speeds")
        precondition(profile.maxRunningSequences > 0 && profile.maxBatchedTokensPerStep > 0, "the profile needs positive limits")
        self.profile = profile
        self.reportsEveryToken = reportsEveryToken
        self.time = startTime
        self.prefixCache = PrefixCache(capacityBlocks: profile.prefixCacheBlocks)
    }

    public var runningCount: Int { running.count }
    public var waitingCount: Int { waiting.count }
    /// Share of the KV capacity reserved by running requests, 0...1.
    public var kvUsage: Double { profile.kvCapacityTokens > 0 ? Double(reservedTokens) / Double(profile.kvCapacityTokens) : 0 }
    public var isIdle: Bool { step == nil }

    /// Queues a request at `now` (first completing any steps that ended by then). An idle engine starts
    /// a step at once, which other requests arriving at that instant join; a busy engine admits it when
    /// its current step ends. A step that began at `now` because another ended does not take it either:
    /// the engine plans its next step before a caller can react to the previous one's events.
    public mutating func submit(_ request: EngineRequest, at now: Double) {
        undeliveredEvents = advance(to: now)
        waiting.append(request)
        if let step, !(step.startedBySubmission && step.start == time) { return }
        startStep(at: time, bySubmission: true)
    }

    /// When the current step ends, nil when the engine is idle.
    public func nextEventTime() -> Double? { step?.end }

    /// Completes every step that ends at or before `now`, starting each next step as soon as the
    /// previous one ends while there is work, and returns their events in time order.
    public mutating func advance(to now: Double) -> [EngineEvent] {
        var events = undeliveredEvents
        undeliveredEvents = []
        while let current = step, current.end <= now {
            complete(current, into: &events)
            startStep(at: current.end)
        }
        if step == nil, now > time { energyJoules += profile.idleWatts * (now - time) }
        time = max(time, now)
        return events
    }

    /// Power draw at `time` as of the last advance: the current step's if it covers `time`, else idle.
    public func powerWatts(at time: Double) -> Double {
        if let step, step.start <= time, time < step.end { return step.watts }
        return profile.idleWatts
    }

    private mutating func startStep(at start: Double, bySubmission: Bool = false) {
        time = max(time, start)
        admitWaitingRequests()
        var decodingCount = 0
        for index in running.indices {
            running[index].scheduledPrefillTokens = 0
            running[index].decodesThisStep = running[index].prefillRemaining == 0
            if running[index].decodesThisStep { decodingCount += 1 }
        }
        var budget = profile.maxBatchedTokensPerStep - decodingCount
        var prefillTokens = 0
        for index in running.indices where budget > 0 && running[index].prefillRemaining > 0 {
            let chunk = min(budget, running[index].prefillRemaining)
            running[index].scheduledPrefillTokens = chunk
            budget -= chunk
            prefillTokens += chunk
        }
        guard decodingCount > 0 || prefillTokens > 0 else {
            step = nil
            return
        }
        let decodeSeconds = profile.decodeStepSeconds(batch: decodingCount)
        let prefillSeconds = Double(prefillTokens) / profile.prefillTokensPerSecond
        let seconds = decodeSeconds + prefillSeconds
        let demandWatts = (profile.decodeWatts * decodeSeconds + profile.prefillWatts * prefillSeconds) / seconds
        let watts = min(demandWatts, profile.powerCapWatts)
        // Under the cap a step takes as much energy as uncapped, delivered more slowly.
        let duration = demandWatts > watts && watts > 0 ? seconds * demandWatts / watts : seconds
        step = Step(start: time, end: time + duration, watts: watts, startedBySubmission: bySubmission)
    }

    private mutating func admitWaitingRequests() {
        while let request = waiting.first, running.count < profile.maxRunningSequences {
            let outputTokens = max(1, request.outputTokens)
            let needed = min(request.promptTokens + outputTokens, profile.kvCapacityTokens)
            guard reservedTokens + needed <= profile.kvCapacityTokens || running.isEmpty else { break }
            _ = waiting.removeFirst()
            let cachedBlocks = prefixCache.leadingCachedBlocks(of: request.prefixBlockIDs)
            prefixCacheQueries += request.prefixBlockIDs.count
            prefixCacheHits += cachedBlocks
            prefixCache.use(request.prefixBlockIDs.prefix(cachedBlocks))
            // The last prompt token is always computed: its logits give the first output token.
            let cached = min(cachedBlocks * profile.blockTokens, max(0, request.promptTokens - 1))
            cachedPromptTokens += cached
            reservedTokens += needed
            running.append(
                RunningSequence(
                    request: request, outputTokens: outputTokens, reservedTokens: needed, cachedPromptTokens: cached,
                    prefillRemaining: max(1, request.promptTokens - cached)))
        }
    }

    private mutating func complete(_ step: Step, into events: inout [EngineEvent]) {
        energyJoules += step.watts * (step.end - step.start)
        busySeconds += step.end - step.start
        time = step.end
        for index in running.indices {
            if running[index].decodesThisStep {
                running[index].generated += 1
                generatedTokens += 1
                if reportsEveryToken {
                    events.append(.token(id: running[index].request.id, index: running[index].generated - 1, at: step.end))
                }
            } else if running[index].scheduledPrefillTokens > 0 {
                running[index].prefillRemaining -= running[index].scheduledPrefillTokens
                promptTokensProcessed += running[index].scheduledPrefillTokens
                running[index].scheduledPrefillTokens = 0
                guard running[index].prefillRemaining == 0 else { continue }
                prefixCache.use(running[index].request.prefixBlockIDs)
                running[index].generated = 1
                generatedTokens += 1
                events.append(.firstToken(id: running[index].request.id, at: step.end))
            }
            if running[index].isFinished {
                let sequence = running[index]
                reservedTokens -= sequence.reservedTokens
                events.append(
                    .finished(
                        id: sequence.request.id, at: step.end, promptTokens: sequence.request.promptTokens,
                        outputTokens: sequence.generated, cachedPromptTokens: sequence.cachedPromptTokens))
            }
        }
        running.removeAll(where: \.isFinished)
    }
}

/// An admitted request's progress through prefill and decode, and its part in the current step.
private struct RunningSequence: Sendable {
    var request: EngineRequest
    var outputTokens: Int
    var reservedTokens: Int
    var cachedPromptTokens: Int
    var prefillRemaining: Int
    var generated = 0
    var scheduledPrefillTokens = 0
    var decodesThisStep = false

    var isFinished: Bool { generated >= outputTokens }
}

/// The engine step in progress.
private struct Step: Sendable {
    var start: Double
    var end: Double
    var watts: Double
    /// Whether a request arriving on an idle engine started it, so that others arriving at the same
    /// instant may still join.
    var startedBySubmission: Bool
}
