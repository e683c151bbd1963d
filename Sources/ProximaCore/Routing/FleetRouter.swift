#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The five-axis router. For each request it rules out endpoints that cannot take it (with a
/// reason), rates the rest on predicted TTFT, cost, affinity, headroom and proximity/health, and
/// orders them by the request's policy. Pure given its inputs: the fleet, the telemetry, the time and
/// a random value; the only state it keeps is the round-robin turn.
public final class FleetRouter: Sendable {
    public let roundTrip: RoundTripModel
    /// Where callers that say nothing about their location are assumed to be.
    public let defaultLocation: Coordinates
    private let turn = Atomic<UInt64>(0)

    public init(roundTrip: RoundTripModel = .init(), defaultLocation: Coordinates = .init(latitude: 0, longitude: 0)) {
        self.roundTrip = roundTrip
        self.defaultLocation = defaultLocation
    }

    /// Routes one request.
    /// - Parameters:
    ///   - limit: how many candidates to return in order (the rest are rated but not sorted);
    ///     `Int.max` for a full explanation.
    ///   - explain: also list endpoints that do not serve the model among the exclusions.
    ///   - entropy: a random value; equal inputs and entropy give equal decisions.
    public func decide(
        _ request: RouteRequest, policy: RoutingPolicy, fleet: Fleet, telemetry: FleetTelemetry, now: Double,
        entropy: UInt64, limit: Int = 4, explain: Bool = false
    ) -> RouteDecision {
        var random = SplitMix64(seed: entropy)
        var exclusions: [RouteExclusion] = []
        var evaluations: [Rated] = []
        let levels = [request.model.name] + request.model.fallbacks
        var seen: Set<Int>? = levels.count > 1 ? [] : nil
        let client = UnitVector(request.clientLocation ?? defaultLocation)
        // Distances per site, computed once per decision: many endpoints share a site.
        var siteDistance = [Double](repeating: -1, count: fleet.siteNames.count)
        let expectedOutput = Double(policy.assumedOutputTokens(maxOutputTokens: request.maxOutputTokens))
        let staleAfter = telemetry.settings.staleAfterSeconds
        let facts = fleet.routingFacts
        var bests = Bests()

        for (level, modelName) in levels.enumerated() {
            let indices = fleet.endpointIndices(serving: modelName)
            evaluations.reserveCapacity(evaluations.count + indices.count)
            let contextLength = level == 0 ? request.model.contextLength : fleet.model(named: modelName)?.contextLength
            for index in indices {
                if seen != nil, !seen!.insert(index).inserted { continue }
                let fact = facts[index]
                if let reason = exclusion(
                    request, endpoint: index, facts: fact, telemetry: telemetry, contextLength: contextLength, fleet: fleet,
                    now: now)
                {
                    exclusions.append(.init(endpoint: index, kind: reason.0, reason: reason.1))
                    continue
                }
                var distance = siteDistance[fact.siteIndex]
                if distance < 0 {
                    distance = client.distanceKilometres(to: fact.location)
                    siteDistance[fact.siteIndex] = distance
                }
                let rtt = (2 * distance / Geography.fibreKilometresPerMillisecond * roundTrip.inflation + roundTrip.lastMileMilliseconds) / 1000
                let rated = Rated(
                    evaluate(
                        request, endpoint: index, facts: fact, telemetry: telemetry, level: level, rtt: rtt, distance: distance,
                        expectedOutput: expectedOutput, staleAfter: staleAfter, now: now))
                bests.ttft = min(bests.ttft, rated.predictedTTFTSeconds)
                bests.cost = min(bests.cost, rated.costUSD)
                bests.rtt = min(bests.rtt, rated.rttSeconds)
                bests.anyReuse = bests.anyReuse || rated.cachedPromptTokens > 0
                evaluations.append(rated)
            }
        }
        if explain {
            let serving = Set(evaluations.map(\.endpoint)).union(exclusions.map(\.endpoint))
            for endpoint in fleet.endpoints where !serving.contains(endpoint.index) {
                exclusions.append(.init(endpoint: endpoint.index, kind: .modelNotServed, reason: "does not serve '\(request.model.name)'" + (request.model.fallbacks.isEmpty ? "" : " or its fallbacks")))
            }
        }
        guard !evaluations.isEmpty else {
            return RouteDecision(
                policy: policy.name, kind: policy.kind, candidates: [], evaluatedCount: 0, exclusions: exclusions,
                reason: "no endpoint can take the request")
        }

        let reason = score(&evaluations, request: request, policy: policy, fleet: fleet, bests: bests, random: &random)
        let chosen = pickAmongTies(evaluations, policy: policy, random: &random)
        let ordered = order(evaluations, first: chosen, limit: limit)
        // Only the candidates returned get their full evaluation (recomputed from the same inputs).
        let candidates = ordered.map { rated -> RouteCandidate in
            let index = rated.endpoint
            let fact = facts[index]
            let distance = siteDistance[fact.siteIndex]
            let rtt = (2 * distance / Geography.fibreKilometresPerMillisecond * roundTrip.inflation + roundTrip.lastMileMilliseconds) / 1000
            var evaluation = evaluate(
                request, endpoint: index, facts: fact, telemetry: telemetry, level: rated.fallbackLevel, rtt: rtt,
                distance: distance, expectedOutput: expectedOutput, staleAfter: staleAfter, now: now)
            evaluation.score = rated.score
            evaluation.meetsTarget = rated.meetsTarget
            if policy.kind == .balanced { evaluation.penalties = Self.penalties(Rated(evaluation), bests: bests, prompt: request.promptTokens) }
            let servedModel = levels[rated.fallbackLevel]
            return RouteCandidate(
                endpoint: index, upstreamModel: fleet.endpoints[index].upstreamModelNames[servedModel] ?? servedModel,
                servedModel: servedModel, isFallback: rated.fallbackLevel > 0, evaluation: evaluation)
        }
        return RouteDecision(
            policy: policy.name, kind: policy.kind, candidates: candidates, evaluatedCount: evaluations.count,
            exclusions: exclusions, reason: reason.tie(evaluations.count > 1 ? chosen.ties : 0))
    }

