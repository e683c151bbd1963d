import Foundation
import Hummingbird
import Logging
import NIOCore
import ProximaCore

/// The path of an inference request through the gateway, stage by stage, in the order they run.
/// Each stage is a type with one job that can be tested alone; each answers the caller with its own
/// error (in the OpenAI format) when the request stops there.
///
/// | stage | type | stops a request with |
/// |---|---|---|
/// | identify | ``CallerIdentification`` | 401 with `WWW-Authenticate` (one answer for every bad credential) |
/// | edge | ``EdgeStage`` (the caller's class and its policy) | 403 `caller_blocked`, 429 for a class past its rate |
/// | read | ``RequestPipeline/read(_:operation:limit:)`` + ``InferenceRequest`` | 413, 400 naming the field |
/// | authorize | ``RequestPipeline/authorize(_:model:requested:)`` | 403 `model_not_allowed` |
/// | admit | ``AdmissionStage`` | 429 with `Retry-After` (`insufficient_quota` for a spent budget), 400 for `max_tokens` |
/// | guard in | ``GuardStage`` | 400 `prompt_rejected` / `sensitive_data_rejected` naming the category (redacts or masks by policy) |
/// | cache | ``CacheStage`` | (answers a hit itself; a miss goes on with a capture that stores the answer); 429 `cache_only` for a cache-only class it cannot answer |
/// | route | ``RouteStage`` | 404, 400, 503 naming every exclusion |
/// | proxy | ``InferenceProxy`` | 502, 504 (retries before the first byte); the output guard masks answers, streamed or whole |
/// | account | ``RequestAccount`` | (books the outcome and settles admission, once, whoever learns it) |
///
/// Every answer to a caller with rate limits carries OpenAI's `x-ratelimit-*` headers.
struct RequestPipeline: Sendable {
    let identify: CallerIdentification
    let edge: EdgeStage
    let admit: AdmissionStage
    let guards: GuardStage
    let route: RouteStage
    /// nil when the gateway runs without a cache.
    let cache: CacheStage?
    let proxy: InferenceProxy
    let metrics: GatewayMetrics
    let logger: Logger
    /// Where every request's record goes (nil: auditing is off).
    var audit: AuditTrail? = nil

    func handle(_ operation: InferenceOperation, request: Request, context: GatewayRequestContext) async throws -> Response {
        // From the connection's stamp when there is one: the hand-off to this handler counts too.
        let stamped = GatewayClock.instant(request.headers[GatewayConnectionHandler.receivedField])
        let account = RequestAccount(
            requestID: context.requestID, operation: operation, arrival: stamped ?? ContinuousClock.now,
            measuredByConnection: context.channel != nil, metrics: metrics, logger: logger, audit: audit)
        var exchange: InferenceProxy.Exchange
        let firstClaim: EndpointClaim?
        var limitHeaders = HTTPFields()
        var cacheOutcome: CacheOutcome?
        var identified: CallerIdentity?
        var classField: String?
        do {
            let routing = route.state.snapshot
            let trust = routing.trust
            let caller = try identify.identify(
                request.headers, peer: trust.needsPeerAddress ? Self.peerAddress(context) : nil, trust: trust,
                at: Date().timeIntervalSince1970)
            identified = caller.identity
            account.describe(identity: caller.identity)
            let now = Date().timeIntervalSince1970
            let edgeSettings = routing.configuration.edge
            var edgeAdmission = EdgeStage.Admission.proceed
            var edgeKey = EdgePolicyKey.caller(.authenticated)
            if edgeSettings.enabled {
                let client = trust.client(request.headers, peer: Self.peerAddress(context))
                let edgeRequest = EdgeRequest(
                    method: request.method, authority: request.head.authority, path: request.uri.string,
                    scheme: request.head.scheme ?? "http", headers: request.headers, peer: client)
                let classification = await edge.classify(edgeRequest, identity: caller.identity, settings: edgeSettings, now: now)
                edgeKey = classification.policyKey(suspiciousScore: edgeSettings.unknown.suspiciousScore)
                account.describe(caller: classification)
                if caller.identity.maySteer { classField = edgeKey.rawValue }
                edgeAdmission = try edge.admit(classification, tenant: caller.identity.tenantID, peer: client, settings: edgeSettings, now: now)
            }
            var inference = try await Self.read(request, operation: operation, limit: routing.configuration.server.maxRequestBodyBytes)
            let (current, model) = try route.resolve(inference.model)
            account.describe(model: model.name, stream: inference.stream)
            try Self.authorize(caller.identity, model: model, requested: inference.model)
            let residency = current.residencyRule(caller.identity, model: model)
            let admission = try await admit.admit(
                inference, caller: caller.identity, expectedOutputTokens: current.configuration.routing.expectedOutputTokens,
                at: Date().timeIntervalSince1970)
            if let pass = admission.pass { account.admitted(pass, ledger: admit.ledger) }
            if let cap = admission.maxTokensCap { inference.limitOutput(to: cap) }
            limitHeaders = AdmissionStage.fields(admission.headers)
            // Hashed before the guards, so that a refused prompt's record still names what came in.
            account.describe(received: inference.body, residency: residency)
            let screened = try guards.screen(
                inference, tenant: caller.identity.tenantID, snapshot: current, account: account, maxTokensCap: admission.maxTokensCap)
            inference = screened.inference
            account.describe(sent: inference.body)
            var capture: CacheCapture?
            let cacheOnly = edgeAdmission == .cacheOnly
            if let cache, current.configuration.cache.enabled {
                switch await cache.consult(
                    inference, caller: caller.identity, model: model, routing: current, headers: request.headers, requestID: context.requestID,
                    readOnly: cacheOnly, residency: residency)
                {
                case .off: break
                case .serve(let answer, let outcome):
                    account.describe(cache: outcome.rawValue)
                    var response = try await cache.respond(
                        answer, outcome: outcome, inference: inference, settings: current.configuration.cache, account: account,
                        requestID: context.requestID)
                    response.headers.append(contentsOf: limitHeaders)
                    if let classField { response.headers[EdgeStage.classField] = classField }
                    return response
                case .proceed(let kept, let outcome, let canonicalInput):
                    account.describe(cache: outcome.rawValue)
                    capture = kept
                    cacheOutcome = outcome
                    inference.canonicalInput = canonicalInput
                }
            }
            if cacheOnly { throw GatewayError.cacheOnlyMiss(edgeKey) }
            (exchange, firstClaim) = try route.route(
                inference, model: model, routing: current, hints: caller.hints, account: account, residency: residency)
            exchange.capture = capture
            exchange.outputGuard = screened.outputGuard
        } catch {
            // A body that could not be read means the caller went away (499 in the nginx convention).
            let status = (error as? GatewayError)?.status.code ?? 499
            guard var refusal = error as? GatewayError else {
                account.finish(status: status)
                throw error
            }
            do {
                // A refusal is an answer too: it is recorded before it is sent.
                try await account.conclude(status: status)
            } catch let failure {
                refusal = failure
            }
            if status >= 500 {
                logger.warning("request failed", metadata: ["request_id": "\(context.requestID)", "error": "\(error)"])
            }
            if limitHeaders.isEmpty, let identified, identified.isLimited,
                !refusal.headers.contains(where: { $0.name.canonicalName.hasPrefix("x-ratelimit-") })
            {
                // Refused before admission (a model it may not use, a bad body): the caller's
                // limits as they stand, uncharged.
                limitHeaders = AdmissionStage.fields(admit.ledger.headers(for: identified, at: Date().timeIntervalSince1970))
            }
            refusal.headers.append(contentsOf: limitHeaders)
            if let cacheOutcome { refusal.headers[CacheStage.outcomeField] = cacheOutcome.rawValue }
            if let classField { refusal.headers[EdgeStage.classField] = classField }
            throw refusal
        }
        // From here on the proxy books every outcome (streams end after this function has returned).
        do {
            var response = try await proxy.forward(exchange, firstClaim: firstClaim, channel: context.channel)
            response.headers.append(contentsOf: limitHeaders)
            if let cacheOutcome { response.headers[CacheStage.outcomeField] = cacheOutcome.rawValue }
            if let classField { response.headers[EdgeStage.classField] = classField }
            return response
        } catch var failure as GatewayError {
            failure.headers.append(contentsOf: limitHeaders)
            if let cacheOutcome { failure.headers[CacheStage.outcomeField] = cacheOutcome.rawValue }
            if let classField { failure.headers[EdgeStage.classField] = classField }
            throw failure
        }
    }

