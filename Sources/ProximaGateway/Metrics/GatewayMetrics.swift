import CoreMetrics
import Metrics
import Prometheus
import ProximaCache
import ProximaCore
import Synchronization

/// The gateway's metrics, registered on its own Prometheus registry (served at `/metrics`).
/// Labelled handles are created once per label set and cached, so recording on the request path
/// costs a dictionary lookup under a short lock, not a registry lookup.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    private let inFlight: Meter
    private let overhead: Metrics.Timer
    private let cacheSavedSeconds: FloatingPointCounter
    private let cacheSavedDollars: FloatingPointCounter
    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let timers = Mutex<[String: Metrics.Timer]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        let latencyBuckets: [Duration] = [
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
            .seconds(30), .seconds(60), .seconds(120),
        ]
        factory.defaultDurationHistogramBuckets = latencyBuckets
        factory.durationHistogramBuckets["proxima_gateway_overhead_seconds"] = [
            .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250),
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(50),
        ]
        self.factory = factory
        self.inFlight = Meter(label: "proxima_requests_in_flight", dimensions: [], factory: factory)
        self.overhead = Metrics.Timer(label: "proxima_gateway_overhead_seconds", dimensions: [], factory: factory)
        self.cacheSavedSeconds = FloatingPointCounter(label: "proxima_cache_saved_generation_seconds_total", dimensions: [], factory: factory)
        self.cacheSavedDollars = FloatingPointCounter(label: "proxima_cache_saved_usd_total", dimensions: [], factory: factory)
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        cached(in: counters, label, dimensions) { CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory) }
    }

    private func timer(_ label: String, _ dimensions: [(String, String)]) -> Metrics.Timer {
        cached(in: timers, label, dimensions) { Metrics.Timer(label: label, dimensions: dimensions, factory: factory) }
    }

    /// The handle for a label set, made once and kept.
    private func cached<Handle>(
        in cache: borrowing Mutex<[String: Handle]>, _ label: String, _ dimensions: [(String, String)], make: () -> Handle
    ) -> Handle {
        var key = label
        for (_, value) in dimensions {
            key += "|"
            key += value
        }
        return cache.withLock { handles in
            if let handle = handles[key] { return handle }
            let handle = make()
            handles[key] = handle
            return handle
        }
    }

    /// A steering header (`x-proxima-policy`, `x-proxima-client-location`) from a caller that may
    /// not steer, ignored.
    func recordIgnoredSteering(header: String) {
        counter("proxima_steering_headers_ignored_total", [("header", header)]).increment()
    }

    /// A request refused by the identify stage (401), or by admission (`reason`: `model`,
    /// `requests`, `tokens`, `concurrency`, `max_tokens`, `budget`).
    func recordRefusal(stage: String, reason: String) {
        counter("proxima_refusals_total", [("stage", stage), ("reason", reason)]).increment()
    }

    /// A poll of the store for identity changes that failed (the last identities stay in use).
    func recordStorePollFailure() {
        counter("proxima_store_poll_failures_total", []).increment()
    }

    /// Identities loaded from the store into the directory (at start, after a change).
    func recordIdentityReload() {
        counter("proxima_identity_reloads_total", []).increment()
    }

    func requestStarted() { inFlight.increment() }
    func requestEnded() { inFlight.decrement() }

    /// One request answered (or failed) with `status`.
    @_spi(Benchmarks) public func recordRequest(operation: InferenceOperation, model: String, endpoint: String, status: Int, duration: Duration) {
        counter(
            "proxima_requests_total",
            [("operation", operation.rawValue), ("model", model), ("endpoint", endpoint), ("status", String(status))]
        ).increment()
        timer("proxima_request_duration_seconds", [("model", model)]).recordNanoseconds(duration.nanoseconds)
    }

    /// Time from the request's arrival to the first token (stream) or the whole answer (non-stream).
    @_spi(Benchmarks) public func recordTimeToFirstToken(model: String, endpoint: String, _ duration: Duration) {
        timer("proxima_ttft_seconds", [("model", model), ("endpoint", endpoint)]).recordNanoseconds(duration.nanoseconds)
    }

    /// Time spent in the gateway itself for one request, upstream wait excluded.
    @_spi(Benchmarks) public func recordOverhead(_ duration: Duration) {
        overhead.recordNanoseconds(duration.nanoseconds)
    }

    @_spi(Benchmarks) public func recordTokens(model: String, usage: TokenUsage, estimated: Bool) {
        let source = estimated ? "estimated" : "reported"
        counter("proxima_tokens_total", [("model", model), ("kind", "prompt"), ("source", source)])
            .increment(by: Int64(usage.promptTokens))
        counter("proxima_tokens_total", [("model", model), ("kind", "completion"), ("source", source)])
            .increment(by: Int64(usage.completionTokens))
    }

    func recordUpstreamError(endpoint: String, kind: UpstreamFailureKind) {
        counter("proxima_upstream_errors_total", [("endpoint", endpoint), ("kind", kind.rawValue)]).increment()
    }

    func recordRetry(model: String) {
        counter("proxima_retries_total", [("model", model)]).increment()
    }

    /// A routing decision: the policy that made it and the endpoint it put first, and the endpoints
    /// it ruled out by reason.
    func recordRouteDecision(policy: String, endpoint: String, exclusions: [RouteExclusion]) {
        counter("proxima_route_decisions_total", [("policy", policy), ("endpoint", endpoint)]).increment()
        for exclusion in exclusions {
            counter("proxima_route_exclusions_total", [("kind", exclusion.kind.rawValue)]).increment()
        }
    }

    /// A hedged request: `sent` when the second copy leaves, then `hedge_won` or `primary_won`.
    func recordHedge(model: String, outcome: String) {
        counter("proxima_hedges_total", [("model", model), ("outcome", outcome)]).increment()
    }

    /// A caller refused or cut off by the server's own limits (`server.callers`), by reason.
    func recordCallerRefusal(_ reason: String) {
        counter("proxima_caller_refusals_total", [("reason", reason)]).increment()
    }

    func recordCallerDisconnect(model: String) {
        counter("proxima_caller_disconnects_total", [("model", model)]).increment()
    }

    // MARK: edge and guards

    /// A request classified by the edge stage: its class (or `suspicious`), and what its policy did
    /// (`allow`, `rate_limit`, `rate_limited`, `cache_only`, `block`).
    func recordEdgeRequest(key: EdgePolicyKey, action: String) {
        counter("proxima_edge_requests_total", [("class", key.rawValue), ("action", action)]).increment()
    }

    /// A claim that failed its proof (an impersonator) or could not be checked, by reason.
    func recordEdgeVerification(kind: String, reason: String) {
        counter("proxima_edge_verification_failures_total", [("kind", kind), ("reason", reason)]).increment()
    }

    /// How long classifying a caller took (directory fetches and DNS lookups included).
    func recordEdgeClassification(_ duration: Duration) {
        timer("proxima_edge_classification_seconds", []).recordNanoseconds(duration.nanoseconds)
    }

    /// A content guard's verdict: category, direction, what was done.
    func recordGuardVerdict(_ verdict: GuardVerdict) {
        counter(
            "proxima_guard_verdicts_total",
            [("category", verdict.category.rawValue), ("direction", verdict.direction.rawValue), ("action", verdict.action)]
        ).increment()
    }

    /// An audit record appended (`written`) or not (`failed`), and how long the request waited for
    /// it to be durable (zero for records nobody waits for).
    func recordAuditWrite(outcome: String, duration: Duration) {
        counter("proxima_audit_records_total", [("outcome", outcome)]).increment()
        if duration > .zero { timer("proxima_audit_write_seconds", []).recordNanoseconds(duration.nanoseconds) }
    }

    /// How long the input guards took on one request.
    func recordGuardScan(_ duration: Duration) {
        timer("proxima_guard_scan_seconds", []).recordNanoseconds(duration.nanoseconds)
    }

    // MARK: cache

    /// A cache lookup: `tier` exact, semantic or none; `outcome` hit, miss or bypass; `reason` why
    /// (stored, coalesced, similar; absent, no_cache; opted_out, cache_control, n, logprobs,
    /// temperature, unreadable).
    func recordCacheLookup(tier: String, outcome: String, reason: String) {
        counter("proxima_cache_lookups_total", [("tier", tier), ("outcome", outcome), ("reason", reason)]).increment()
    }

    /// A semantic candidate above the threshold that a false-hit guard refused, by guard.
    func recordCacheGuardRejection(_ guardName: String) {
        counter("proxima_cache_guard_rejections_total", [("guard", guardName)]).increment()
    }

    /// An embedding that could not be used (`timeout`, `error`, `invalid_vector`): the request went on uncached.
    func recordCacheEmbeddingFailure(_ reason: String) {
        counter("proxima_cache_embedding_failures_total", [("reason", reason)]).increment()
    }

    /// How long the embedding call took, failures included.
    func recordCacheEmbedding(_ duration: Duration) {
        timer("proxima_cache_embedding_seconds", []).recordNanoseconds(duration.nanoseconds)
    }

    /// How long a tier's search took (the embedding call excluded).
    func recordCacheLookupTime(tier: String, _ duration: Duration) {
        timer("proxima_cache_lookup_seconds", [("tier", tier)]).recordNanoseconds(duration.nanoseconds)
    }

    /// An answer served from the cache: the tokens it did not generate, and the generation time and
    /// money the original cost (saved this time).
    func recordCacheServed(_ answer: CachedAnswer, billed: TokenUsage) {
        counter("proxima_cache_saved_tokens_total", [("kind", "completion")]).increment(by: Int64(answer.usage.completionTokens))
        counter("proxima_cache_saved_tokens_total", [("kind", "prompt")]).increment(by: Int64(answer.usage.promptTokens))
        cacheSavedSeconds.increment(by: max(0, answer.generationSeconds))
        cacheSavedDollars.increment(by: Double(answer.cost.nanodollars) / 1e9)
    }

    /// A tier's size after a change.
    func recordCacheSize(tier: String, _ statistics: CacheStatistics) {
        Meter(label: "proxima_cache_entries", dimensions: [("tier", tier)], factory: factory).set(statistics.entries)
        Meter(label: "proxima_cache_bytes", dimensions: [("tier", tier)], factory: factory).set(statistics.bytes)
        Meter(label: "proxima_cache_evictions", dimensions: [("tier", tier), ("reason", "space")], factory: factory)
            .set(statistics.evictedForSpace)
        Meter(label: "proxima_cache_evictions", dimensions: [("tier", tier), ("reason", "expired")], factory: factory).set(statistics.expired)
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}

/// How an upstream attempt failed, as counted in `proxima_upstream_errors_total`.
enum UpstreamFailureKind: String, Sendable {
    case connect
    case timeout
    case status5xx = "status_5xx"
    case rateLimited = "status_429"
    case protocolError = "protocol"
    case streamAborted = "stream_aborted"
    /// The gateway's own pool to the endpoint was full: not the endpoint's failure.
    case poolFull = "pool_full"
}