    // MARK: filters

    @inline(__always)
    private func exclusion(
        _ request: RouteRequest, endpoint index: Int, facts: EndpointRoutingFacts, telemetry: FleetTelemetry,
        contextLength: Int?, fleet: Fleet, now: Double
    ) -> (ExclusionKind, String)? {
        // Hard rules first, so that an endpoint outside them is reported as such whatever its state.
        if !request.constraints.isEmpty {
            let endpoint = fleet.endpoints[index]
            let site = fleet.site(of: endpoint)
            for constraint in request.constraints {
                if let reason = constraint.exclusionReason(endpoint: endpoint, site: site) { return (constraint.exclusionKind, reason) }
            }
        }
        if telemetry.statuses[index].drained { return (.drained, "drained by an operator") }
        if !telemetry.statuses[index].breaker.allowsRequest(at: now) {
            let breaker = telemetry.statuses[index].breaker
            if breaker.state(at: now) == .open {
                return (.circuitOpen, "circuit open for \(formatSeconds(breaker.openUntil - now)) more after \(breaker.consecutiveFailures) failures")
            }
            return (.circuitOpen, "circuit half-open with its probe requests in flight")
        }
        if let limit = facts.performance.admissionLimit, telemetry.statuses[index].inFlight >= limit {
            return (.saturated, "at its admission limit (\(telemetry.statuses[index].inFlight) of \(limit) in flight)")
        }
        if let contextLength {
            // Caller numbers: a sum that overflows is certainly too long.
            let (needed, overflow) = request.promptTokens.addingReportingOverflow(request.maxOutputTokens ?? 0)
            if overflow || needed > contextLength {
                return (.contextTooLong, "prompt (\(request.promptTokens) tokens) plus max_tokens (\(request.maxOutputTokens ?? 0)) exceeds the context length \(contextLength)")
            }
        }
        return nil
    }

    // MARK: the axes

