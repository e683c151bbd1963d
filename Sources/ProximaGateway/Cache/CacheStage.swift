import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ProximaCache
import ProximaCore

/// The cache stage of the pipeline, after admission and before routing: the exact tier, then a
/// request in flight with the same key (waited for), then the semantic tier (an embedding from the
/// fleet's embeddings model, the nearest prompts of the partition, the false-hit guards). A hit is
/// answered here; a miss goes on with a ``CacheCapture`` that stores the answer if it completes.
/// The cache never fails a request: an embeddings model that is down, slow or answers nonsense makes
/// a miss, counted.
struct CacheStage: Sendable {
    let cache: ResponseCache
    let route: RouteStage
    let proxy: InferenceProxy
    let metrics: GatewayMetrics
    let logger: Logger

    enum Result: Sendable {
        case off
        case serve(CachedAnswer, CacheOutcome)
        /// Go upstream; `capture` (nil: nothing to store) receives the answer. `canonicalInput`, when
        /// the stage made it, serves the router's prefix hashing.
        case proceed(CacheCapture?, CacheOutcome, canonicalInput: [UInt8]?)
    }

    static let outcomeField = HTTPField.Name("x-proxima-cache")!

    /// With `readOnly` (a `cache_only` caller) nothing is stored and no flight is started: a miss
    /// goes on without a capture. The request's residency rule is part of every key, and the prompt's
    /// embedding is computed only inside it.
    func consult(
        _ inference: InferenceRequest, caller: CallerIdentity, model: LogicalModel, routing: RoutingSnapshot, headers: HTTPFields,
        requestID: String, readOnly: Bool = false, residency: ResidencyRule? = nil
    ) async -> Result {
        let settings = routing.configuration.cache
        let plan: CachePlan
        let canonicalInput: [UInt8]
        switch ResponseCache.decide(
            inference, caller: caller, model: model, headers: headers, settings: settings, residency: residency?.canonicalKey ?? "")
        {
        case .off: return .off
        case .bypass(let reason):
            metrics.recordCacheLookup(tier: "none", outcome: "bypass", reason: reason)
            return .proceed(nil, .bypass, canonicalInput: nil)
        case .use(let decided, let input):
            plan = decided
            canonicalInput = input
        }
        let started = ContinuousClock.now
        if plan.read && plan.exactTier {
            if let answer = cache.lookupExact(plan, now: Date().timeIntervalSince1970) {
                metrics.recordCacheLookupTime(tier: "exact", ContinuousClock.now - started)
                metrics.recordCacheLookup(tier: "exact", outcome: "hit", reason: "stored")
                return .serve(answer, .hitExact)
            }
            metrics.recordCacheLookupTime(tier: "exact", ContinuousClock.now - started)
            if let flight = cache.joinableFlight(plan) {
                if let answer = await flight.wait(timeout: .seconds(clampedSeconds: settings.coalesceTimeoutSeconds)),
                    answer.tenant == plan.tenant
                {
                    metrics.recordCacheLookup(tier: "exact", outcome: "hit", reason: "coalesced")
                    return .serve(answer, .hitExact)
                }
            }
        }
        var vector: [Float]?
        if plan.semanticTier, let text = plan.semanticText, let embeddingModel = settings.semantic.model {
            vector = await embed(
                text, model: embeddingModel, inputType: settings.semantic.inputType, deadline: settings.semantic.deadlineSeconds,
                requestID: requestID, caller: caller, residency: residency)
            if plan.read, let vector {
                let searched = ContinuousClock.now
                do {
                    let found = try cache.lookupSemantic(
                        plan, vector: vector, candidates: settings.semantic.candidates, now: Date().timeIntervalSince1970)
                    metrics.recordCacheLookupTime(tier: "semantic", ContinuousClock.now - searched)
                    if let (answer, _) = found {
                        metrics.recordCacheLookup(tier: "semantic", outcome: "hit", reason: "similar")
                        return .serve(answer, .hitSemantic)
                    }
                } catch {
                    metrics.recordCacheEmbeddingFailure("invalid_vector")
                }
            }
        }
        metrics.recordCacheLookup(tier: plan.semanticTier ? "semantic" : "exact", outcome: plan.read ? "miss" : "bypass", reason: plan.read ? "absent" : "no_cache")
        guard plan.write, !readOnly else { return .proceed(nil, plan.read ? .miss : .bypass, canonicalInput: canonicalInput) }
        let flight = cache.startFlight(plan)
        let capture = CacheCapture(plan: plan, vector: vector, cache: cache, flight: flight, maxAnswerBytes: settings.maxAnswerBytes)
        return .proceed(capture, plan.read ? .miss : .bypass, canonicalInput: canonicalInput)
    }

    // MARK: embeddings

