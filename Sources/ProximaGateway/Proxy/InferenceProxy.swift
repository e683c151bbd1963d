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

/// Limits and deadlines of the proxy, from the server settings.
struct ProxySettings: Sendable {
    var firstByte: Duration
    var total: Duration
    var maxAttempts: Int
    var maxResponseBodyBytes: Int

    init(_ server: ServerSettings) {
        firstByte = .seconds(server.timeouts.firstByte)
        total = .seconds(server.timeouts.total)
        maxAttempts = server.maxAttempts
        maxResponseBodyBytes = server.maxResponseBodyBytes
    }
}

/// Sends a checked request to the endpoints of its route plan in order until one answers, and
/// relays the answer: whole for plain requests, event by event for streams. A failure is retried on
/// the next endpoint only while nothing has reached the caller; after that a stream ends with an
/// error event, never silently.
struct InferenceProxy: Sendable {
    let state: RoutingState
    let client: HTTPClient
    /// The client for plain-HTTP upstreams; nil sends everything through `client`.
    let pooled: PooledUpstreamClient?
    let metrics: GatewayMetrics
    let settings: ProxySettings
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
    }

    /// One candidate endpoint being tried.
    struct Leg: Sendable {
        var position: Int
        var candidate: RouteCandidate
        var endpoint: Endpoint
        var ref: EndpointRef
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
        var hedge: Leg?
    }

    func forward(_ exchange: Exchange, channel: (any Channel)?) async throws -> Response {
        var exchange = exchange
        exchange.eventLoop = channel?.eventLoop
        let supervisor = RequestSupervisor(watch: watch, channel: channel)
        let totalDeadline = exchange.arrival + settings.total
        let candidates = exchange.decision.candidates
        let hedging = exchange.routing.configuration.routing.hedging
        var lastError = GatewayError.noCapacity("No endpoint could serve model '\(exchange.model.name)'.")
        var attempts = 0
        var tried = Set<Int>()
        for position in candidates.indices where !tried.contains(position) {
            let primary = leg(position, exchange)
            if position > 0 {
                guard attempts < settings.maxAttempts else { break }
                guard ContinuousClock.now < totalDeadline else {
                    lastError = .upstreamTimeout("The request exceeded the total time limit before any endpoint answered.")
                    break
                }
                // The router claimed the first candidate when it chose it; later ones are claimed
                // here, and skipped if they can no longer take requests (breaker opened meanwhile).
                guard state.begin(primary.ref, prefixBlocks: exchange.prefixBlocks) else { continue }
                metrics.recordRetry(model: exchange.model.name)
            }
            attempts += 1
            tried.insert(position)
            // A hedge goes to the next untried candidate when the first event is late.
            var hedge: Leg?
            if hedging.enabled, exchange.request.stream, attempts < settings.maxAttempts,
                let next = candidates.indices.first(where: { $0 > position && !tried.contains($0) })
            {
                hedge = leg(next, exchange)
            }
            let hedgeDelay = max(hedging.minimumDelaySeconds, hedging.delayFactor * primary.candidate.evaluation.predictedTTFTSeconds)
            let sentAt = ContinuousClock.now
            let deadline = min(sentAt + settings.firstByte, totalDeadline)
            let cancelled = CancelledLegs()
            do {
                // A plain request is bounded by the client's own deadline on the response head and
                // its idle timeout on the body; a stream's first event needs the supervisor's clock.
                let race = try await supervisor.run(until: exchange.request.stream ? deadline : nil) {
                    try await self.race(
                        exchange, primary: primary, hedge: hedge, hedgeDelay: .seconds(hedgeDelay), sentAt: sentAt,
                        headDeadline: deadline, cancelled: cancelled)
                }
                if let used = race.hedge {
                    attempts += 1
                    tried.insert(used.position)
                }
                for loser in cancelled.takeAll() { state.end(loser.ref, outcome: .abandoned, sawFirstToken: false) }
                let returnedAt = ContinuousClock.now
                exchange.upstreamWait += returnedAt - sentAt
                if let failure = race.lastFailure { lastError = failure }
                guard let (winner, outcome) = race.winner else { continue }
                if let used = race.hedge {
                    metrics.recordHedge(model: exchange.model.name, outcome: winner.position == used.position ? "hedge_won" : "primary_won")
                }
                switch outcome {
                case .answered(let response):
                    // A whole answer: its time includes generation, so it teaches nothing about TTFT.
                    state.firstToken(winner.ref, ttft: nil, predicted: nil)
                    state.end(winner.ref, outcome: .success, sawFirstToken: true)
                    return response
                case .stream(let upstream):
                    let firstEventAt = upstream.firstEventAt ?? ContinuousClock.now
                    state.firstToken(
                        winner.ref, ttft: (firstEventAt - sentAt).seconds,
                        predicted: observablePrediction(winner.candidate, endpoint: winner.endpoint, exchange: exchange))
                    // Waiting ended with the first event; with the pooled client, exactly when it came
                    // out of the socket after the request went in.
                    exchange.upstreamWait -= returnedAt - sentAt
                    exchange.upstreamWait += upstream.measuredWait ?? (firstEventAt - sentAt)
                    return streamResponse(
                        exchange, candidate: winner.candidate, endpoint: winner.endpoint, ref: winner.ref, upstream: upstream,
                        supervisor: supervisor, totalDeadline: totalDeadline)
                case .failed:
                    continue
                }
            } catch SupervisionStop.callerDisconnected {
                for leg in cancelled.takeAll() { state.end(leg.ref, outcome: .abandoned, sawFirstToken: false) }
                metrics.recordCallerDisconnect(model: exchange.model.name)
                finish(exchange, endpoint: primary.endpoint.name, status: 499, usage: nil)
                logger.debug("caller disconnected before the answer", metadata: ["request_id": "\(exchange.requestID)"])
                throw CancellationError()
            } catch is CancellationError {
                // The gateway is shutting down: not the endpoint's fault.
                for leg in cancelled.takeAll() { state.end(leg.ref, outcome: .abandoned, sawFirstToken: false) }
                finish(exchange, endpoint: primary.endpoint.name, status: 499, usage: nil)
                throw CancellationError()
            } catch SupervisionStop.deadlineExceeded {
                exchange.upstreamWait += ContinuousClock.now - sentAt
                for leg in cancelled.takeAll() {
                    lastError = .upstreamTimeout("Endpoint '\(leg.endpoint.name)' did not answer within the time limit.")
                    recordFailure(leg.endpoint, ref: leg.ref, kind: .timeout, error: lastError, exchange: exchange)
                }
            }
        }
        finish(exchange, endpoint: "none", status: lastError.status.code, usage: nil)
        logger.warning("request failed", metadata: ["request_id": "\(exchange.requestID)", "error": "\(lastError)"])
        throw lastError
    }

    private func leg(_ position: Int, _ exchange: Exchange) -> Leg {
        let candidate = exchange.decision.candidates[position]
        let endpoint = exchange.routing.fleet.endpoints[candidate.endpoint]
        return Leg(
            position: position, candidate: candidate, endpoint: endpoint,
            ref: EndpointRef(
                index: endpoint.index, name: endpoint.name, generation: exchange.routing.generation,
                prefillTokens: max(0, exchange.request.estimatedPromptTokens - candidate.evaluation.cachedPromptTokens)))
    }

    /// Tries the primary leg; with a hedge, also sends the hedge when the primary has produced
    /// nothing after `hedgeDelay`, and takes whichever answers first. The other is cancelled (and
    /// listed in `cancelled`). A primary that fails before the hedge leaves returns at once, so that
    /// the next candidate is tried the ordinary way.
    private func race(
        _ exchange: Exchange, primary: Leg, hedge: Leg?, hedgeDelay: Duration, sentAt: ContinuousClock.Instant,
        headDeadline: ContinuousClock.Instant, cancelled: CancelledLegs
    ) async throws -> RaceResult {
        guard let hedge else {
            let outcome = try await runLeg(exchange, primary, sentAt: sentAt, headDeadline: headDeadline, cancelled: cancelled)
            if case .failed(_, let error) = outcome { return RaceResult(lastFailure: error) }
            return RaceResult(winner: (primary, outcome))
        }
        let hedgeState = HedgeGate()
        return try await withThrowingTaskGroup(of: (Int, AttemptOutcome?).self) { group in
            group.addTask {
                (0, try await self.runLeg(exchange, primary, sentAt: sentAt, headDeadline: headDeadline, cancelled: cancelled))
            }
            group.addTask {
                do { try await Task.sleep(for: hedgeDelay) } catch { return (1, nil) }
                guard hedgeState.value.compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged else { return (1, nil) }
                guard self.state.begin(hedge.ref, prefixBlocks: exchange.prefixBlocks) else {
                    hedgeState.value.store(2, ordering: .relaxed)
                    return (1, nil)
                }
                self.metrics.recordHedge(model: exchange.model.name, outcome: "sent")
                return (1, try await self.runLeg(exchange, hedge, sentAt: ContinuousClock.now, headDeadline: headDeadline, cancelled: cancelled))
            }
            var result = RaceResult()
            while let (slot, outcome) = try await group.next() {
                guard let outcome else { continue }
                if hedgeState.value.load(ordering: .relaxed) == 1 { result.hedge = hedge }
                if case .failed(_, let error) = outcome {
                    result.lastFailure = error
                    // The primary failed before the hedge left: stop the hedge's timer.
                    if slot == 0, hedgeState.value.compareExchange(expected: 0, desired: 2, ordering: .relaxed).exchanged {
                        group.cancelAll()
                    }
                    continue
                }
                result.winner = (slot == 0 ? primary : hedge, outcome)
                group.cancelAll()
                return result
            }
            if hedgeState.value.load(ordering: .relaxed) == 1 { result.hedge = hedge }
            return result
        }
    }

    /// One attempt on one leg, with its failure accounted; a cancelled attempt is listed in
    /// `cancelled` for the caller to account once it knows why.
    private func runLeg(
        _ exchange: Exchange, _ leg: Leg, sentAt: ContinuousClock.Instant, headDeadline: ContinuousClock.Instant,
        cancelled: CancelledLegs
    ) async throws -> AttemptOutcome {
        do {
            let outcome = try await attempt(exchange, candidate: leg.candidate, endpoint: leg.endpoint, sentAt: sentAt, headDeadline: headDeadline)
            if case .failed(let kind, let error) = outcome {
                recordFailure(leg.endpoint, ref: leg.ref, kind: kind, error: error, exchange: exchange)
            }
            return outcome
        } catch {
            if Task.isCancelled || error is CancellationError {
                cancelled.add(leg)
                throw CancellationError()
            }
            let (kind, mapped) = Self.classify(error, endpoint: leg.endpoint.name)
            recordFailure(leg.endpoint, ref: leg.ref, kind: kind, error: mapped, exchange: exchange)
            return .failed(kind, mapped)
        }
    }

    /// What the gateway itself will measure as TTFT if the router's model is right; emulated
    /// endpoints add the caller's round trip themselves.
    private func observablePrediction(_ candidate: RouteCandidate, endpoint: Endpoint, exchange: Exchange) -> Double {
        candidate.evaluation.uncorrectedTTFTSeconds(includingRoundTrip: endpoint.engine == .emulated && exchange.clientLocation != nil)
    }

    private func recordFailure(_ endpoint: Endpoint, ref: EndpointRef, kind: UpstreamFailureKind, error: GatewayError, exchange: Exchange) {
        // A full pool is the gateway's own limit: it moves the request on, but counts against no breaker.
        state.end(ref, outcome: kind == .poolFull ? .abandoned : .failure, sawFirstToken: false)
        metrics.recordUpstreamError(endpoint: endpoint.name, kind: kind)
        logger.warning(
            "upstream attempt failed",
            metadata: [
                "request_id": "\(exchange.requestID)", "endpoint": "\(endpoint.name)", "kind": "\(kind.rawValue)",
                "error": "\(error.message)",
            ])
    }

    // MARK: one attempt

    /// What one upstream attempt produced before anything was sent to the caller.
    enum AttemptOutcome: Sendable {
        /// A complete answer (success or the upstream's own 4xx verdict) ready to send.
        case answered(Response)
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
            var finished = exchange
            finished.upstreamWait += measuredWait(response, lastArrival: nil, sentAt: sentAt, received: ContinuousClock.now)
            var headers = responseHeaders(finished, candidate: candidate, endpoint: endpoint)
            headers[.contentType] = response.contentType ?? "application/json"
            if let encoding = response.contentEncoding { headers[.contentEncoding] = encoding }
            finish(finished, endpoint: endpoint.name, status: status, usage: nil)
            return .answered(Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: body)))
        }
        if !request.stream {
            let body: ByteBuffer
            let lastArrival: ContinuousClock.Instant?
            do {
                (body, lastArrival) = try await Self.collect(response.body, limit: settings.maxResponseBodyBytes)
            } catch is ResponseTooLarge {
                return .failed(.protocolError, .upstreamFailed("Endpoint '\(endpoint.name)' sent an answer larger than \(settings.maxResponseBodyBytes) bytes."))
            }
            let received = ContinuousClock.now
            let usage = TokenUsage.read(responseBody: body)
            metrics.recordTimeToFirstToken(model: exchange.model.name, endpoint: endpoint.name, received - exchange.arrival)
            var finished = exchange
            finished.upstreamWait += measuredWait(response, lastArrival: lastArrival, sentAt: sentAt, received: received)
            var headers = responseHeaders(finished, candidate: candidate, endpoint: endpoint)
            headers[.contentType] = response.contentType ?? "application/json"
            if let encoding = response.contentEncoding { headers[.contentEncoding] = encoding }
            finish(finished, endpoint: endpoint.name, status: status, usage: usage ?? estimatedUsage(exchange, completionTokens: 0))
            return .answered(Response(status: .ok, headers: headers, body: .init(byteBuffer: body)))
        }
        // A stream: wait for its first complete event before committing to this endpoint.
        let stream = UpstreamStream(iterator: response.body.makeAsyncIterator(), allocator: allocator)
        guard try await stream.receiveFirstEvent() else {
            return .failed(.protocolError, .upstreamFailed("Endpoint '\(endpoint.name)' closed the stream before sending any event."))
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
        if let pooled, endpoint.url.scheme == "http" {
            let head = HTTPRequestHead(
                version: .http1_1, method: .POST, uri: endpoint.url.basePath + request.operation.upstreamPath, headers: headers)
            let response = try await pooled.execute(
                host: endpoint.url.host, port: endpoint.url.port, head: head, body: body,
                headDeadline: .now() + .nanoseconds(remaining.nanoseconds), eventLoop: exchange.eventLoop)
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
        let response = try await client.execute(upstream, timeout: .nanoseconds(remaining.nanoseconds), logger: logger)
        return try Self.refusingCompressedStream(
            UpstreamAnswer(
                status: Int(response.status.code), contentType: response.headers.first(name: "content-type"),
                contentEncoding: response.headers.first(name: "content-encoding"), body: .asyncHTTPClient(response.body)),
            stream: request.stream)
    }

    // MARK: streaming

    private func streamResponse(
        _ exchange: Exchange, candidate: RouteCandidate, endpoint: Endpoint, ref: EndpointRef, upstream: UpstreamStream,
        supervisor: RequestSupervisor, totalDeadline: ContinuousClock.Instant
    ) -> Response {
        var headers = responseHeaders(exchange, candidate: candidate, endpoint: endpoint)
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let firstEventAt = upstream.firstEventAt ?? ContinuousClock.now
        metrics.recordTimeToFirstToken(model: exchange.model.name, endpoint: endpoint.name, firstEventAt - exchange.arrival)
        let proxy = self
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                let relayStart = ContinuousClock.now
                var exchange = exchange
                var relay = StreamRelay(callerWantsUsage: exchange.request.callerWantsStreamUsage)
                var status = 200
                var cancelled = false
                do {
                    try await supervisor.run(until: totalDeadline) {
                        try await relay.run(upstream: upstream, writer: &writer)
                    }
                    if let failure = relay.upstreamFailure {
                        status = 502
                        proxy.reportMidStreamFailure(failure, exchange: exchange, endpoint: endpoint)
                        try await writer.write(proxy.errorEvent(failure, endpoint: endpoint, eventsSent: relay.eventsSent))
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
                    try? await writer.finish(nil)
                } catch {
                    status = 499
                }
                let ended = ContinuousClock.now
                exchange.upstreamWait += ended - relayStart
                let outcome: EndpointOutcome =
                    switch status {
                    case 200: .success
                    case 499: .abandoned
                    case 504: .abandoned  // the request's own time limit, not the endpoint's failure
                    default: .failure
                    }
                let pace = relay.contentEvents > 1 ? (ended - firstEventAt).seconds / Double(relay.contentEvents - 1) : nil
                proxy.state.end(ref, outcome: outcome, sawFirstToken: true, timePerOutputToken: status == 200 ? pace : nil)
                let usage = relay.usage ?? proxy.estimatedUsage(exchange, completionTokens: relay.contentEvents)
                proxy.finish(exchange, endpoint: endpoint.name, status: status, usage: usage, estimated: relay.usage == nil)
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
        summary += "; ttft_ms=\(Int((evaluation.predictedTTFTSeconds * 1000).rounded()))"
        summary += "; cost_usd=\(RouteExplanation.decimal(evaluation.costUSD, digits: 8))"
        let candidates = exchange.decision.candidates
        if let runnerUp = candidates.first(where: { $0.endpoint != candidate.endpoint }) {
            summary += "; runner_up=\(exchange.routing.fleet.endpoints[runnerUp.endpoint].name)"
        }
        if candidate.endpoint != candidates.first?.endpoint { summary += "; failover=true" }
        return summary
    }

    /// A rough count for answers whose usage the upstream did not report (an aborted stream, an
    /// engine that does not count): four bytes of request per prompt token, one event per token.
    func estimatedUsage(_ exchange: Exchange, completionTokens: Int) -> TokenUsage {
        TokenUsage(promptTokens: exchange.request.body.readableBytes / 4, completionTokens: completionTokens)
    }

    /// Records a finished request in metrics and the log.
    func finish(_ exchange: Exchange, endpoint: String, status: Int, usage: TokenUsage?, estimated: Bool = false) {
        let elapsed = ContinuousClock.now - exchange.arrival
        metrics.recordRequest(
            operation: exchange.request.operation, model: exchange.model.name, endpoint: endpoint, status: status, duration: elapsed)
        // With a connection, its timing handler measures the overhead up to the first byte written.
        if exchange.eventLoop == nil { metrics.recordOverhead(max(.zero, elapsed - exchange.upstreamWait)) }
        if let usage { metrics.recordTokens(model: exchange.model.name, usage: usage, estimated: estimated) }
        metrics.requestEnded()
        logger.info(
            "request",
            metadata: [
                "request_id": "\(exchange.requestID)", "operation": "\(exchange.request.operation.rawValue)",
                "model": "\(exchange.model.name)", "endpoint": "\(endpoint)", "status": "\(status)",
                "stream": "\(exchange.request.stream)", "duration_ms": "\(elapsed.nanoseconds / 1_000_000)",
                "prompt_tokens": "\(usage?.promptTokens ?? 0)", "completion_tokens": "\(usage?.completionTokens ?? 0)",
            ])
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
