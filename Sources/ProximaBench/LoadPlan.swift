import ProximaCore

/// One request the load generator will send: when, from where, how big.
public struct PlannedRequest: Sendable, Equatable {
    /// Seconds after the start of the run.
    public var sendAt: Double
    public var metro: Int
    public var inputTokens: Int
    public var outputTokens: Int
    public var prefixBlockIDs: [UInt64]
}

/// A workload turned into the requests of one run: the trace's arrivals with time and rate
/// scaling, each assigned a caller metro by its local time of day.
public struct LoadPlan: Sendable {
    public var requests: [PlannedRequest]
    public var metros: [Metro]
    public var blockTokens: Int

    /// - Parameters:
    ///   - timeScale: how many times faster than recorded the trace is replayed (2 halves its duration).
    ///   - rateScale: multiplies the request rate by keeping or replicating requests (0.5 keeps half,
    ///     2 sends each request twice, the copy shifted by a random fraction of the next gap).
    ///   - startUTCHour: the hour of the UTC day the run represents, for the callers' time of day.
    ///   - maxDuration: stop planning after this many seconds of the run.
    ///   - maxOutputTokens: cap on each request's output (real small engines need it).
    ///   - skipSeconds: start this many seconds (of recorded time) into the trace.
    public init(
        trace: Trace, metros: [Metro], skipSeconds: Double = 0, timeScale: Double = 1, rateScale: Double = 1, startUTCHour: Double = 14,
        maxDuration: Double? = nil, maxRequests: Int? = nil, maxOutputTokens: Int? = nil, seed: UInt64 = 1
    ) {
        var assignment = CallerAssignment(metros: metros, seed: seed)
        var random = SplitMix64(seed: seed ^ 0x5151)
        let origin = (trace.requests.first?.time ?? 0) + max(0, skipSeconds)
        var planned: [PlannedRequest] = []
        planned.reserveCapacity(Int(Double(trace.requests.count) * max(rateScale, 0.01)) + 1)
        for (index, request) in trace.requests.enumerated() where request.time >= origin {
            let sendAt = (request.time - origin) / max(timeScale, 1e-9)
            if let maxDuration, sendAt > maxDuration { break }
            var copies = Int(rateScale)
            let fraction = rateScale - Double(copies)
            if Double(random.next() >> 11) / Double(1 << 53) < fraction { copies += 1 }
            let nextGap =
                index + 1 < trace.requests.count ? (trace.requests[index + 1].time - request.time) / max(timeScale, 1e-9) : 0
            for copy in 0..<copies {
                let shift = copy == 0 ? 0 : nextGap * Double(random.next() >> 11) / Double(1 << 53)
                let hour = startUTCHour + (sendAt + shift) / 3600
                planned.append(
                    PlannedRequest(
                        sendAt: sendAt + shift, metro: assignment.nextMetro(atUTCHour: hour), inputTokens: request.inputTokens,
                        outputTokens: min(request.outputTokens, maxOutputTokens ?? .max), prefixBlockIDs: request.prefixBlockIDs))
            }
        }
        planned.sort { $0.sendAt < $1.sendAt }
        self.init(planned: planned, metros: metros, blockTokens: trace.blockTokens, maxRequests: maxRequests)
    }

    private init(planned: [PlannedRequest], metros: [Metro], blockTokens: Int, maxRequests: Int?) {
        var planned = planned
        if let maxRequests, planned.count > maxRequests { planned.removeLast(planned.count - maxRequests) }
        self.requests = planned
        self.metros = metros
        self.blockTokens = blockTokens
    }

    /// A plan in which every metro replays the whole trace on its own, shifted by its time zone: the
    /// trace is taken as one day of a region's traffic, and a metro `h` hours east of the first one
    /// sees it `h / 24` of the trace's length earlier (wrapping around), so the regions' peaks fall at
    /// different times. Each metro keeps its weight's share of the requests, times `rateScale`, so the
    /// total rate matches the trace's times `rateScale`. Other parameters as in the main initializer.
    public init(
        replicatingAcross metros: [Metro], trace: Trace, skipSeconds: Double = 0, timeScale: Double = 1, rateScale: Double = 1,
        maxDuration: Double? = nil, maxRequests: Int? = nil, maxOutputTokens: Int? = nil, seed: UInt64 = 1
    ) {
        precondition(!metros.isEmpty, "a caller population needs at least one metro")
        var random = SplitMix64(seed: seed ^ 0x7265_706C)
        let first = trace.requests.first?.time ?? 0
        let span = max(trace.duration, 1e-9)
        let totalWeight = metros.map { max(0, $0.weight) }.reduce(0, +)
        let scale = max(timeScale, 1e-9)
        var planned: [PlannedRequest] = []
        for (metroIndex, metro) in metros.enumerated() {
            let share = totalWeight > 0 ? rateScale * max(0, metro.weight) / totalWeight : 0
            // Each metro's replica (and each copy in it) has its own users: prefix ids are made distinct.
            let salt = UInt64(metroIndex) << 48
            var shift = (metro.utcOffsetHours - metros[0].utcOffsetHours) / 24 * span
            shift -= (shift / span).rounded(.down) * span
            for request in trace.requests {
                var recorded = request.time - first + shift
                if recorded >= span { recorded -= span }
                let sendAt = (recorded - max(0, skipSeconds)) / scale
                // Requests of one conversation (same second prefix block: the first is a shared system
                // prompt) are kept or dropped together, so that thinning keeps conversations whole.
                var conversation = SplitMix64(seed: request.prefixBlockIDs.count >= 2 ? request.prefixBlockIDs[1] ^ salt ^ seed : 0)
                let bits = request.prefixBlockIDs.count >= 2 ? conversation.next() : random.next()
                let draw = Double(bits >> 11) / Double(1 << 53)
                var copies = Int(share)
                if draw < share - Double(copies) { copies += 1 }
                guard copies > 0, sendAt >= 0, sendAt <= (maxDuration ?? .infinity) else { continue }
                for copy in 0..<copies {
                    // Copies of one request spread over the following second rather than arriving together.
                    let jitter = copy == 0 ? 0 : Double(random.next() >> 11) / Double(1 << 53) / scale
                    planned.append(
                        PlannedRequest(
                            sendAt: sendAt + jitter, metro: metroIndex, inputTokens: request.inputTokens,
                            outputTokens: min(request.outputTokens, maxOutputTokens ?? .max),
                            prefixBlockIDs: Self.salted(request.prefixBlockIDs, salt | UInt64(copy) << 40)))
                }
            }
        }
        planned.sort { $0.sendAt < $1.sendAt || ($0.sendAt == $1.sendAt && $0.metro < $1.metro) }
        self.init(planned: planned, metros: metros, blockTokens: trace.blockTokens, maxRequests: maxRequests)
    }

    public var duration: Double { requests.last?.sendAt ?? 0 }

    private static func salted(_ blocks: [UInt64], _ salt: UInt64) -> [UInt64] {
        salt == 0 ? blocks : blocks.map { $0 ^ salt }
    }
}
