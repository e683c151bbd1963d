import Synchronization

/// The exact tier: answers by a 128-bit key over the canonical request, bounded by entries and bytes,
/// least recently used evicted first, every entry expiring `timeToLive` seconds after its insertion.
///
/// Bytes per entry are `payload.byteCount + ExactCache.entryOverhead`. All operations are O(1) under
/// one lock (a dictionary probe and a few links), so one lock serves all callers.
public final class ExactCache<Payload: CachePayload>: Sendable {
    /// Bytes counted per entry beyond its payload: the key (16), the node with its two pairs of links,
    /// expiry and size (48 plus the payload's inline storage), and the dictionary's slot (about 32).
    public static var entryOverhead: Int { 96 + MemoryLayout<Payload>.size }

    public let limits: CacheLimits
    private let state: Mutex<State>

    private struct State {
        var list = LRUList<CacheKey, Payload>()
        var statistics = CacheStatistics()
    }

    public init(limits: CacheLimits) {
        self.limits = limits
        self.state = Mutex(State())
    }

    /// The payload stored for the key, if any and not expired; a hit becomes the most recently used,
    /// an expired entry is removed and counts as a miss.
    public func lookup(_ key: CacheKey, now: Double) -> Payload? {
        state.withLock { state -> Payload? in
            guard let slot = state.list.slot(for: key) else {
                state.statistics.misses += 1
                return nil
            }
            if state.list.expiresAt(slot) <= now {
                state.list.remove(slot)
                state.statistics.expired += 1
                state.statistics.misses += 1
                return nil
            }
            state.list.touch(slot)
            state.statistics.hits += 1
            return state.list.value(at: slot)
        }
    }

    /// Stores the payload under the key, replacing any previous one, then evicts least recently used
    /// entries until the cache is within its limits. A payload that alone exceeds `maxBytes` is not
    /// stored (and an older payload of the same key is removed, so that it is not served instead).
    public func insert(_ key: CacheKey, _ payload: Payload, now: Double) {
        let bytes = payload.byteCount + Self.entryOverhead
        let limits = self.limits
        state.withLock { state in
            Self.expire(&state, now: now)
            guard bytes <= limits.maxBytes, limits.maxEntries > 0 else {
                state.statistics.rejectedTooLarge += 1
                if let old = state.list.slot(for: key) { state.list.remove(old) }
                return
            }
            let (slot, replaced) = state.list.insert(key, payload, bytes: bytes, expiresAt: now + limits.timeToLive)
            state.statistics.inserts += 1
            if replaced { state.statistics.replaced += 1 }
            while state.list.count > limits.maxEntries || state.list.bytes > limits.maxBytes,
                  let victim = state.list.leastRecentlyUsed, victim != slot {
                state.list.remove(victim)
                state.statistics.evictedForSpace += 1
            }
        }
    }

    /// Removes the entry of the key, if any.
    public func remove(_ key: CacheKey) {
        state.withLock { state in
            if let slot = state.list.slot(for: key) { state.list.remove(slot) }
        }
    }

    public var statistics: CacheStatistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.entries = state.list.count
            statistics.bytes = state.list.bytes
            return statistics
        }
    }

    /// Removes expired entries from the oldest end (amortised O(1) per insert).
    private static func expire(_ state: inout State, now: Double) {
        while let oldest = state.list.oldest, state.list.expiresAt(oldest) <= now {
            state.list.remove(oldest)
            state.statistics.expired += 1
        }
    }
}
