import NIOCore
import ProximaCache
import ProximaCore
import Synchronization

/// Collects one upstream answer for the cache while it is relayed, and stores it only when it is
/// complete and successful; it also ends the request's coalescing flight, once, whatever happens
/// (answer stored, answer unusable, request failed: the waiters then go upstream themselves). A
/// capture dropped unfinished ends its flight without an answer.
final class CacheCapture: Sendable {
    private struct State {
        var events: [ByteBuffer] = []
        var bytes = 0
        var overflow = false
        var done = false
        /// An event was relayed already.
        var started = false
    }

    let plan: CachePlan
    let vector: [Float]?
    private let cache: ResponseCache
    private let flight: CacheFlight?
    private let limit: Int
    private let state = Mutex(State())

    init(plan: CachePlan, vector: [Float]?, cache: ResponseCache, flight: CacheFlight?, maxAnswerBytes: Int) {
        self.plan = plan
        self.vector = vector
        self.cache = cache
        self.flight = flight
        self.limit = maxAnswerBytes
    }

    /// One event of a streamed answer, as relayed (copied only while within the answer size limit).
    func append(event: ByteBuffer) {
        let first = state.withLock { state -> Bool in
            defer { state.started = true }
            guard !state.overflow, !state.done else { return !state.started }
            state.bytes += event.readableBytes
            if state.bytes > limit {
                state.overflow = true
                state.events = []
            } else if let data = ServerSentEventSummary.data(of: event) {
                state.events.append(data)
            }
            return !state.started
        }
        // The answer started reaching its caller: no request may start waiting for it now.
        if first { flight?.markStarted() }
    }

    /// The stream ended; `complete` when it ended normally (`[DONE]`, no error) with status 200.
    func finishStream(complete: Bool, usage: TokenUsage?, endpoint: Endpoint?, generationSeconds: Double) {
        let events = state.withLock { state -> [ByteBuffer]? in
            guard !state.done else { return nil }
            state.done = true
            defer { state.events = [] }
            return complete && !state.overflow ? state.events : nil
        }
        guard let events, let draft = CachedAnswer.read(events: events, kind: plan.kind) else { return end(nil) }
        end(store(draft, usage: usage, endpoint: endpoint, generationSeconds: generationSeconds))
    }

    /// A whole answer arrived with status 200.
    func finishWhole(body: ByteBuffer, usage: TokenUsage?, endpoint: Endpoint?, generationSeconds: Double) {
        let first = state.withLock { state -> Bool in
            defer { state.done = true }
            return !state.done
        }
        guard first else { return }
        guard body.readableBytes <= limit, let draft = CachedAnswer.read(body: body, kind: plan.kind) else { return end(nil) }
        end(store(draft, usage: usage, endpoint: endpoint, generationSeconds: generationSeconds))
    }

    /// The request ended without an answer worth keeping.
    func abandon() {
        let first = state.withLock { state -> Bool in
            defer { state.done = true }
            return !state.done
        }
        if first { end(nil) }
    }

    private func store(_ draft: CachedAnswer.Draft, usage: TokenUsage?, endpoint: Endpoint?, generationSeconds: Double) -> CachedAnswer? {
        guard plan.write else { return nil }
        let answer = CachedAnswer(
            kind: draft.kind, choices: draft.choices, model: draft.model, systemFingerprint: draft.systemFingerprint,
            usage: draft.usage ?? usage ?? TokenUsage(promptTokens: 0, completionTokens: 0), price: TokenPrice(endpoint?.pricing),
            tenant: plan.tenant, prompt: plan.semanticText, generationSeconds: generationSeconds)
        guard answer.byteCount <= limit else { return nil }
        cache.store(answer, plan: plan, vector: vector)
        return answer
    }

    private func end(_ answer: CachedAnswer?) {
        if let flight { cache.land(flight, plan: plan, answer: answer) }
    }

    deinit {
        let unfinished = state.withLock { !$0.done }
        if unfinished, let flight { cache.land(flight, plan: plan, answer: nil) }
    }
}

extension ServerSentEventSummary {
    /// The payload of an event's `data:` line, unless it is `[DONE]` or absent.
    static func data(of event: ByteBuffer) -> ByteBuffer? {
        event.withUnsafeReadableBytes { bytes -> Range<Int>? in
            guard let range = dataRange(in: bytes) else { return nil }
            let payload = UnsafeRawBufferPointer(rebasing: bytes[range])
            return payload.elementsEqual("[DONE]".utf8) ? nil : range
        }.flatMap { event.getSlice(at: event.readerIndex + $0.lowerBound, length: $0.count) }
    }
}