    /// The caller's address as the connection sees it.
    static func peerAddress(_ context: GatewayRequestContext) -> IPAddress? {
        context.channel?.remoteAddress?.ipAddress.flatMap { IPAddress($0) }
    }

    /// Whether the caller may use the model: its scope (the tenant's, narrowed by the key's) must
    /// allow the name it asked for or the logical model that name resolves to. Checked before
    /// admission and routing, so a refused request costs the caller nothing.
    static func authorize(_ identity: CallerIdentity, model: LogicalModel, requested: String) throws(GatewayError) {
        guard identity.models.allows(requested) || identity.models.allows(model.name) else {
            throw GatewayError.modelNotAllowed(requested)
        }
    }

    /// The read stage: the body, up to `limit` bytes (413 past it, also for a larger declared
    /// length, before reading), checked and inspected once (``InferenceRequest``).
    static func read(_ request: Request, operation: InferenceOperation, limit: Int) async throws -> InferenceRequest {
        let declared = request.headers[.contentLength].flatMap(Int.init)
        if let declared, declared > limit {
            throw GatewayError.bodyTooLarge(limit: limit)
        }
        let body: ByteBuffer
        do {
            body = try await collect(request.body, declaredLength: declared, limit: limit)
        } catch let refusal as CallerConnection.Refusal {
            // The connection stopped the body (a stall, bad chunks, the body memory budget).
            throw refusal.gatewayError
        }
        return try InferenceRequest(operation: operation, body: body)
    }

    /// A request body, whole, up to `limit` bytes (413 past it). A body in one part is returned as
    /// it is; a longer one goes into one buffer sized for its declared length, rather than one that
    /// doubles (and is copied) as parts arrive: a 4 MB body held 4 MiB plus a 2 MiB copy at its peak.
    static func collect(_ body: RequestBody, declaredLength: Int?, limit: Int) async throws -> ByteBuffer {
        var parts = body.makeAsyncIterator()
        guard var collected = try await parts.next() else { return ByteBuffer() }
        guard collected.readableBytes <= limit else { throw GatewayError.bodyTooLarge(limit: limit) }
        var sized = false
        while var part = try await parts.next() {
            guard part.readableBytes <= limit - collected.readableBytes else { throw GatewayError.bodyTooLarge(limit: limit) }
            if !sized {
                sized = true
                let expected = max(declaredLength ?? 0, collected.readableBytes + part.readableBytes)
                collected.reserveCapacity(minimumWritableBytes: expected - collected.readableBytes)
            }
            collected.writeBuffer(&part)
        }
        return collected
    }
}
