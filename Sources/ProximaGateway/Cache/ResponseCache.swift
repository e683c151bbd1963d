import Crypto
import Foundation
import HTTPTypes
import NIOCore
import ProximaCache
import ProximaCore
import Synchronization

/// What the cache does for one request, decided before it is routed.
struct CachePlan: Sendable {
    var tenant: String
    var kind: CachedAnswer.Kind
    /// The exact tier's key: the tenant and the canonical request.
    var exactKey: CacheKey
    /// The semantic tier's partition (tenant, model, system prompt and earlier turns, tools,
    /// sampling) and the text to embed; nil when the request has no semantic part.
    var partition: CacheKey?
    var semanticText: String?
    /// Whether the cache may answer (`Cache-Control: no-cache` says no) and keep the answer (`no-store`).
    var read: Bool
    var write: Bool
    var exactTier: Bool
    var semanticTier: Bool
    var threshold: Float
}

/// What a caller is told in `x-proxima-cache`.
enum CacheOutcome: String, Sendable {
    case hitExact = "hit-exact"
    case hitSemantic = "hit-semantic"
    case miss
    case bypass
}

/// The cache's decision for a request before any lookup.
enum CacheDecision: Sendable {
    /// The cache is off: no lookup, no header.
    case off
    /// The cache is on but this request is neither looked up nor stored (`reason` for the metrics).
    case bypass(String)
    /// Look up and store under `plan`; `canonicalInput` is the input's canonical form, made on the
    /// way, for the router's prefix hashing.
    case use(CachePlan, canonicalInput: [UInt8])
}

/// The gateway's response cache: the exact and semantic tiers (``ProximaCache``) holding
/// ``CachedAnswer``s, and the table of requests in flight that identical ones may wait for.
/// Tenants never share anything: the tenant is hashed into every key and checked on every hit.
final class ResponseCache: Sendable {
    let exact: ExactCache<CachedAnswer>
    let semantic: SemanticCache<CachedAnswer>
    let metrics: GatewayMetrics
    private let flights = Mutex<[CacheKey: CacheFlight]>([:])

    init(settings: CacheSettings, metrics: GatewayMetrics) {
        let limits = CacheLimits(maxEntries: settings.maxEntries, maxBytes: settings.maxBytes, timeToLive: settings.ttlSeconds)
        self.exact = ExactCache(limits: limits)
        self.semantic = SemanticCache(limits: limits)
        self.metrics = metrics
    }

    // MARK: deciding

    static let cacheControl = HTTPField.Name("cache-control")!

    /// Whether and how the cache serves `inference` for `caller`, under `settings`.
    static func decide(
        _ inference: InferenceRequest, caller: CallerIdentity, model: LogicalModel, headers: HTTPFields, settings: CacheSettings,
        residency: String = ""
    ) -> CacheDecision {
        guard settings.enabled else { return .off }
        let kind: CachedAnswer.Kind
        switch inference.operation {
        case .chatCompletions: kind = .chat
        case .completions: kind = .completion
        case .embeddings: return .off
        }
        guard settings.applies(tenant: caller.tenantID, model: model.name) else { return .bypass("opted_out") }
        var read = true
        var write = true
        for value in headers[values: cacheControl] {
            for directive in value.split(separator: ",") {
                switch directive.trimmingCharacters(in: .whitespaces).lowercased() {
                case "no-cache": read = false
                case "no-store": write = false
                default: break
                }
            }
        }
        guard read || write else { return .bypass("cache_control") }
        let request: CacheableRequest
        do {
            request = try inference.body.withUnsafeReadableBytes { bytes throws(CanonicalJSON.Failure) in
                try CacheableRequest(kind: kind == .chat ? .chat : .completion, body: bytes)
            }
        } catch {
            return .bypass("unreadable")
        }
        if request.choices > 1 { return .bypass("n") }
        if request.wantsLogprobs { return .bypass("logprobs") }
        if let temperature = request.temperature, temperature > settings.temperatureCeiling { return .bypass("temperature") }
        // A cap the gateway adds to the upstream body (the caller's limits) can change the answer.
        let implied = inference.impliedMaxTokens.map { UInt64($0) } ?? 0
        // The operation is hashed too: a chat body's material and a completions body's are not tagged apart.
        let operation = inference.operation.rawValue
        let exactKey = key("exact", operation: operation, tenant: caller.tenantID, residency: residency, implied: implied, material: request.exactMaterial)
        var partition: CacheKey?
        var text: String?
        if settings.semantic.enabled, let material = request.partitionMaterial, let semanticText = request.semanticText,
            semanticText.utf8.count <= settings.semantic.maxPromptBytes, !semanticText.isEmpty
        {
            partition = key("semantic", operation: operation, tenant: caller.tenantID, residency: residency, implied: implied, material: material)
            text = semanticText
        }
        return .use(
            CachePlan(
                tenant: caller.tenantID, kind: kind, exactKey: exactKey, partition: partition, semanticText: text, read: read,
                write: write, exactTier: settings.exact, semanticTier: partition != nil,
                threshold: Float(settings.threshold(tenant: caller.tenantID, model: model.name))),
            canonicalInput: request.canonicalInput)
    }