    @inline(__always)
    private func evaluate(
        _ request: RouteRequest, endpoint index: Int, facts: EndpointRoutingFacts, telemetry: FleetTelemetry, level: Int,
        rtt: Double, distance: Double, expectedOutput: Double, staleAfter: Double, now: Double
    ) -> CandidateEvaluation {
        let performance = facts.performance
        let status = telemetry.statuses[index]
        let residual = telemetry.residual(of: status, at: now)
        let inFlight = Double(status.inFlight)
        let promptTokens = Double(request.promptTokens)
        var load = inFlight
        var source = LoadSource.gateway
        var kvUsage: Double?
        var power: Double?
        if let engine = status.freshEngine(at: now, staleAfter: staleAfter) {
            if let running = engine.running {
                load = max(inFlight, running + (engine.waiting ?? 0) + Double(status.inFlight - status.inFlightAtRead))
                source = .engine
            }
            kvUsage = engine.kvCacheUsage
            power = engine.powerWatts
        }
        // Slots: the engine's batch limit, or fewer when the KV cache cannot hold that many
        // requests of this size.
        let tokensPerRequest = max(1, promptTokens + expectedOutput)
        var slots = Double(max(1, performance.slots))
        if let kv = performance.kvCapacityTokens { slots = min(slots, max(1, Double(kv) / tokensPerRequest)) }
        let running = min(load, slots)
        let rate = performance.prefillRate(batch: running)
        let step = performance.decodeStepSeconds(batch: running)
        // Waiting for a slot: one frees every (service time / slots) on average, and the request is
        // (load + 1 - slots)-th in line. Then the prefill of requests admitted just before it.
        let service = promptTokens / rate + expectedOutput * step
        let position = max(0, load + 1 - slots)
        let slotWait = position * service / slots
        // Of the requests awaiting a first token, those holding a slot prefill ahead of this one: their
        // own queued prompt tokens when the gateway counted them, else this request's size each.
        let admittedAhead = min(Double(status.awaitingFirstToken), running)
        let prefillAhead =
            status.pendingPrefillTokens > 0
            ? Double(status.pendingPrefillTokens) * admittedAhead / Double(max(1, status.awaitingFirstToken)) / rate
            : admittedAhead * promptTokens / rate
        let modelQueueWait = slotWait + prefillAhead
        let queueWait = max(0, modelQueueWait + residual)
        var cachedTokens = 0
        if !request.prefixBlocks.isEmpty {
            cachedTokens = min(request.promptTokens, telemetry.cachedPrefixBlocks(index, request.prefixBlocks) * request.prefixBlockTokens)
        }
        let prefill = (promptTokens - Double(cachedTokens)) / rate
        let freeSlots = max(0, 1 - load / slots)
        var freeKV = 1.0
        if let kvUsage {
            freeKV = max(0, 1 - kvUsage)
        } else if let kv = performance.kvCapacityTokens {
            freeKV = max(0, 1 - running * tokensPerRequest / Double(kv))
        }
        var powerHeadroom: Double?
        if let power, let cap = performance.powerCapWatts {
            let idle = performance.idleWatts ?? 0
            powerHeadroom = cap > idle ? min(1, max(0, 1 - (power - idle) / (cap - idle))) : nil
        }
        return CandidateEvaluation(
            endpoint: index, fallbackLevel: level, load: load, loadSource: source, inFlight: status.inFlight,
            rttSeconds: rtt, modelQueueWaitSeconds: modelQueueWait, observedCorrectionSeconds: residual,
            queueWaitSeconds: queueWait, prefillSeconds: prefill, predictedTTFTSeconds: rtt + queueWait + prefill,
            costUSD: promptTokens * performance.inputCostPerToken + expectedOutput * performance.outputCostPerToken,
            cachedPromptTokens: cachedTokens, freeSlots: freeSlots, freeKVCache: freeKV, powerHeadroom: powerHeadroom,
            headroom: min(freeSlots, freeKV, powerHeadroom ?? 1), distanceKilometres: distance,
            errorRate: status.errorRate)
    }

    // MARK: policies

    /// What a candidate's policy score needs, kept per candidate while all are rated; the full
    /// `CandidateEvaluation` is made only for the candidates returned.
    struct Rated {
        var endpoint: Int
        var fallbackLevel: Int
        var load: Double
        var inFlight: Int
        var predictedTTFTSeconds: Double
        var costUSD: Double
        var rttSeconds: Double
        var cachedPromptTokens: Int
        var headroom: Double
        var errorRate: Double
        var score = 0.0
        var meetsTarget: Bool?

        @inline(__always)
        init(_ evaluation: CandidateEvaluation) {
            endpoint = evaluation.endpoint
            fallbackLevel = evaluation.fallbackLevel
            load = evaluation.load
            inFlight = evaluation.inFlight
            predictedTTFTSeconds = evaluation.predictedTTFTSeconds
            costUSD = evaluation.costUSD
            rttSeconds = evaluation.rttSeconds
            cachedPromptTokens = evaluation.cachedPromptTokens
            headroom = evaluation.headroom
            errorRate = evaluation.errorRate
        }
    }

