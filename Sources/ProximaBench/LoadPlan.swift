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
        if let maxRequests, planned.count > maxRequests { planned.removeLast(planned.count - maxRequests) }
        self.requests = planned
        self.metros = metros
        self.blockTokens = trace.blockTokens
    }

    public var duration: Double { requests.last?.sendAt ?? 0 }
}