    /// SHA-256 over the tier, the operation, the tenant, the residency rule (canonical form, empty
    /// when none: an answer made under one rule is never served under another), the implied output
    /// cap and the canonical material, each length-prefixed so that no two inputs run together; its
    /// first 128 bits.
    static func key(
        _ tier: String, operation: String, tenant: String, residency: String = "", implied: UInt64, material: [UInt8]
    ) -> CacheKey {
        var hasher = SHA256()
        func field(_ bytes: UnsafeRawBufferPointer) {
            var length = UInt64(bytes.count).bigEndian
            withUnsafeBytes(of: &length) { hasher.update(bufferPointer: $0) }
            hasher.update(bufferPointer: bytes)
        }
        func field(_ text: String) {
            var text = text
            text.withUTF8 { field(UnsafeRawBufferPointer($0)) }
        }
        field(tier)
        field(operation)
        field(tenant)
        field(residency)
        var cap = implied.bigEndian
        withUnsafeBytes(of: &cap) { hasher.update(bufferPointer: $0) }
        material.withUnsafeBytes { field($0) }
        let digest = Array(hasher.finalize())
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<8 {
            high = high << 8 | UInt64(digest[index])
            low = low << 8 | UInt64(digest[index + 8])
        }
        return CacheKey(high: high, low: low)
    }

    // MARK: lookups

    /// The exact tier's answer for `plan`, if it has one for the same tenant.
    func lookupExact(_ plan: CachePlan, now: Double) -> CachedAnswer? {
        guard let answer = exact.lookup(plan.exactKey, now: now), answer.tenant == plan.tenant else { return nil }
        return answer
    }

    /// The nearest cached prompts of the partition that the false-hit guards let answer `plan`;
    /// rejections are counted by guard.
    func lookupSemantic(_ plan: CachePlan, vector: [Float], candidates: Int, now: Double) throws(VectorError) -> (CachedAnswer, Float)? {
        guard let partition = plan.partition, let text = plan.semanticText else { return nil }
        let matches = try semantic.nearest(in: partition, to: vector, minimumSimilarity: plan.threshold, limit: candidates, now: now)
        guard !matches.isEmpty else { return nil }
        let incoming = PromptFeatures(text)
        for match in matches {
            let answer = match.payload
            guard answer.tenant == plan.tenant else { continue }
            if let features = answer.features, let disagreement = features.disagreement(with: incoming) {
                metrics.recordCacheGuardRejection(disagreement.rawValue)
                continue
            }
            semantic.markUsed(match.entry, now: now)
            return (answer, match.similarity)
        }
        return nil
    }

    // MARK: coalescing

    /// A flight for `plan`'s request that a request arriving now may wait for.
    func joinableFlight(_ plan: CachePlan) -> CacheFlight? {
        flights.withLock { $0[plan.exactKey] }.flatMap { $0.isJoinable ? $0 : nil }
    }

    /// Registers the request as the one identical requests wait for; nil when another already is.
    func startFlight(_ plan: CachePlan) -> CacheFlight? {
        flights.withLock { flights in
            if let existing = flights[plan.exactKey], existing.isJoinable { return nil }
            let flight = CacheFlight()
            flights[plan.exactKey] = flight
            return flight
        }
    }

    /// Ends `flight`, sharing `answer` (if any) with its waiters.
    func land(_ flight: CacheFlight, plan: CachePlan, answer: CachedAnswer?) {
        flights.withLock { flights in
            if flights[plan.exactKey] === flight { flights[plan.exactKey] = nil }
        }
        flight.end(with: answer)
    }

    /// Bytes of the flight table, for tests: requests in flight that others may wait for.
    var flightsInProgress: Int { flights.withLock { $0.count } }

    // MARK: storing

    func store(_ answer: CachedAnswer, plan: CachePlan, vector: [Float]?) {
        let now = Date().timeIntervalSince1970
        if plan.exactTier { exact.insert(plan.exactKey, answer, now: now) }
        if plan.semanticTier, let vector, let partition = plan.partition {
            do {
                _ = try semantic.insert(in: partition, vector: vector, payload: answer, now: now)
            } catch {
                metrics.recordCacheEmbeddingFailure("invalid_vector")
            }
        }
        metrics.recordCacheSize(tier: "exact", exact.statistics)
        metrics.recordCacheSize(tier: "semantic", semantic.statistics)
    }
}
