/// A cache key of 128 bits. The gateway derives it with SHA-256 over the canonical request (exact tier)
/// or over the partition's parts (semantic tier), keeping the first 128 bits.
public struct CacheKey: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
}

/// How much a cache may hold: entries, bytes (see each cache's per-entry estimate) and age.
public struct CacheLimits: Sendable, Hashable {
    /// At most this many entries (over all partitions for the semantic cache).
    public var maxEntries: Int
    /// At most this many bytes, counted as payload bytes plus the cache's per-entry estimate.
    public var maxBytes: Int
    /// An entry is served for this many seconds after its insertion, never after.
    public var timeToLive: Double

    public init(maxEntries: Int = 10_000, maxBytes: Int = 64 << 20, timeToLive: Double = 3_600) {
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
        self.timeToLive = timeToLive
    }
}

/// Counts a cache keeps since its creation, and its current size.
public struct CacheStatistics: Sendable, Hashable {
    /// Entries held now.
    public var entries = 0
    /// Bytes held now (the same estimate the limits count).
    public var bytes = 0
    /// Partitions held now (semantic cache; 0 for the exact cache).
    public var partitions = 0
    /// Entries removed, least recently used first, to make room within the limits.
    public var evictedForSpace = 0
    /// Entries removed because their time to live had passed.
    public var expired = 0
    /// Entries stored (new or replacing).
    public var inserts = 0
    /// Inserts that replaced an entry of the same key (exact cache).
    public var replaced = 0
    /// Inserts refused because the entry alone is larger than `maxBytes` (or `maxEntries` is 0).
    public var rejectedTooLarge = 0
    /// Vectors refused (wrong dimension, not finite, zero), inserts and queries together.
    public var rejectedVectors = 0
    /// Lookups that returned something.
    public var hits = 0
    /// Lookups that returned nothing.
    public var misses = 0

    public init() {}
}

/// One entry of the semantic cache, as returned by `SemanticCache.insert` and in its matches.
public struct EntryID: Hashable, Sendable {
    /// Unique within one cache, never reused.
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }
}

/// Why a vector was refused.
public enum VectorError: Error, Sendable, Hashable {
    /// The cache's dimension is fixed by its first insert.
    case wrongDimension(expected: Int, got: Int)
    /// A component is NaN or infinite.
    case notFinite
    /// All components are zero (or the vector is empty): it has no direction.
    case zero
}
