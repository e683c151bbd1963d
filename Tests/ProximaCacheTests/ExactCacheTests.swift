import ProximaCache
import Testing

struct ExactCacheTests {
    struct Blob: CachePayload {
        var name: String
        var size: Int
        var byteCount: Int { size }
    }

    static func key(_ n: UInt64) -> CacheKey { CacheKey(high: n &* 0x9E37_79B9_7F4A_7C15, low: n) }

    @Test func aStoredAnswerIsFoundAndAnUnknownKeyMisses() {
        let cache = ExactCache<Blob>(limits: CacheLimits(maxEntries: 10, maxBytes: 1 << 20, timeToLive: 60))
        cache.insert(Self.key(1), Blob(name: "one", size: 10), now: 0)
        #expect(cache.lookup(Self.key(1), now: 1)?.name == "one")
        #expect(cache.lookup(Self.key(2), now: 1) == nil)
        // Keys differing in one half only are different keys.
        #expect(cache.lookup(CacheKey(high: Self.key(1).high, low: 2), now: 1) == nil)
        let statistics = cache.statistics
        #expect(statistics.hits == 1 && statistics.misses == 2 && statistics.entries == 1 && statistics.inserts == 1)
        #expect(statistics.bytes == 10 + ExactCache<Blob>.entryOverhead)
    }

    @Test func insertingAgainReplacesTheAnswer() {
        let cache = ExactCache<Blob>(limits: CacheLimits(maxEntries: 10, maxBytes: 1 << 20, timeToLive: 60))
        cache.insert(Self.key(1), Blob(name: "old", size: 10), now: 0)
        cache.insert(Self.key(1), Blob(name: "new", size: 30), now: 1)
        #expect(cache.lookup(Self.key(1), now: 2)?.name == "new")
        #expect(cache.statistics.entries == 1)
        #expect(cache.statistics.replaced == 1)
        #expect(cache.statistics.bytes == 30 + ExactCache<Blob>.entryOverhead)
    }

    @Test func anEntryExpiresAfterItsTimeToLiveEvenIfUsed() {
        let cache = ExactCache<Blob>(limits: CacheLimits(maxEntries: 10, maxBytes: 1 << 20, timeToLive: 10))
        cache.insert(Self.key(1), Blob(name: "one", size: 1), now: 100)
        #expect(cache.lookup(Self.key(1), now: 109.9) != nil)
        #expect(cache.lookup(Self.key(1), now: 110) == nil)
        #expect(cache.statistics.expired == 1)
        #expect(cache.statistics.entries == 0)
        #expect(cache.statistics.bytes == 0)
    }

    @Test func expiredEntriesAreSweptByLaterInserts() {
        let cache = ExactCache<Blob>(limits: CacheLimits(maxEntries: 100, maxBytes: 1 << 20, timeToLive: 10))
        for n in 0..<5 { cache.insert(Self.key(UInt64(n)), Blob(name: "\(n)", size: 1), now: Double(n)) }
        cache.insert(Self.key(99), Blob(name: "late", size: 1), now: 12.5)
        // Inserted at 0, 1 and 2 expired by 12.5; 3 and 4 not yet.
        #expect(cache.statistics.expired == 3)
        #expect(cache.statistics.entries == 3)
        #expect(cache.lookup(Self.key(3), now: 12.5) != nil)
    }

    @Test func theLeastRecentlyUsedIsEvictedWhenTheCountIsFull() {
        let cache = ExactCache<Blob>(limits: CacheLimits(maxEntries: 3, maxBytes: 1 << 20, timeToLive: 60))
        for n in 1...3 { cache.insert(Self.key(UInt64(n)), Blob(name: "\(n)", size: 1), now: 0) }
        #expect(cache.lookup(Self.key(1), now: 1) != nil)  // 1 is now more recent than 2 and 3
        cache.insert(Self.key(4), Blob(name: "4", size: 1), now: 2)
        #expect(cache.lookup(Self.key(2), now: 3) == nil)
        #expect(cache.lookup(Self.key(1), now: 3) != nil)
        #expect(cache.lookup(Self.key(3), now: 3) != nil)
        #expect(cache.lookup(Self.key(4), now: 3) != nil)
        #expect(cache.statistics.evictedForSpace == 1)
        #expect(cache.statistics.entries == 3)
    }

    @Test func bytesBoundTheCacheAndAnOversizedAnswerIsNotStored() {
        let overhead = ExactCache<Blob>.entryOverhead
        let cache = ExactCache<Blob>(limits: CacheLimits(maxEntries: 100, maxBytes: 3 * (100 + overhead), timeToLive: 60))
        for n in 1...3 { cache.insert(Self.key(UInt64(n)), Blob(name: "\(n)", size: 100), now: 0) }
        #expect(cache.statistics.evictedForSpace == 0)
        #expect(cache.lookup(Self.key(1), now: 1) != nil)  // 2 is now the least recently used
        // 150 bytes and an entry's overhead: one more entry than fits, and 50 bytes more, so the two
        // least recently used (2, then 3) go.
        cache.insert(Self.key(4), Blob(name: "4", size: 150), now: 1)
        #expect(cache.lookup(Self.key(2), now: 2) == nil)
        #expect(cache.lookup(Self.key(3), now: 2) == nil)
        #expect(cache.lookup(Self.key(1), now: 2) != nil)
        #expect(cache.lookup(Self.key(4), now: 2) != nil)
        #expect(cache.statistics.bytes == 250 + 2 * overhead)
        #expect(cache.statistics.evictedForSpace == 2)

        cache.insert(Self.key(5), Blob(name: "huge", size: 3 * (100 + overhead)), now: 3)
        #expect(cache.lookup(Self.key(5), now: 3) == nil)
        #expect(cache.statistics.rejectedTooLarge == 1)
        #expect(cache.lookup(Self.key(4), now: 3) != nil)  // nothing was evicted for it
    }

    @Test func manyTasksShareOneCacheWithinItsLimits() async {
        let limits = CacheLimits(maxEntries: 200, maxBytes: 1 << 20, timeToLive: 60)
        let cache = ExactCache<Blob>(limits: limits)
        await withTaskGroup(of: Int.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var found = 0
                    for n in 0..<2_000 {
                        let key = Self.key(UInt64(task * 10_000 + n % 300))
                        if let blob = cache.lookup(key, now: 1) {
                            #expect(blob.name == "\(task)-\(n % 300)")
                            found += 1
                        } else {
                            cache.insert(key, Blob(name: "\(task)-\(n % 300)", size: 8), now: 1)
                        }
                    }
                    return found
                }
            }
            for await _ in group {}
        }
        let statistics = cache.statistics
        #expect(statistics.entries <= 200)
        #expect(statistics.hits + statistics.misses == 16_000)
        #expect(statistics.inserts == statistics.misses)
    }
}
