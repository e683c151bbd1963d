@testable import ProximaCache
import Dispatch
import Synchronization
import Testing

/// Graph builds and compactions run on the cache's rebuild queue, never on the caller's thread nor
/// under a partition's lock. A gate in the `beforeSwap` hook holds a rebuild between its build and
/// its swap, so the tests can look up, insert and evict while it is in flight.
struct RebuildTests {
    typealias Answer = SemanticCacheTests.Answer

    /// When armed, holds the next rebuild that reaches it (after its build, before its swap) until
    /// `open()`; then disarms.
    final class Gate: Sendable {
        private let armed: Mutex<Bool>
        private let reached = DispatchSemaphore(value: 0)
        private let released = DispatchSemaphore(value: 0)

        init(armed: Bool) {
            self.armed = Mutex(armed)
        }

        func arm() { armed.withLock { $0 = true } }

        func pass() {
            guard armed.withLock({ armed in defer { armed = false }; return armed }) else { return }
            reached.signal()
            released.wait()
        }

        /// Whether a rebuild is held at the gate (waits for it up to a minute).
        func held() -> Bool { reached.wait(timeout: .now() + 60) == .success }

        func open() { released.signal() }
    }

    static func cache(entries: Int, ttl: Double = 3_600, approximateAbove: Int, gate: Gate) -> SemanticCache<Answer> {
        SemanticCache<Answer>(
            limits: SemanticCacheTests.limits(entries: entries, ttl: ttl), approximateAbove: approximateAbove,
            index: SemanticCacheTests.testIndex, beforeSwap: { gate.pass() })
    }

    /// Every lookup of a stored point returns only live entries, and a live point finds itself first.
    static func expectAnswers(
        _ cache: SemanticCache<Answer>, _ points: [[Float]], _ ids: [EntryID], live: Range<Int>, now: Double,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let alive = Set(ids[live])
        for n in ids.indices {
            let found = try cache.nearest(in: SemanticCacheTests.a, to: points[n], minimumSimilarity: -1, limit: 5, now: now)
            #expect(found.allSatisfy { alive.contains($0.entry) }, "point \(n)", sourceLocation: sourceLocation)
            if live.contains(n) {
                #expect(found.first?.entry == ids[n], "live point \(n) lost", sourceLocation: sourceLocation)
            }
        }
    }

    @Test func lookupsStayRightWhileACompactionRunsAndChangesMadeMeanwhileSurviveTheSwap() throws {
        var random = SplitMix64(seed: 21)
        let points = (0..<600).map { _ in SemanticCacheTests.randomVector(16, &random) }
        let gate = Gate(armed: false)
        // Entries expire 100 s after insertion; the first 400 go in at 0, the rest at 60.
        let cache = Self.cache(entries: 400, ttl: 100, approximateAbove: 100, gate: gate)
        var ids: [EntryID] = []
        for n in 0..<400 {
            ids.append(try cache.insert(in: SemanticCacheTests.a, vector: points[n], payload: Answer(text: "\(n)"), now: 0))
        }
        cache.waitForRebuilds()
        #expect(cache.isApproximate(SemanticCacheTests.a))
        #expect(cache.rowCounts(SemanticCacheTests.a)! == (400, 400))

        // 150 evictions: the 133rd makes the compaction due (a quarter of 533 rows marked); it runs and
        // is held before its swap.
        gate.arm()
        for n in 400..<550 {
            ids.append(try cache.insert(in: SemanticCacheTests.a, vector: points[n], payload: Answer(text: "\(n)"), now: 60))
        }
        #expect(cache.rebuildsPending == 1)
        try #require(gate.held())
        // Built, not swapped in: still answering from the old graph, marked rows skipped.
        try Self.expectAnswers(cache, points, ids, live: 150..<550, now: 61)
        // 50 more inserts and evictions after the snapshot: replayed onto the new index at the swap.
        for n in 550..<600 {
            ids.append(try cache.insert(in: SemanticCacheTests.a, vector: points[n], payload: Answer(text: "\(n)"), now: 60))
        }
        try Self.expectAnswers(cache, points, ids, live: 200..<600, now: 61)
        gate.open()
        cache.waitForRebuilds()
        #expect(cache.rebuildsPending == 0)
        #expect(cache.isApproximate(SemanticCacheTests.a))
        // Compacted (the old index had 600 rows): only the evictions replayed after the snapshot, at
        // most the last 17 of the first 150 and the 50 later ones, remain as marked rows.
        let counts = try #require(cache.rowCounts(SemanticCacheTests.a))
        #expect(counts.live == 400)
        #expect(counts.stored >= 450 && counts.stored <= 467, "\(counts.stored) rows stored")
        try Self.expectAnswers(cache, points, ids, live: 200..<600, now: 61)
        // Expiry still holds on the rebuilt partition: the entries inserted at 0 are gone at 130.
        try Self.expectAnswers(cache, points, ids, live: 400..<600, now: 130)
    }

