import Synchronization

/// The request rates of classes under a `rate_limit` policy: a token bucket per caller of the class
/// (its agent origin, crawler name or address) and tenant, refilled at `requests_per_minute`. The
/// table is bounded: when it is full, buckets that have refilled completely (idle callers) are
/// dropped; if none has, the oldest half goes.
final class EdgeRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    private let buckets = Mutex<[String: Bucket]>([:])
    let capacity: Int

    init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    /// Takes one request from `key`'s bucket at `now` (Unix seconds). nil when admitted, else the
    /// seconds until one request is allowed again.
    func take(_ key: String, requestsPerMinute: Int, now: Double) -> Double? {
        let rate = Double(max(1, requestsPerMinute)) / 60
        let burst = Double(max(1, requestsPerMinute))
        return buckets.withLock { table -> Double? in
            var bucket = table[key] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = min(burst, bucket.tokens + max(0, now - bucket.updated) * rate)
            bucket.updated = now
            defer {
                if table.count >= capacity, table[key] == nil { Self.shrink(&table, to: capacity, now: now, rate: rate, burst: burst) }
                table[key] = bucket
            }
            guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / rate }
            bucket.tokens -= 1
            return nil
        }
    }

    private static func shrink(_ table: inout [String: Bucket], to capacity: Int, now: Double, rate: Double, burst: Double) {
        // A full bucket holds nothing a new one would not: forgetting it changes no answer. (Buckets of
        // other rates are judged by this one's; the error is only ever a forgotten partial bucket.)
        table = table.filter { $0.value.tokens + max(0, now - $0.value.updated) * rate < burst }
        guard table.count >= capacity else { return }
        for key in table.sorted(by: { $0.value.updated < $1.value.updated }).prefix(max(1, table.count / 2)).map(\.key) {
            table[key] = nil
        }
    }

    var count: Int { buckets.withLock { $0.count } }
}