    /// The best value of each relative axis among all candidates, for the balanced penalties.
    struct Bests {
        var ttft = Double.infinity
        var cost = Double.infinity
        var rtt = Double.infinity
        var anyReuse = false
    }

    /// The balanced policy's penalties: 0 is the best any candidate achieves on that axis.
    @inline(__always)
    static func penalties(_ candidate: Rated, bests: Bests, prompt: Int) -> AxisPenalties {
        var penalties = AxisPenalties()
        penalties.ttft = min(10, (candidate.predictedTTFTSeconds - bests.ttft) / max(bests.ttft, 0.05))
        penalties.cost = min(10, (candidate.costUSD - bests.cost) / max(bests.cost, 1e-9))
        penalties.affinity = Double(min(candidate.fallbackLevel, 1))
        if bests.anyReuse { penalties.affinity += 1 - Double(candidate.cachedPromptTokens) / Double(max(1, prompt)) }
        penalties.headroom = 1 - candidate.headroom
        penalties.proximity = min(5, (candidate.rttSeconds - bests.rtt) / max(bests.rtt, 0.02)) + 4 * candidate.errorRate
        return penalties
    }

    /// Why the first candidate was picked, finished once ties are known.
    struct Reason {
        var text: String
        func tie(_ count: Int) -> String {
            count > 1 ? text + "; near tie among \(count), the lighter of two random picks" : text
        }
    }

    /// Sets every evaluation's score (lower is better; fallbacks always after the model's own
    /// endpoints) and says what the policy optimised.
    private func score(
        _ evaluations: inout [Rated], request: RouteRequest, policy: RoutingPolicy, fleet: Fleet, bests: Bests,
        random: inout SplitMix64
    ) -> Reason {
        switch policy.kind {
        case .balanced:
            let weights = policy.weights
            for index in evaluations.indices {
                let penalties = Self.penalties(evaluations[index], bests: bests, prompt: request.promptTokens)
                evaluations[index].score =
                    weights.ttft * penalties.ttft + weights.cost * penalties.cost + weights.affinity * penalties.affinity
                    + weights.headroom * penalties.headroom + weights.proximity * penalties.proximity
            }
            return Reason(text: "lowest weighted score over the five axes")
        case .slo:
            let target = policy.ttftTargetSeconds
            let bound = target * (1 - policy.sloMargin)
            var meeting = 0
            for index in evaluations.indices {
                let meets = evaluations[index].predictedTTFTSeconds <= bound
                evaluations[index].meetsTarget = meets
                if meets && evaluations[index].fallbackLevel == 0 { meeting += 1 }
            }
            for index in evaluations.indices {
                let evaluation = evaluations[index]
                if meeting > 0 {
                    // Meeting the target comes first; among those, cost decides.
                    evaluations[index].score = (evaluation.meetsTarget! ? evaluation.costUSD : 1e6 + evaluation.predictedTTFTSeconds)
                } else {
                    evaluations[index].score = evaluation.predictedTTFTSeconds
                }
            }
            return meeting > 0
                ? Reason(text: "cheapest of \(meeting) predicted to meet the \(formatSeconds(target)) TTFT target")
                : Reason(text: "none predicted to meet the \(formatSeconds(target)) TTFT target: fastest")
        case .roundRobin:
            let turn = turn.wrappingAdd(1, ordering: .relaxed).oldValue
            let count = UInt64(evaluations.count)
            for index in evaluations.indices {
                let position = (UInt64(index) &+ count &- turn % count) % count
                evaluations[index].score = Double(position)
            }
            return (Reason(text: "next in turn"))
        case .random:
            for index in evaluations.indices {
                evaluations[index].score =
                    Double(random.next() >> 11) / Double(1 << 53)
            }
            return (Reason(text: "random"))
        case .leastInflight:
            for index in evaluations.indices {
                evaluations[index].score =
                    Double(evaluations[index].inFlight)
            }
            return (Reason(text: "fewest requests in flight from this gateway"))
        case .nearest:
            for index in evaluations.indices {
                let evaluation = evaluations[index]
                evaluations[index].score =
                    evaluation.rttSeconds + 1e-9 * Double(evaluation.inFlight)
            }
            return (Reason(text: "nearest to the caller"))
        case .cheapest:
            for index in evaluations.indices {
                let evaluation = evaluations[index]
                evaluations[index].score =
                    evaluation.costUSD * 1e6 + 1e-9 * Double(evaluation.inFlight)
            }
            return (Reason(text: "cheapest"))
        case .centralized:
            let central = policy.centralSite
            for index in evaluations.indices {
                let evaluation = evaluations[index]
                let atCentre = fleet.endpoints[evaluation.endpoint].siteName == central
                evaluations[index].score =
                    (atCentre ? 0 : 1e6 + evaluation.rttSeconds)
                    + 1e-6 * Double(evaluation.inFlight)
            }
            return (Reason(text: "central site '\(central ?? "none")', fewest in flight"))
        }
    }