    @Test func theFirstGraphIsBuiltOffTheCallerAndPartitionsNeverCrossMeanwhile() throws {
        var random = SplitMix64(seed: 23)
        let shared = (0..<60).map { _ in SemanticCacheTests.randomVector(16, &random) }
        let gate = Gate(armed: true)
        let cache = Self.cache(entries: 1_000, approximateAbove: 20, gate: gate)
        let (a, b) = (SemanticCacheTests.a, SemanticCacheTests.b)
        for (n, v) in shared[..<30].enumerated() {
            try cache.insert(in: a, vector: v, payload: Answer(text: "A\(n)", partition: 0), now: 0)
        }
        // A's graph is built and held before its swap: the insert that made it due has returned, and
        // A still scans. B's first build waits behind it on the rebuild queue.
        try #require(gate.held())
        #expect(!cache.isApproximate(a))
        for (n, v) in shared.enumerated() {
            try cache.insert(in: b, vector: v, payload: Answer(text: "B\(n)", partition: 1), now: 0)
        }
        for (n, v) in shared[30...].enumerated() {
            try cache.insert(in: a, vector: v, payload: Answer(text: "A\(n + 30)", partition: 0), now: 0)
        }
        func check() throws {
            for (n, v) in shared.enumerated() {
                let inA = try cache.nearest(in: a, to: v, minimumSimilarity: -1, limit: 60, now: 1)
                let inB = try cache.nearest(in: b, to: v, minimumSimilarity: -1, limit: 60, now: 1)
                #expect(inA.allSatisfy { $0.payload.partition == 0 } && inB.allSatisfy { $0.payload.partition == 1 })
                #expect(inA.first?.payload.text == "A\(n)" && inB.first?.payload.text == "B\(n)")
            }
        }
        try check()
        gate.open()
        cache.waitForRebuilds()
        #expect(cache.isApproximate(a) && cache.isApproximate(b))
        // The 30 entries A got after the snapshot were replayed onto its new graph.
        #expect(cache.rowCounts(a)! == (60, 60))
        try check()
    }

    @Test func aRebuildOfADroppedPartitionIsDiscarded() throws {
        var random = SplitMix64(seed: 25)
        let gate = Gate(armed: true)
        let cache = Self.cache(entries: 1_000, ttl: 10, approximateAbove: 20, gate: gate)
        let (a, b) = (SemanticCacheTests.a, SemanticCacheTests.b)
        for n in 0..<30 {
            try cache.insert(in: a, vector: SemanticCacheTests.randomVector(16, &random), payload: Answer(text: "\(n)"), now: 0)
        }
        try #require(gate.held())
        // An insert elsewhere after A's entries expired sweeps them all: A is dropped.
        try cache.insert(in: b, vector: SemanticCacheTests.randomVector(16, &random), payload: Answer(text: "b"), now: 20)
        #expect(cache.statistics.partitions == 1)
        gate.open()
        cache.waitForRebuilds()
        #expect(cache.statistics.partitions == 1)
        #expect(try cache.nearest(in: a, to: SemanticCacheTests.randomVector(16, &random), minimumSimilarity: -1, limit: 10, now: 21).isEmpty)
        let again = try cache.insert(in: a, vector: SemanticCacheTests.axis16, payload: Answer(text: "new"), now: 21)
        #expect(try cache.nearest(in: a, to: SemanticCacheTests.axis16, minimumSimilarity: -1, limit: 10, now: 22).map(\.entry) == [again])
    }
}
