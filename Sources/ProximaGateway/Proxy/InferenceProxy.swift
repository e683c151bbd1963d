import AsyncHTTPClient
import Foundation
import NIOPosix
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ProximaCore
import Synchronization

/// Limits and deadlines of the proxy, from the server settings. Part of a routing snapshot, so that a
/// reload applies them to the requests that start after it.
struct ProxySettings: Sendable {
    var firstByte: Duration
    var total: Duration
    /// Added to `firstByte` per output token a plain (not streamed) request may generate: its answer
    /// only starts when generation ends, so its deadline grows with `max_tokens`.
    var perOutputToken: Duration
    var maxAttempts: Int
    var maxResponseBodyBytes: Int

    init(_ server: ServerSettings) {
        firstByte = .seconds(clampedSeconds: server.timeouts.firstByte)
        total = .seconds(clampedSeconds: server.timeouts.total)
        perOutputToken = .seconds(clampedSeconds: server.timeouts.perOutputToken)
        maxAttempts = server.maxAttempts
        maxResponseBodyBytes = server.maxResponseBodyBytes
    }

    /// How long one attempt may wait for the start of its answer: the first event of a stream, or the
    /// whole generation of a plain request (`firstByte` plus `perOutputToken` per token it may
    /// generate, or the total limit when it sets no `max_tokens`).
    func headTimeout(stream: Bool, maxOutputTokens: Int?) -> Duration {
        guard !stream else { return firstByte }
        guard let tokens = maxOutputTokens, tokens >= 0 else { return total }
        let generation = perOutputToken.seconds * Double(tokens)
        return min(total, firstByte + .seconds(clampedSeconds: generation))
    }
}

/// Sends a checked request to the endpoints of its route plan in order until one answers, and
/// relays the answer: whole for plain requests, event by event for streams. A failure is retried on
/// the next endpoint only while nothing has reached the caller; after that a stream ends with an
/// error event, never silently.
///
/// Every endpoint a request is sent to is held by an ``EndpointClaim`` that ends exactly once, and
/// the request's outcome is booked once, by its ``RequestAccount`` (which also ends the serving
/// endpoint's claim): see "The claim lifecycle" in docs/architecture.md.
struct InferenceProxy: Sendable {
    let state: RoutingState
    /// AsyncHTTPClient for streams (its read timeout is `timeouts.idle`) and for plain requests (no
    /// read timeout: an engine is silent until its whole answer is ready; the request's deadline bounds it).
    let client: HTTPClient
    let plainClient: HTTPClient
    /// The client for plain-HTTP upstreams; nil sends everything through AsyncHTTPClient.
    let pooled: PooledUpstreamClient?
    let metrics: GatewayMetrics
    let watch: ConnectionCloseWatch
    let logger: Logger
    let allocator = ByteBufferAllocator()

    /// Everything known about the request being proxied, for headers, metrics and logs.
    struct Exchange: Sendable {
        var request: InferenceRequest
        var model: LogicalModel
        var decision: RouteDecision
        /// The configuration and fleet the request was routed under.
        var routing: RoutingSnapshot
        /// Where the request's outcome is booked, once.
        var account: RequestAccount
        /// Prompt prefix hashes, recorded where the request is sent (prefix affinity).
        var prefixBlocks: [UInt64] = []
        var requestID: String
        var arrival: ContinuousClock.Instant
        /// The caller's `x-proxima-client-location`, passed on to emulated endpoints only, which use it
        /// to add the network delay between the caller and their site.
        var clientLocation: String? = nil
        /// Time spent waiting on upstreams so far; the rest of the elapsed time is the gateway's own.
        var upstreamWait: Duration = .zero
        /// The caller's connection's event loop: new upstream connections open there.
        var eventLoop: (any EventLoop)? = nil
        /// Where the answer goes to be cached, when the cache stage kept it (see ``CacheCapture``).
        var capture: CacheCapture? = nil
        /// Masks secrets and personal data in the answer, when the tenant's guards say so.
        var outputGuard: OutputGuard? = nil
        /// The residency rule the request was routed under, if any.
        var residency: ResidencyRule? = nil

        var settings: ProxySettings { routing.proxy }
    }

    /// One candidate endpoint being tried, with its claim on the endpoint.
    struct Leg: Sendable {
        var position: Int
        var candidate: RouteCandidate
        var endpoint: Endpoint
        var claim: EndpointClaim
    }

    /// Legs whose attempt was cancelled (the caller left, a deadline passed, the gateway stops, or
    /// the other leg of a hedge won), to be accounted once the reason is known.
    final class CancelledLegs: Sendable {
        private let legs = Mutex<[Leg]>([])
        func add(_ leg: Leg) { legs.withLock { $0.append(leg) } }
        func takeAll() -> [Leg] { legs.withLock { legs in defer { legs = [] }; return legs } }
    }

    /// Whether a hedge may still leave (0), left (1) or will not (2); decided once, by whoever comes first.
    final class HedgeGate: Sendable {
        let value = Atomic<Int>(0)
    }