    /// The index of the candidate to try first, and how many tied for it. Under the five-axis
    /// policies candidates within the tie tolerance of the best tie; two of them are drawn at random
    /// and the less loaded wins (power of two choices), so that a burst arriving between metric
    /// reads spreads instead of herding. Baselines tie only on equal scores.
    private func pickAmongTies(
        _ evaluations: [Rated], policy: RoutingPolicy, random: inout SplitMix64
    ) -> (index: Int, ties: Int) {
        var best = 0
        for index in evaluations.indices.dropFirst() where precedes(evaluations[index], evaluations[best]) {
            best = index
        }
        let level = evaluations[best].fallbackLevel
        let bestScore = evaluations[best].score
        let tolerance: Double
        switch policy.kind {
        case .balanced: tolerance = policy.tieTolerance
        case .slo: tolerance = max(abs(bestScore) * 0.02, 1e-12)
        case .roundRobin, .random: return (best, 1)
        case .leastInflight, .nearest, .cheapest, .centralized: tolerance = 0
        }
        var ties = 0
        var first = -1
        var second = -1
        // Reservoir-sample two of the tied candidates in one pass, without allocating.
        for index in evaluations.indices
        where evaluations[index].fallbackLevel == level && evaluations[index].score <= bestScore + tolerance {
            ties += 1
            if ties == 1 {
                first = index
            } else if ties == 2 {
                second = index
            } else {
                let draw = Int(random.next() % UInt64(ties))
                if draw == 0 { first = index } else if draw == 1 { second = index }
            }
        }
        guard ties > 1 else { return (best, 1) }
        if random.next() & 1 == 0 { swap(&first, &second) }
        let a = evaluations[first]
        let b = evaluations[second]
        let pick: Int
        if a.load != b.load {
            pick = a.load < b.load ? first : second
        } else {
            pick = a.score <= b.score ? first : second
        }
        return (pick, ties)
    }

    /// Whether `a` ranks before `b`: the model's own endpoints before fallbacks, then by score, then
    /// by position in the fleet so that the order is total.
    @inline(__always)
    private func precedes(_ a: Rated, _ b: Rated) -> Bool {
        if a.fallbackLevel != b.fallbackLevel { return a.fallbackLevel < b.fallbackLevel }
        if a.score != b.score { return a.score < b.score }
        return a.endpoint < b.endpoint
    }

    /// The chosen candidate first, then up to `limit - 1` more by score.
    private func order(_ evaluations: [Rated], first: (index: Int, ties: Int), limit: Int) -> [Rated] {
        let count = min(max(1, limit), evaluations.count)
        var result: [Rated] = [evaluations[first.index]]
        result.reserveCapacity(count)
        if count == 1 { return result }
        if count >= evaluations.count || count > 16 {
            var rest = evaluations
            rest.remove(at: first.index)
            rest.sort(by: precedes)
            result.append(contentsOf: rest.prefix(count - 1))
            return result
        }
        // One pass keeping the best few beats sorting thousands of candidates to keep three.
        let wanted = count - 1
        var best: [Int] = []
        best.reserveCapacity(wanted + 1)
        for index in evaluations.indices where index != first.index {
            if best.count == wanted, !precedes(evaluations[index], evaluations[best[wanted - 1]]) { continue }
            var position = best.count
            while position > 0, precedes(evaluations[index], evaluations[best[position - 1]]) { position -= 1 }
            best.insert(index, at: position)
            if best.count > wanted { best.removeLast() }
        }
        for index in best { result.append(evaluations[index]) }
        return result
    }
}

/// Seconds as a short human string: "350 ms", "1.2 s". Never traps, whatever the value.
func formatSeconds(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "\(seconds) s" }
    if seconds < 1 { return "\(Int(saturating: (seconds * 1000).rounded())) ms" }
    if seconds >= 1e15 { return "\(seconds) s" }
    return "\(Double(Int((seconds * 10).rounded())) / 10) s"
}
