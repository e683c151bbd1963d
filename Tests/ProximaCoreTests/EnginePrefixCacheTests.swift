import Testing
@testable import ProximaCore

@Suite struct EnginePrefixCacheTests {
    /// Runs `first` to completion, then `second` alone, and returns the second's TTFT and finish event.
    static func secondAfterFirst(_ first: [UInt64], _ second: [UInt64]) -> (engine: EngineModel, ttft: Double, finished: EngineEvent) {
        var engine = EngineModel(profile: roundEngineProfile)
        engine.submit(EngineRequest(id: 1, promptTokens: 500, outputTokens: 2, prefixBlockIDs: first), at: 0)
        _ = engine.drain()
        engine.submit(EngineRequest(id: 2, promptTokens: 500, outputTokens: 2, prefixBlockIDs: second), at: 10)
        let events = engine.drain()
        return (engine, firstTokenTime(of: 2, in: events)! - 10, events.last!)
    }

    @Test func sharedLeadingBlocksSkipTheirPrefill() {
        let alone = Self.secondAfterFirst([], [1, 2, 3, 9, 10])
        let shared = Self.secondAfterFirst([1, 2, 3, 4, 5], [1, 2, 3, 9, 10])
        #expect(isClose(alone.ttft, 0.5))
        #expect(isClose(shared.ttft, 0.2))
        #expect(shared.engine.prefixCacheQueries == 10)
        #expect(shared.engine.prefixCacheHits == 3)
        #expect(shared.engine.cachedPromptTokens == 300)
        #expect(shared.engine.promptTokensProcessed == 700)
        #expect(isClose(shared.finished.time, 10.211))
        #expect(shared.finished == .finished(id: 2, at: shared.finished.time, promptTokens: 500, outputTokens: 2, cachedPromptTokens: 300))
    }

    @Test func matchesAfterTheFirstMissDoNotCount() {
        let shifted = Self.secondAfterFirst([1, 2, 3, 4, 5], [9, 2, 3, 4, 5])
        #expect(shifted.engine.prefixCacheHits == 0)
        #expect(isClose(shifted.ttft, 0.5))
    }

    @Test func aFullyCachedPromptStillComputesItsLastToken() {
        let repeated = Self.secondAfterFirst([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
        #expect(repeated.engine.prefixCacheHits == 5)
        #expect(repeated.engine.cachedPromptTokens == 499)
        #expect(isClose(repeated.ttft, 0.001))
    }

    @Test func aPrefixIsCachedOnlyOnceItsPrefillCompletes() {
        var engine = EngineModel(profile: roundEngineProfile)
        engine.submit(EngineRequest(id: 1, promptTokens: 500, outputTokens: 2, prefixBlockIDs: [1, 2, 3]), at: 0)
        engine.submit(EngineRequest(id: 2, promptTokens: 500, outputTokens: 2, prefixBlockIDs: [1, 2, 3]), at: 0)
        _ = engine.drain()
        #expect(engine.prefixCacheHits == 0)
        engine.submit(EngineRequest(id: 3, promptTokens: 500, outputTokens: 2, prefixBlockIDs: [1, 2, 3]), at: 5)
        #expect(engine.prefixCacheHits == 3)
    }

    @Test func theLeastRecentlyUsedBlockIsEvictedWhenFull() {
        var cache = PrefixCache(capacityBlocks: 3)
        for block: UInt64 in [1, 2, 3] { cache.use(block) }
        cache.use(1)
        cache.use(4)
        #expect(cache.count == 3)
        #expect(!cache.contains(2))
        #expect(cache.blocksByRecency == [3, 1, 4])
        cache.use(5)
        #expect(cache.blocksByRecency == [1, 4, 5])
    }

    @Test func aPromptsLeadingBlocksAreEvictedLast() {
        var cache = PrefixCache(capacityBlocks: 4)
        cache.use([1, 2, 3])
        #expect(cache.blocksByRecency == [3, 2, 1])
        cache.use([7, 8])
        #expect(cache.blocksByRecency == [2, 1, 8, 7])
        #expect(cache.leadingCachedBlocks(of: [1, 2, 3]) == 2)
        #expect(cache.leadingCachedBlocks(of: [7, 8, 1]) == 3)
        #expect(cache.leadingCachedBlocks(of: [3, 2]) == 0)
    }

    @Test func theEngineEvictsOldPrefixesWhenItsCacheFills() {
        var profile = roundEngineProfile
        profile.kvCapacityTokens = 600  // six blocks of 100 tokens
        var engine = EngineModel(profile: profile)
        for (index, blocks) in [[1, 2, 3], [4, 5, 6], [1, 2, 3], [7, 8, 9], [4, 5]].enumerated() {
            engine.submit(
                EngineRequest(id: index, promptTokens: 300, outputTokens: 1, prefixBlockIDs: blocks.map(UInt64.init)),
                at: Double(index) * 10)
            _ = engine.drain()
        }
        // [1, 2, 3] hit once; [7, 8, 9] then evicted [4, 5, 6], the least recently used.
        #expect(engine.prefixCacheHits == 3)
        #expect(engine.prefixCacheQueries == 14)
    }
}