    /// The embedding of `text` from the fleet's `model`, routed like any request (its own account,
    /// log line and metrics, id `<request id>-embed`); nil when it fails or takes longer than
    /// `deadline` seconds. The prompt is the caller's data: it is embedded only where the caller's
    /// residency rule (with the embeddings model's own) allows; nowhere allowed is a failure, never
    /// a move abroad.
    func embed(
        _ text: String, model name: String, inputType: String?, deadline: Double, requestID: String, caller: CallerIdentity? = nil,
        residency: ResidencyRule? = nil
    ) async -> [Float]? {
        let started = ContinuousClock.now
        let outcome: [Float]?? = await withTaskGroup(of: [Float]??.self) { group in
            group.addTask {
                await self.requestEmbedding(text, model: name, inputType: inputType, requestID: requestID, caller: caller, residency: residency)
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(clampedSeconds: deadline))
                return .some(nil)
            }
            let first = await group.next() ?? .some(nil)
            group.cancelAll()
            return first
        }
        metrics.recordCacheEmbedding(ContinuousClock.now - started)
        switch outcome {
        case .none:
            metrics.recordCacheEmbeddingFailure("error")
            return nil
        case .some(.none):
            metrics.recordCacheEmbeddingFailure("timeout")
            return nil
        case .some(.some(let vector)):
            return vector
        }
    }

    /// nil: the call failed; `.some(vector)`.
    private func requestEmbedding(
        _ text: String, model name: String, inputType: String?, requestID: String, caller: CallerIdentity?, residency: ResidencyRule?
    ) async -> [Float]?? {
        do {
            let kind = inputType.map { ",\"input_type\":\(JSONScanner.quoted($0))" } ?? ""
            let body = ByteBuffer(string: "{\"model\":\(JSONScanner.quoted(name)),\"input\":\(JSONScanner.quoted(text))\(kind)}")
            let inference = try InferenceRequest(operation: .embeddings, body: body)
            let (routing, model) = try route.resolve(name)
            let account = RequestAccount(
                requestID: requestID + "-embed", operation: .embeddings, arrival: .now, measuredByConnection: false, metrics: metrics,
                logger: logger)
            account.describe(model: model.name, stream: false)
            // The caller's tenant and key rules, and the embeddings model's own.
            var rule = residency
            if let caller, let own = routing.residencyRule(caller, model: model) { rule = rule.map { $0.intersecting(own) } ?? own }
            let (exchange, claim) = try route.route(
                inference, model: model, routing: routing, hints: RouteHints(), account: account, residency: rule)
            let response = try await proxy.forward(exchange, firstClaim: claim, channel: nil)
            guard response.status == .ok else { return .none }
            let collector = BodyCollector()
            try await response.body.write(collector.writer)
            guard let vector = Self.vector(from: collector.collected) else {
                metrics.recordCacheEmbeddingFailure("invalid_vector")
                return .some(nil)
            }
            return .some(vector)
        } catch {
            return .none
        }
    }

    /// The first embedding of an OpenAI embeddings answer; nil unless it is a non-empty array of
    /// finite numbers.
    static func vector(from body: ByteBuffer) -> [Float]? {
        guard body.readableBytes > 0,
            let object = body.withUnsafeReadableBytes({ try? JSONSerialization.jsonObject(with: Data($0)) }) as? [String: Any],
            let data = object["data"] as? [[String: Any]], let first = data.first,
            let numbers = first["embedding"] as? [NSNumber], !numbers.isEmpty, numbers.count <= 65_536
        else { return nil }
        var vector: [Float] = []
        vector.reserveCapacity(numbers.count)
        for number in numbers {
            let value = Float(number.doubleValue)
            guard value.isFinite else { return nil }
            vector.append(value)
        }
        return vector
    }

    // MARK: answering a hit

    /// The cached answer for this request: whole, or replayed as the engine's stream.
    func respond(
        _ answer: CachedAnswer, outcome: CacheOutcome, inference: InferenceRequest, settings: CacheSettings, account: RequestAccount,
        requestID: String
    ) async throws(GatewayError) -> Response {
        let billed = answer.billedUsage(settings.billing)
        let id = answer.freshID()
        let created = Int(Date().timeIntervalSince1970)
        var headers = HTTPFields()
        headers[.requestID] = requestID
        headers[Self.outcomeField] = outcome.rawValue
        metrics.recordCacheServed(answer, billed: billed)
        let body: ByteBuffer
        if inference.stream {
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            var buffer = ByteBuffer()
            for event in answer.events(id: id, created: created, usage: billed, includeUsage: inference.callerWantsStreamUsage) {
                buffer.writeString(event)
            }
            body = buffer
        } else {
            headers[.contentType] = "application/json"
            body = answer.body(id: id, created: created, usage: billed, allocator: proxy.allocator)
        }
        try await account.conclude(
            status: 200, usage: billed, price: answer.price, servedFromCache: true,
            answer: account.audit == nil ? nil : AuditAnswer(body: body, keepText: account.keepsAnswerText))
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }
}

/// Collects a response body written by the gateway itself (the embeddings call's answer).
private struct BodyCollector {
    final class Sink: @unchecked Sendable {
        var buffer = ByteBuffer()
    }

    struct Writer: ResponseBodyWriter {
        let sink: Sink
        mutating func write(_ buffer: ByteBuffer) async throws {
            var buffer = buffer
            sink.buffer.writeBuffer(&buffer)
            if sink.buffer.readableBytes > 8 << 20 { throw CancellationError() }
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }

    let sink = Sink()
    var writer: Writer { Writer(sink: sink) }
    var collected: ByteBuffer { sink.buffer }
}