    /// What trying one candidate (and maybe its hedge) produced.
    struct RaceResult: Sendable {
        /// The leg that answered or started streaming, and what it produced.
        var winner: (leg: Leg, outcome: AttemptOutcome)?
        /// The last failure, for the caller's error when nothing answers.
        var lastFailure: GatewayError?
        /// Whether a hedge was sent, and where.
        var hedgePosition: Int?
    }

    /// Proxies `exchange`. `firstClaim` is the claim the router took on the first candidate (nil
    /// when it could not take one: that candidate is then claimed here like the others).
    func forward(_ exchange: Exchange, firstClaim: EndpointClaim?, channel: (any Channel)?) async throws -> Response {
        var exchange = exchange
        exchange.eventLoop = channel?.eventLoop
        let account = exchange.account
        let settings = exchange.settings
        let supervisor = RequestSupervisor(watch: watch, channel: channel)
        let totalDeadline = exchange.arrival + settings.total
        let candidates = exchange.decision.candidates
        let hedging = exchange.routing.configuration.routing.hedging
        let headTimeout = settings.headTimeout(stream: exchange.request.stream, maxOutputTokens: exchange.request.maxOutputTokens)
        var lastError = GatewayError.noCapacity("No endpoint could serve model '\(exchange.model.name)'.")
        var attempts = 0
        var tried = Set<Int>()
        var firstClaim = firstClaim
        for position in candidates.indices where !tried.contains(position) {
            if position > 0 {
                guard attempts < settings.maxAttempts else { break }
                guard ContinuousClock.now < totalDeadline else {
                    lastError = .upstreamTimeout("The request exceeded the total time limit before any endpoint answered.")
                    break
                }
            }
            // The router claimed the first candidate when it chose it; later ones are claimed here,
            // and skipped if they can no longer take requests (breaker opened meanwhile).
            let claim = position == 0 ? firstClaim.take() ?? self.claim(position, exchange) : self.claim(position, exchange)
            guard let claim else { continue }
            if position > 0 { metrics.recordRetry(model: exchange.model.name) }
            let primary = leg(position, exchange, claim: claim)
            attempts += 1
            tried.insert(position)
            // A hedge goes to the next untried candidate when the first event is late.
            var hedge: Int?
            if hedging.enabled, exchange.request.stream, attempts < settings.maxAttempts {
                hedge = candidates.indices.first(where: { $0 > position && !tried.contains($0) })
            }
            let hedgeDelay = Duration.seconds(
                clampedSeconds: max(hedging.minimumDelaySeconds, hedging.delayFactor * primary.candidate.evaluation.predictedTTFTSeconds))
            let sentAt = ContinuousClock.now
            let deadline = min(sentAt + headTimeout, totalDeadline)
            let cancelled = CancelledLegs()
            // The pooled client keeps a plain request's deadline itself, as a timer on the upstream
            // connection's event loop; other work is bounded by the supervisor, which costs a task.
            let clientKeepsDeadline = !exchange.request.stream && hedge == nil && usesPooledClient(primary.endpoint)
            do {
                let race = try await supervisor.run(until: clientKeepsDeadline ? nil : deadline) {
                    try await self.race(
                        exchange, primary: primary, hedge: hedge, hedgeDelay: hedgeDelay, sentAt: sentAt, headDeadline: deadline,
                        cancelled: cancelled)
                }
                if let used = race.hedgePosition {
                    attempts += 1
                    tried.insert(used)
                }
                for loser in cancelled.takeAll() { loser.claim.abandon() }
                let returnedAt = ContinuousClock.now
                exchange.upstreamWait += returnedAt - sentAt
                if let failure = race.lastFailure { lastError = failure }
                guard let (winner, outcome) = race.winner else { continue }
                if let used = race.hedgePosition {
                    metrics.recordHedge(model: exchange.model.name, outcome: winner.position == used ? "hedge_won" : "primary_won")
                }
                switch outcome {
                case .answered(let answer):
                    // A whole answer: its time includes generation, so it teaches nothing about TTFT.
                    winner.claim.firstToken(ttft: nil, predicted: nil)
                    // A broken answer counts against the endpoint; the gateway's own limit (an answer
                    // too large) says nothing about it.
                    let verdict: RequestAccount.Verdict =
                        answer.endpointFault ? .failed : answer.error != nil ? .abandoned : .succeeded(timePerOutputToken: nil)
                    var finished = exchange
                    finished.upstreamWait += answer.upstreamWait - (returnedAt - sentAt)
                    if let error = answer.error {
                        // After a 2xx head nothing is sent again: the endpoint did the work once.
                        try await account.conclude(
                            status: error.status.code, endpoint: winner.endpoint, claim: winner.claim, verdict: verdict,
                            upstreamWait: finished.upstreamWait)
                        logger.warning(
                            "answer failed after its head", metadata: ["request_id": "\(exchange.requestID)", "error": "\(error.message)"])
                        throw error
                    }
                    var headers = responseHeaders(finished, candidate: winner.candidate, endpoint: winner.endpoint)
                    headers[.contentType] = answer.contentType ?? "application/json"
                    if let encoding = answer.contentEncoding { headers[.contentEncoding] = encoding }
                    if answer.status < 300 {
                        metrics.recordTimeToFirstToken(model: exchange.model.name, endpoint: winner.endpoint.name, answer.receivedAt - exchange.arrival)
                    }
                    var body = answer.body
                    if var outputGuard = exchange.outputGuard, answer.status == 200, answer.contentEncoding == nil {
                        body = outputGuard.screen(whole: body)
                    }
                    // The record is durable before the answer leaves (nothing answered goes unrecorded).
                    do {
                        try await account.conclude(
                            status: answer.status, endpoint: winner.endpoint, claim: winner.claim, verdict: verdict, usage: answer.usage,
                            estimated: answer.usageEstimated, upstreamWait: finished.upstreamWait,
                            answer: account.audit == nil ? nil : AuditAnswer(body: body, keepText: account.keepsAnswerText))
                    } catch {
                        // Not answered, so not cached either: identical requests waiting on it go on their own.
                        exchange.capture?.abandon()
                        throw error
                    }
                    if let capture = exchange.capture {
                        if answer.status == 200 && answer.contentEncoding == nil {
                            capture.finishWhole(
                                body: body, usage: answer.usageEstimated ? nil : answer.usage, endpoint: winner.endpoint,
                                generationSeconds: (answer.receivedAt - sentAt).seconds)
                        } else {
                            capture.abandon()
                        }
                    }
                    return Response(status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: body))
                case .stream(let upstream):
                    let firstEventAt = upstream.firstEventAt ?? ContinuousClock.now
                    winner.claim.firstToken(
                        ttft: (firstEventAt - sentAt).seconds,
                        predicted: observablePrediction(winner.candidate, endpoint: winner.endpoint, exchange: exchange))
                    // Waiting ended with the first event; with the pooled client, exactly when it came
                    // out of the socket after the request went in.
                    exchange.upstreamWait -= returnedAt - sentAt
                    exchange.upstreamWait += upstream.measuredWait ?? (firstEventAt - sentAt)
                    return streamResponse(exchange, leg: winner, upstream: upstream, supervisor: supervisor, totalDeadline: totalDeadline)
                case .failed:
                    continue
                }
            } catch SupervisionStop.callerDisconnected {
                for leg in cancelled.takeAll() { leg.claim.abandon() }
                metrics.recordCallerDisconnect(model: exchange.model.name)
                account.finish(status: 499, endpoint: primary.endpoint, upstreamWait: exchange.upstreamWait)
                logger.debug("caller disconnected before the answer", metadata: ["request_id": "\(exchange.requestID)"])
                throw CancellationError()
            } catch is CancellationError {
                // The gateway is shutting down: not the endpoint's fault.
                for leg in cancelled.takeAll() { leg.claim.abandon() }
                account.finish(status: 499, endpoint: primary.endpoint, upstreamWait: exchange.upstreamWait)
                throw CancellationError()
            } catch SupervisionStop.deadlineExceeded {
                exchange.upstreamWait += ContinuousClock.now - sentAt
                let overall = deadline >= totalDeadline
                for leg in cancelled.takeAll() {
                    lastError =
                        overall
                        ? .upstreamTimeout("The request exceeded the total time limit before any endpoint answered.")
                        : .upstreamTimeout("Endpoint '\(leg.endpoint.name)' did not answer within the time limit.")
                    if overall {
                        // The request's own limit ran out: not this endpoint's fault.
                        leg.claim.abandon()
                    } else {
                        recordFailure(leg, kind: .timeout, error: lastError, exchange: exchange)
                    }
                }
                if overall { break }
            }
        }
        try await account.conclude(status: lastError.status.code, upstreamWait: exchange.upstreamWait)
        logger.warning("request failed", metadata: ["request_id": "\(exchange.requestID)", "error": "\(lastError)"])
        throw lastError
    }

    private func ref(_ position: Int, _ exchange: Exchange) -> EndpointRef {
        let candidate = exchange.decision.candidates[position]
        let endpoint = exchange.routing.fleet.endpoints[candidate.endpoint]
        return EndpointRef(
            index: endpoint.index, name: endpoint.name, generation: exchange.routing.generation,
            prefillTokens: max(0, exchange.request.estimatedPromptTokens - candidate.evaluation.cachedPromptTokens))
    }

    private func claim(_ position: Int, _ exchange: Exchange) -> EndpointClaim? {
        state.claim(ref(position, exchange), prefixBlocks: exchange.prefixBlocks)
    }

    private func leg(_ position: Int, _ exchange: Exchange, claim: EndpointClaim) -> Leg {
        let candidate = exchange.decision.candidates[position]
        return Leg(position: position, candidate: candidate, endpoint: exchange.routing.fleet.endpoints[candidate.endpoint], claim: claim)
    }

    /// Tries the primary leg; with a hedge, also sends the hedge when the primary has produced
    /// nothing after `hedgeDelay`, and takes whichever answers first. The other is cancelled, and
    /// whatever it produced meanwhile (even a first event at the same moment) is dropped with its
    /// claim abandoned. A primary that fails before the hedge leaves returns at once, so that the
    /// next candidate is tried the ordinary way.
    private func race(
        _ exchange: Exchange, primary: Leg, hedge: Int?, hedgeDelay: Duration, sentAt: ContinuousClock.Instant,
        headDeadline: ContinuousClock.Instant, cancelled: CancelledLegs
    ) async throws -> RaceResult {
        guard let hedge else {
            let outcome = try await runLeg(exchange, primary, sentAt: sentAt, headDeadline: headDeadline, cancelled: cancelled)
            if case .failed(_, let error) = outcome { return RaceResult(lastFailure: error) }
            return RaceResult(winner: (primary, outcome))
        }
        let hedgeState = HedgeGate()
        return try await withThrowingTaskGroup(of: (Leg, AttemptOutcome)?.self) { group in
            group.addTask {
                (primary, try await self.runLeg(exchange, primary, sentAt: sentAt, headDeadline: headDeadline, cancelled: cancelled))
            }
            group.addTask {
                do { try await Task.sleep(for: hedgeDelay) } catch { return nil }
                guard hedgeState.value.compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged else { return nil }
                guard let claim = self.claim(hedge, exchange) else {
                    hedgeState.value.store(2, ordering: .relaxed)
                    return nil
                }
                self.metrics.recordHedge(model: exchange.model.name, outcome: "sent")
                let leg = self.leg(hedge, exchange, claim: claim)
                return (leg, try await self.runLeg(exchange, leg, sentAt: ContinuousClock.now, headDeadline: headDeadline, cancelled: cancelled))
            }
            var result = RaceResult()
            while let finished = try await group.next() {
                guard let (leg, outcome) = finished else { continue }
                if case .failed(_, let error) = outcome {
                    result.lastFailure = error
                    // The primary failed before the hedge left: stop the hedge's timer.
                    if leg.position == primary.position,
                        hedgeState.value.compareExchange(expected: 0, desired: 2, ordering: .relaxed).exchanged
                    {
                        group.cancelAll()
                    }
                    continue
                }
                result.winner = (leg, outcome)
                group.cancelAll()
                // The other leg may have produced something too: drop it and free its endpoint.
                while let other = try? await group.next() {
                    if let (loser, _) = other { loser.claim.abandon() }
                }
                break
            }
            if hedgeState.value.load(ordering: .relaxed) == 1 { result.hedgePosition = hedge }
            return result
        }
    }

    /// One attempt on one leg, with its failure accounted; a cancelled attempt is listed in
    /// `cancelled` for the caller to account once it knows why.
    private func runLeg(
        _ exchange: Exchange, _ leg: Leg, sentAt: ContinuousClock.Instant, headDeadline: ContinuousClock.Instant,
        cancelled: CancelledLegs
    ) async throws -> AttemptOutcome {
        // When the attempt's deadline is the request's total limit, running out of it is the
        // request's own limit, not the endpoint's failure.
        let ownLimit = headDeadline >= exchange.arrival + exchange.settings.total
        do {
            try Task.checkCancellation()
            let outcome = try await attempt(exchange, candidate: leg.candidate, endpoint: leg.endpoint, sentAt: sentAt, headDeadline: headDeadline)
            if case .failed(let kind, let error) = outcome {
                recordFailure(leg, kind: kind, error: error, exchange: exchange)
            }
            return outcome
        } catch {
            if Task.isCancelled || error is CancellationError {
                cancelled.add(leg)
                throw CancellationError()
            }
            let (kind, mapped) = Self.classify(error, endpoint: leg.endpoint.name)
            if kind == .timeout && ownLimit {
                leg.claim.abandon()
                return .failed(kind, .upstreamTimeout("The request exceeded the total time limit before any endpoint answered."))
            }
            recordFailure(leg, kind: kind, error: mapped, exchange: exchange)
            return .failed(kind, mapped)
        }
    }

    /// What the gateway itself will measure as TTFT if the router's model is right; emulated
    /// endpoints add the caller's round trip themselves.
    private func observablePrediction(_ candidate: RouteCandidate, endpoint: Endpoint, exchange: Exchange) -> Double {
        candidate.evaluation.uncorrectedTTFTSeconds(includingRoundTrip: endpoint.engine == .emulated && exchange.clientLocation != nil)
    }

    private func recordFailure(_ leg: Leg, kind: UpstreamFailureKind, error: GatewayError, exchange: Exchange) {
        // A full pool is the gateway's own limit: it moves the request on, but counts against no breaker.
        if kind == .poolFull { leg.claim.abandon() } else { leg.claim.fail() }
        metrics.recordUpstreamError(endpoint: leg.endpoint.name, kind: kind)
        logger.warning(
            "upstream attempt failed",
            metadata: [
                "request_id": "\(exchange.requestID)", "endpoint": "\(leg.endpoint.name)", "kind": "\(kind.rawValue)",
                "error": "\(error.message)",
            ])
    }

    // MARK: one attempt

    /// A whole answer read from an upstream, not yet sent to the caller.
    struct WholeAnswer: Sendable {
        var status: Int
        var contentType: String?
        /// Relayed as it came (the gateway asks for identity, but an upstream may compress anyway).
        var contentEncoding: String? = nil
        var body: ByteBuffer
        var usage: TokenUsage?
        var usageEstimated = false
        /// When the answer was complete, and how long it kept the gateway waiting.
        var receivedAt: ContinuousClock.Instant
        var upstreamWait: Duration
        /// Set when the answer broke after a 2xx head: the caller gets this error and the request is
        /// not sent again (the endpoint did the work once).
        var error: GatewayError?
        /// Whether the failure counts against the endpoint (a broken body does; an answer over the
        /// gateway's own size limit does not).
        var endpointFault = false
    }

    /// What one upstream attempt produced before anything was sent to the caller.
    enum AttemptOutcome: Sendable {
        /// A complete answer (success, the upstream's own 4xx verdict, or a failure after a 2xx head
        /// that must not be retried), ready to send.
        case answered(WholeAnswer)
        /// A stream whose first event has arrived.
        case stream(UpstreamStream)
        /// Nothing usable: try the next endpoint.
        case failed(UpstreamFailureKind, GatewayError)
    }

    private func attempt(
        _ exchange: Exchange, candidate: RouteCandidate, endpoint: Endpoint, sentAt: ContinuousClock.Instant,
        headDeadline: ContinuousClock.Instant
    ) async throws -> AttemptOutcome {
        let request = exchange.request
        let response = try await send(exchange, candidate: candidate, endpoint: endpoint, headDeadline: headDeadline)
        let status = response.status
        if status == 429 || status >= 500 {
            let detail = try? await Self.readPrefix(of: response.body, limit: 4096)
            let message = "Endpoint '\(endpoint.name)' answered \(status)\(detail.map { ": \($0)" } ?? "")."
            return .failed(status == 429 ? .rateLimited : .status5xx, .upstreamFailed(message))
        }
        guard (200..<300).contains(status) else {
            // The upstream's own verdict on the request (e.g. context too long): pass it through.
            let (body, _) = try await Self.collect(response.body, limit: 1 << 20)
            let received = ContinuousClock.now
            return .answered(
                WholeAnswer(
                    status: status, contentType: response.contentType, contentEncoding: response.contentEncoding, body: body, receivedAt: received,
                    upstreamWait: measuredWait(response, lastArrival: nil, sentAt: sentAt, received: received)))
        }
        if !request.stream {
            // From here on the endpoint has done the work: whatever happens, it is not sent again.
            do {
                let (body, lastArrival) = try await Self.collect(response.body, limit: exchange.settings.maxResponseBodyBytes)
                let received = ContinuousClock.now
                let usage = TokenUsage.read(responseBody: body)
                return .answered(
                    WholeAnswer(
                        status: status, contentType: response.contentType, contentEncoding: response.contentEncoding, body: body,
                        usage: usage ?? estimatedUsage(exchange, completionTokens: 0),
                        usageEstimated: usage == nil, receivedAt: received,
                        upstreamWait: measuredWait(response, lastArrival: lastArrival, sentAt: sentAt, received: received)))
            } catch is ResponseTooLarge {
                let limit = exchange.settings.maxResponseBodyBytes
                return .answered(
                    WholeAnswer(
                        status: 502, body: ByteBuffer(), receivedAt: .now, upstreamWait: ContinuousClock.now - sentAt,
                        error: .upstreamFailed("Endpoint '\(endpoint.name)' sent an answer larger than the gateway's limit of \(limit) bytes.")))
            } catch let error where !(error is CancellationError) && !Task.isCancelled {
                let (kind, mapped) = Self.classify(error, endpoint: endpoint.name)
                if kind == .timeout && headDeadline >= exchange.arrival + exchange.settings.total {
                    // The request's own time limit ran out while the answer arrived: not the endpoint's fault.
                    let error = GatewayError.upstreamTimeout("The request exceeded the total time limit before its answer was complete.")
                    return .answered(
                        WholeAnswer(
                            status: error.status.code, body: ByteBuffer(), receivedAt: .now, upstreamWait: ContinuousClock.now - sentAt,
                            error: error))
                }
                metrics.recordUpstreamError(endpoint: endpoint.name, kind: kind)
                return .answered(
                    WholeAnswer(
                        status: mapped.status.code, body: ByteBuffer(), receivedAt: .now, upstreamWait: ContinuousClock.now - sentAt,
                        error: mapped, endpointFault: true))
            }
        }
        // A stream: wait for its first event with data before committing to this endpoint. An error
        // event in its place means nothing was generated: another endpoint may still serve.
        let stream = UpstreamStream(iterator: response.body.makeAsyncIterator(), allocator: allocator)
        switch try await stream.receiveFirstEvent() {
        case .ended:
            return .failed(.protocolError, .upstreamFailed("Endpoint '\(endpoint.name)' closed the stream before sending any event."))
        case .error(let text):
            return .failed(.streamAborted, .upstreamFailed("Endpoint '\(endpoint.name)' opened the stream with an error: \(text)"))
        case .data:
            break
        }
        stream.firstEventAt = ContinuousClock.now
        if let requestSent = response.sentAt, let arrival = stream.lastArrival { stream.measuredWait = arrival - requestSent }
        return .stream(stream)
    }

    /// The time an answer kept the gateway waiting: from the request entering the socket to the last
    /// byte needed leaving it, when the pooled client measured them; else from sending to receiving.
    private func measuredWait(
        _ response: UpstreamAnswer, lastArrival: ContinuousClock.Instant?, sentAt: ContinuousClock.Instant,
        received: ContinuousClock.Instant
    ) -> Duration {
        if let requestSent = response.sentAt, let lastArrival { return lastArrival - requestSent }
        return received - sentAt
    }

    private func usesPooledClient(_ endpoint: Endpoint) -> Bool { pooled != nil && endpoint.url.scheme == "http" }

    /// Sends the request to one endpoint and waits for the head of its answer: through the pooled
    /// client for plain HTTP, else through AsyncHTTPClient.
    private func send(
        _ exchange: Exchange, candidate: RouteCandidate, endpoint: Endpoint, headDeadline: ContinuousClock.Instant
    ) async throws -> UpstreamAnswer {
        let request = exchange.request
        let body = request.upstreamBody(upstreamModel: candidate.upstreamModel, allocator: allocator)
        var headers = HTTPHeaders()
        headers.reserveCapacity(8)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: request.stream ? "text/event-stream" : "application/json")
        // The gateway reads streams event by event and does not decompress.
        headers.add(name: "accept-encoding", value: "identity")
        headers.add(name: "x-request-id", value: exchange.requestID)
        if let authorization = exchange.routing.authorizations[endpoint.index] { headers.add(name: "authorization", value: authorization) }
        if endpoint.engine == .emulated, let location = exchange.clientLocation { headers.add(name: "x-proxima-client-location", value: location) }
        let remaining = max(.nanoseconds(1), headDeadline - ContinuousClock.now)
        if let pooled, usesPooledClient(endpoint) {
            let head = HTTPRequestHead(
                version: .http1_1, method: .POST, uri: endpoint.url.basePath + request.operation.upstreamPath, headers: headers)
            let response = try await pooled.execute(
                host: endpoint.url.host, port: endpoint.url.port, head: head, body: body,
                headDeadline: .now() + .nanoseconds(remaining.nanoseconds),
                answerDeadline: request.stream ? .distantFuture : .now() + .nanoseconds(remaining.nanoseconds),
                eventLoop: exchange.eventLoop)
            return try Self.refusingCompressedStream(
                UpstreamAnswer(
                    status: Int(response.head.status.code), contentType: response.head.headers.first(name: "content-type"),
                    contentEncoding: response.head.headers.first(name: "content-encoding"), sentAt: response.sentAt,
                    body: .pooled(response.body)),
                stream: request.stream)
        }
        var upstream = HTTPClientRequest(url: endpoint.url.appending(request.operation.upstreamPath))
        upstream.method = .POST
        upstream.headers = headers
        upstream.body = .bytes(body)
        let response = try await (request.stream ? client : plainClient).execute(
            upstream, timeout: .nanoseconds(remaining.nanoseconds), logger: logger)
        return try Self.refusingCompressedStream(
            UpstreamAnswer(
                status: Int(response.status.code), contentType: response.headers.first(name: "content-type"),
                contentEncoding: response.headers.first(name: "content-encoding"), body: .asyncHTTPClient(response.body)),
            stream: request.stream)
    }

    // MARK: streaming

    private func streamResponse(
        _ exchange: Exchange, leg: Leg, upstream: UpstreamStream, supervisor: RequestSupervisor, totalDeadline: ContinuousClock.Instant
    ) -> Response {
        let endpoint = leg.endpoint
        var headers = responseHeaders(exchange, candidate: leg.candidate, endpoint: endpoint)
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let firstEventAt = upstream.firstEventAt ?? ContinuousClock.now
        metrics.recordTimeToFirstToken(model: exchange.model.name, endpoint: endpoint.name, firstEventAt - exchange.arrival)
        let proxy = self
        // If the caller leaves before this body is written, the body is dropped unwritten: the claim
        // and the account, held only by it, then end themselves (see `EndpointClaim.deinit`).
        let claim = leg.claim
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                let relayStart = ContinuousClock.now
                var exchange = exchange
                var relay = StreamRelay(
                    callerWantsUsage: exchange.request.callerWantsStreamUsage, capture: exchange.capture, output: exchange.outputGuard)
                let account = exchange.account
                if account.audit != nil {
                    relay.digest = StreamDigest(keepText: account.keepsAnswerText)
                    let estimate = exchange.request.body.readableBytes / 4
                    relay.beforeDone = { usage, contentEvents, answer throws(GatewayError) in
                        try await account.record(
                            status: 200, endpoint: endpoint,
                            usage: usage ?? TokenUsage(promptTokens: estimate, completionTokens: contentEvents), answer: answer)
                    }
                }
                var status = 200
                var cancelled = false
                do {
                    try await supervisor.run(until: totalDeadline) {
                        try await relay.run(upstream: upstream, writer: &writer)
                    }
                    if let failure = relay.auditFailure {
                        status = 503
                        try await writer.write(proxy.allocator.buffer(string: failure.serverSentEvent))
                    } else if let failure = relay.upstreamFailure {
                        status = 502
                        proxy.reportMidStreamFailure(failure, exchange: exchange, endpoint: endpoint)
                        try await writer.write(proxy.errorEvent(failure, endpoint: endpoint, eventsSent: relay.eventsSent))
                    } else if relay.sawErrorEvent {
                        // The upstream ended the stream with its own error event, already relayed.
                        status = 502
                        proxy.metrics.recordUpstreamError(endpoint: endpoint.name, kind: .streamAborted)
                    }
                    if status != 200 {
                        // A failed stream's record is durable before its end too.
                        try? await account.record(
                            status: status, endpoint: endpoint, usage: relay.usage ?? proxy.estimatedUsage(exchange, completionTokens: relay.contentEvents),
                            answer: relay.digest?.answer())
                    }
                    try await writer.finish(nil)
                } catch SupervisionStop.callerDisconnected {
                    status = 499
                    proxy.metrics.recordCallerDisconnect(model: exchange.model.name)
                } catch is CancellationError {
                    // The gateway is shutting down: not the endpoint's fault.
                    status = 499
                    cancelled = true
                } catch SupervisionStop.deadlineExceeded {
                    status = 504
                    let failure = StreamRelay.Failure.totalTimeout
                    proxy.reportMidStreamFailure(failure, exchange: exchange, endpoint: endpoint)
                    try? await writer.write(proxy.errorEvent(failure, endpoint: endpoint, eventsSent: relay.eventsSent))
                    try? await account.record(
                        status: status, endpoint: endpoint, usage: relay.usage ?? proxy.estimatedUsage(exchange, completionTokens: relay.contentEvents),
                        answer: relay.digest?.answer())
                    try? await writer.finish(nil)
                } catch {
                    status = 499
                }
                let ended = ContinuousClock.now
                exchange.upstreamWait += ended - relayStart
                let pace = relay.contentEvents > 1 ? (ended - firstEventAt).seconds / Double(relay.contentEvents - 1) : nil
                let verdict: RequestAccount.Verdict
                switch status {
                case 200: verdict = .succeeded(timePerOutputToken: pace)
                // The caller left, the gateway stops, or the request's own time limit ran out: not the endpoint's failure.
                case 499, 504: verdict = .abandoned
                default: verdict = .failed
                }
                relay.finishOutput()
                let usage = relay.usage ?? proxy.estimatedUsage(exchange, completionTokens: relay.contentEvents)
                exchange.capture?.finishStream(
                    complete: status == 200, usage: relay.usage, endpoint: endpoint, generationSeconds: (ended - exchange.arrival).seconds)
                exchange.account.finish(
                    status: status, endpoint: endpoint, claim: claim, verdict: verdict, usage: usage, estimated: relay.usage == nil,
                    upstreamWait: exchange.upstreamWait)
                if cancelled { throw CancellationError() }
            })
    }

    private func reportMidStreamFailure(_ failure: StreamRelay.Failure, exchange: Exchange, endpoint: Endpoint) {
        metrics.recordUpstreamError(endpoint: endpoint.name, kind: failure.kind)
        logger.warning(
            "stream ended by an upstream failure",
            metadata: ["request_id": "\(exchange.requestID)", "endpoint": "\(endpoint.name)", "error": "\(failure)"])
    }

    private func errorEvent(_ failure: StreamRelay.Failure, endpoint: Endpoint, eventsSent: Int) -> ByteBuffer {
        let error: GatewayError
        switch failure {
        case .idleTimeout:
            error = .upstreamTimeout("Endpoint '\(endpoint.name)' stopped sending in the middle of the stream (after \(eventsSent) events).")
        case .totalTimeout:
            error = .upstreamTimeout("The stream exceeded the total time limit after \(eventsSent) events.")
        case .aborted(let reason):
            error = .upstreamFailed("The stream from endpoint '\(endpoint.name)' failed after \(eventsSent) events: \(reason).")
        case .truncated:
            error = .upstreamFailed("Endpoint '\(endpoint.name)' ended the stream without finishing it (after \(eventsSent) events).")
        }
        return allocator.buffer(string: error.serverSentEvent)
    }

    // MARK: bookkeeping

    func responseHeaders(_ exchange: Exchange, candidate: RouteCandidate, endpoint: Endpoint) -> HTTPFields {
        var headers = HTTPFields()
        headers.reserveCapacity(6)
        headers[.requestID] = exchange.requestID
        headers[.proximaEndpoint] = endpoint.name
        headers[.proximaSite] = endpoint.siteName
        headers[.proximaRoute] = routeSummary(exchange, candidate: candidate, endpoint: endpoint)
        // For the connection's timing handler, which removes it (see `GatewayConnectionHandler`).
        if exchange.eventLoop != nil { headers[GatewayConnectionHandler.upstreamWaitField] = String(exchange.upstreamWait.nanoseconds) }
        return headers
    }

    /// The compact explanation sent as `x-proxima-route`: policy, endpoint, predicted TTFT and cost,
    /// and the runner-up.
    func routeSummary(_ exchange: Exchange, candidate: RouteCandidate, endpoint: Endpoint) -> String {
        let evaluation = candidate.evaluation
        var summary = "policy=\(exchange.decision.policy); endpoint=\(endpoint.name)"
        summary += "; ttft_ms=\(Int(saturating: (evaluation.predictedTTFTSeconds * 1000).rounded()))"
        summary += "; cost_usd=\(RouteExplanation.decimal(evaluation.costUSD, digits: 8))"
        let candidates = exchange.decision.candidates
        if let runnerUp = candidates.first(where: { $0.endpoint != candidate.endpoint }) {
            summary += "; runner_up=\(exchange.routing.fleet.endpoints[runnerUp.endpoint].name)"
        }
        if candidate.endpoint != candidates.first?.endpoint { summary += "; failover=true" }
        if let residency = exchange.residency {
            summary += "; residency=\(residency.named.isEmpty ? "rule" : residency.named.joined(separator: "+"))"
            let outside = exchange.decision.exclusions.reduce(0) { $0 + ($1.kind == .residency ? 1 : 0) }
            summary += "; excluded_residency=\(outside)"
        }
        return summary
    }

    /// A rough count for answers whose usage the upstream did not report (an aborted stream, an
    /// engine that does not count): four bytes of request per prompt token, one event per token.
    func estimatedUsage(_ exchange: Exchange, completionTokens: Int) -> TokenUsage {
        TokenUsage(promptTokens: exchange.request.body.readableBytes / 4, completionTokens: completionTokens)
    }

    // MARK: helpers

    struct ResponseTooLarge: Error {}

    /// The whole body, and when its last chunk arrived (pooled client only).
    static func collect(_ body: UpstreamAnswer.Body, limit: Int) async throws -> (ByteBuffer, ContinuousClock.Instant?) {
        var result: ByteBuffer?
        var iterator = body.makeAsyncIterator()
        while var chunk = try await iterator.next() {
            if result == nil {
                result = chunk
            } else {
                result!.writeBuffer(&chunk)
            }
            if result!.readableBytes > limit { throw ResponseTooLarge() }
        }
        return (result ?? ByteBuffer(), iterator.lastArrival)
    }

    /// The start of an error body, as text for a message.
    static func readPrefix(of body: UpstreamAnswer.Body, limit: Int) async throws -> String? {
        var collected = ByteBuffer()
        for try await var chunk in body {
            collected.writeBuffer(&chunk)
            if collected.readableBytes >= limit { break }
        }
        let text = collected.readString(length: min(collected.readableBytes, limit)) ?? ""
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : String(trimmed.prefix(300))
    }

    static func classify(_ error: any Error, endpoint: String) -> (UpstreamFailureKind, GatewayError) {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout, .socksHandshakeTimeout, .tlsHandshakeTimeout:
                return (.connect, .upstreamFailed("Could not connect to endpoint '\(endpoint)' in time."))
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return (.timeout, .upstreamTimeout("Endpoint '\(endpoint)' did not answer within the time limit."))
            case .remoteConnectionClosed:
                return (.protocolError, .upstreamFailed("Endpoint '\(endpoint)' closed the connection without answering."))
            default:
                return (.protocolError, .upstreamFailed("Endpoint '\(endpoint)' failed: \(error.shortDescription)."))
            }
        }
        if let error = error as? UpstreamClientError {
            switch error {
            case .connectTimeout:
                return (.connect, .upstreamFailed("Could not connect to endpoint '\(endpoint)' in time."))
            case .connectionLimit(let limit):
                return (.poolFull, .noCapacity("Endpoint '\(endpoint)' has all \(limit) of its connections busy."))
            case .headTimeout, .idleTimeout:
                return (.timeout, .upstreamTimeout("Endpoint '\(endpoint)' did not answer within the time limit."))
            case .closedBeforeResponse:
                return (.protocolError, .upstreamFailed("Endpoint '\(endpoint)' closed the connection without answering."))
            case .closedMidResponse, .protocolViolation:
                return (.protocolError, .upstreamFailed("Endpoint '\(endpoint)' failed: \(error)."))
            }
        }
        if error is NIOConnectionError || error is ChannelError || error is IOError {
            return (.connect, .upstreamFailed("Could not connect to endpoint '\(endpoint)'."))
        }
        if let error = error as? GatewayError { return (.protocolError, error) }
        return (.protocolError, .upstreamFailed("Endpoint '\(endpoint)' failed: \(String(describing: type(of: error)))."))
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("x-request-id")!
    static let proximaEndpoint = HTTPField.Name("x-proxima-endpoint")!
    static let proximaSite = HTTPField.Name("x-proxima-site")!
    static let proximaClientLocation = HTTPField.Name("x-proxima-client-location")!
    static let proximaRoute = HTTPField.Name("x-proxima-route")!
    static let proximaPolicy = HTTPField.Name("x-proxima-policy")!
}
