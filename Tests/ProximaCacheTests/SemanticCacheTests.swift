@testable import ProximaCache
import Foundation
import Testing

struct SemanticCacheTests {
    struct Answer: CachePayload {
        var text: String
        var partition: Int = 0
        var size: Int = 16
        var byteCount: Int { size }
    }

    static let a = CacheKey(high: 1, low: 1)
    static let b = CacheKey(high: 1, low: 2)
    static let c = CacheKey(high: 2, low: 1)

    static func limits(entries: Int = 1_000, bytes: Int = 1 << 26, ttl: Double = 3_600) -> CacheLimits {
        CacheLimits(maxEntries: entries, maxBytes: bytes, timeToLive: ttl)
    }

    /// A unit vector along one axis (plus an optional second component), dimension 8.
    static func axis(_ i: Int, _ j: Int? = nil, _ weight: Float = 0) -> [Float] {
        var v = [Float](repeating: 0, count: 8)
        v[i] = 1
        if let j { v[j] = weight }
        return v
    }

    @Test func aSimilarQueryHitsAndADissimilarOneMisses() throws {
        let cache = SemanticCache<Answer>(limits: Self.limits())
        let id = try cache.insert(in: Self.a, vector: Self.axis(0), payload: Answer(text: "zero"), now: 0)
        // Not normalised on the way in: 3 * axis is the same direction.
        let same = try cache.nearest(in: Self.a, to: Self.axis(0).map { $0 * 3 }, minimumSimilarity: 0.99, limit: 1, now: 1)
        #expect(same.count == 1)
        #expect(same.first?.entry == id)
        #expect(same.first?.payload.text == "zero")
        #expect(abs((same.first?.similarity ?? 0) - 1) < 1e-5)
        // cos = 1 / sqrt(1.25) = 0.894
        let near = try cache.nearest(in: Self.a, to: Self.axis(0, 1, 0.5), minimumSimilarity: 0.85, limit: 1, now: 1)
        #expect(abs((near.first?.similarity ?? 0) - 0.8944) < 1e-3)
        #expect(try cache.nearest(in: Self.a, to: Self.axis(0, 1, 0.5), minimumSimilarity: 0.9, limit: 1, now: 1).isEmpty)
        #expect(try cache.nearest(in: Self.a, to: Self.axis(3), minimumSimilarity: 0.01, limit: 1, now: 1).isEmpty)
        #expect(cache.statistics.hits == 2 && cache.statistics.misses == 2)
    }

    @Test func resultsComeBestFirstUpToTheLimit() throws {
        let cache = SemanticCache<Answer>(limits: Self.limits())
        for (n, weight) in [Float(0.1), 0.9, 0.5, 0.3].enumerated() {
            try cache.insert(in: Self.a, vector: Self.axis(0, 1, weight), payload: Answer(text: "\(n)"), now: 0)
        }
        let found = try cache.nearest(in: Self.a, to: Self.axis(0), minimumSimilarity: 0, limit: 3, now: 1)
        #expect(found.map(\.payload.text) == ["0", "3", "2"])
        #expect(found.map(\.similarity) == found.map(\.similarity).sorted(by: >))
    }

    @Test func partitionsNeverCross() throws {
        let cache = SemanticCache<Answer>(limits: Self.limits())
        try cache.insert(in: Self.b, vector: Self.axis(0), payload: Answer(text: "tenant B"), now: 0)
        // The identical vector in A finds nothing at any threshold.
        #expect(try cache.nearest(in: Self.a, to: Self.axis(0), minimumSimilarity: -1, limit: 10, now: 1).isEmpty)
        try cache.insert(in: Self.a, vector: Self.axis(5), payload: Answer(text: "tenant A"), now: 0)
        let found = try cache.nearest(in: Self.a, to: Self.axis(0), minimumSimilarity: -1, limit: 10, now: 1)
        #expect(found.map(\.payload.text) == ["tenant A"])
        #expect(cache.statistics.partitions == 2)
    }

    @Test func partitionsNeverCrossInTheApproximateIndexEither() throws {
        let cache = SemanticCache<Answer>(limits: Self.limits(), approximateAbove: 20)
        var random = SplitMix64(seed: 7)
        let shared = (0..<50).map { _ in Self.randomVector(16, &random) }
        for (n, v) in shared.enumerated() {
            try cache.insert(in: Self.a, vector: v, payload: Answer(text: "A\(n)", partition: 0), now: 0)
            try cache.insert(in: Self.b, vector: v, payload: Answer(text: "B\(n)", partition: 1), now: 0)
        }
        cache.waitForRebuilds()
        #expect(cache.isApproximate(Self.a) && cache.isApproximate(Self.b))
        for v in shared {
            let found = try cache.nearest(in: Self.a, to: v, minimumSimilarity: -1, limit: 50, now: 1)
            #expect(!found.isEmpty)
            #expect(found.allSatisfy { $0.payload.partition == 0 })
        }
    }

    @Test func anEntryIsNeverReturnedAfterItsTimeToLiveAndEmptyPartitionsAreDropped() throws {
        let cache = SemanticCache<Answer>(limits: Self.limits(ttl: 10))
        try cache.insert(in: Self.a, vector: Self.axis(0), payload: Answer(text: "old"), now: 0)
        #expect(try cache.nearest(in: Self.a, to: Self.axis(0), minimumSimilarity: 0.5, limit: 1, now: 9.9).count == 1)
        #expect(try cache.nearest(in: Self.a, to: Self.axis(0), minimumSimilarity: 0.5, limit: 1, now: 10).isEmpty)
        let statistics = cache.statistics
        #expect(statistics.expired == 1)
        #expect(statistics.entries == 0)
        #expect(statistics.bytes == 0)
        #expect(statistics.partitions == 0)
        // An insert sweeps expired entries of other partitions too.
        try cache.insert(in: Self.b, vector: Self.axis(1), payload: Answer(text: "b"), now: 20)
        try cache.insert(in: Self.c, vector: Self.axis(1), payload: Answer(text: "c"), now: 35)
        #expect(cache.statistics.entries == 1)
        #expect(cache.statistics.partitions == 1)
    }

    @Test func theLeastRecentlyUsedIsEvictedAcrossPartitions() throws {
        let cache = SemanticCache<Answer>(limits: Self.limits(entries: 3))
        let first = try cache.insert(in: Self.a, vector: Self.axis(0), payload: Answer(text: "a0"), now: 0)
        try cache.insert(in: Self.b, vector: Self.axis(1), payload: Answer(text: "b1"), now: 1)
        try cache.insert(in: Self.a, vector: Self.axis(2), payload: Answer(text: "a2"), now: 2)
        cache.markUsed(first, now: 3)
        try cache.insert(in: Self.c, vector: Self.axis(3), payload: Answer(text: "c3"), now: 4)
        // b1 was the least recently used: gone, and B with it.
        #expect(try cache.nearest(in: Self.b, to: Self.axis(1), minimumSimilarity: -1, limit: 5, now: 5).isEmpty)
        #expect(try cache.nearest(in: Self.a, to: Self.axis(0), minimumSimilarity: -1, limit: 5, now: 5).count == 2)
        let statistics = cache.statistics
        #expect(statistics.evictedForSpace == 1)
        #expect(statistics.entries == 3)
        #expect(statistics.partitions == 2)
    }

    @Test func bytesBoundTheCacheAndAnOversizedEntryIsNotStored() throws {
        let perEntry = 100 + 4 * 8 + SemanticCache<Answer>.entryOverhead
        let cache = SemanticCache<Answer>(limits: Self.limits(bytes: 2 * perEntry))
        try cache.insert(in: Self.a, vector: Self.axis(0), payload: Answer(text: "0", size: 100), now: 0)
        try cache.insert(in: Self.a, vector: Self.axis(1), payload: Answer(text: "1", size: 100), now: 1)
        #expect(cache.statistics.bytes == 2 * perEntry)
        try cache.insert(in: Self.a, vector: Self.axis(2), payload: Answer(text: "1b", size: 50), now: 2)
        // Three entries where two fit in bytes: the least recently used goes.
        #expect(cache.statistics.bytes == 2 * perEntry - 50)
        #expect(cache.statistics.evictedForSpace == 1)
        #expect(try cache.nearest(in: Self.a, to: Self.axis(0), minimumSimilarity: 0.5, limit: 1, now: 3).isEmpty)
        #expect(try cache.nearest(in: Self.a, to: Self.axis(1), minimumSimilarity: 0.5, limit: 1, now: 3).count == 1)

        let huge = try cache.insert(in: Self.a, vector: Self.axis(3), payload: Answer(text: "huge", size: 2 * perEntry), now: 4)
        #expect(cache.statistics.rejectedTooLarge == 1)
        #expect(try cache.nearest(in: Self.a, to: Self.axis(3), minimumSimilarity: 0.5, limit: 1, now: 5).allSatisfy { $0.entry != huge })
        #expect(cache.statistics.entries == 2)  // nothing was evicted for it
    }

    @Test func invalidVectorsAreRejected() throws {
        let cache = SemanticCache<Answer>(limits: Self.limits())
        #expect(throws: VectorError.zero) { try cache.insert(in: Self.a, vector: [0, 0, 0], payload: Answer(text: ""), now: 0) }
        #expect(throws: VectorError.zero) { try cache.insert(in: Self.a, vector: [], payload: Answer(text: ""), now: 0) }
        #expect(throws: VectorError.notFinite) { try cache.insert(in: Self.a, vector: [1, .nan, 0], payload: Answer(text: ""), now: 0) }
        #expect(throws: VectorError.notFinite) { try cache.insert(in: Self.a, vector: [1, .infinity], payload: Answer(text: ""), now: 0) }
        // Nothing fixed the dimension yet: a query finds nothing.
        #expect(try cache.nearest(in: Self.a, to: [1, 2, 3], minimumSimilarity: 0, limit: 1, now: 0).isEmpty)
        try cache.insert(in: Self.a, vector: Self.axis(0), payload: Answer(text: "eight"), now: 0)
        #expect(cache.dimension == 8)
        #expect(throws: VectorError.wrongDimension(expected: 8, got: 3)) {
            try cache.insert(in: Self.b, vector: [1, 2, 3], payload: Answer(text: ""), now: 0)
        }
        #expect(throws: VectorError.wrongDimension(expected: 8, got: 9)) {
            try cache.nearest(in: Self.a, to: [Float](repeating: 1, count: 9), minimumSimilarity: 0, limit: 1, now: 0)
        }
        #expect(throws: VectorError.notFinite) {
            try cache.nearest(in: Self.a, to: [1, 0, 0, 0, 0, 0, 0, .nan], minimumSimilarity: 0, limit: 1, now: 0)
        }
        #expect(throws: VectorError.zero) {
            try cache.nearest(in: Self.a, to: [Float](repeating: 0, count: 8), minimumSimilarity: 0, limit: 1, now: 0)
        }
        #expect(cache.statistics.rejectedVectors == 8)
        #expect(cache.statistics.entries == 1)
    }

    // MARK: the approximate index

    static func randomVector(_ dimension: Int, _ random: inout SplitMix64) -> [Float] {
        (0..<dimension).map { _ in Float(gaussian(&random)) }
    }

    static func gaussian(_ random: inout SplitMix64) -> Double {
        let u = random.nextUnit(), v = random.nextUnit()
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }

    /// Points around `centres` random centres, each at cosine about 0.8 from its centre.
    static func clustered(_ count: Int, dimension: Int, centres: Int, _ random: inout SplitMix64) -> [[Float]] {
        let middles = (0..<centres).map { _ in randomVector(dimension, &random) }
        let spread = 0.75 / Double(dimension).squareRoot()
        return (0..<count).map { _ in
            let middle = middles[Int(random.next() % UInt64(centres))]
            let norm = middle.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            return middle.map { Float(Double($0) / norm + spread * gaussian(&random)) }
        }
    }

    /// Share of queries whose approximate best entry is the exact best entry.
    static func recallAtOne(_ cache: SemanticCache<Answer>, _ queries: [[Float]]) throws -> Double {
        var agree = 0
        for query in queries {
            let exact = try cache.nearest(in: a, to: query, minimumSimilarity: -1, limit: 1, now: 1, method: .exact)
            let approximate = try cache.nearest(in: a, to: query, minimumSimilarity: -1, limit: 1, now: 1, method: .approximate)
            if exact.first?.entry == approximate.first?.entry { agree += 1 }
        }
        return Double(agree) / Double(queries.count)
    }

    static let testIndex = HNSWParameters(m: 12, efConstruction: 64, efSearch: 48, seed: 42)

    @Test(arguments: ["uniform", "clustered"])
    func theApproximateIndexFindsTheExactBestEntry(data: String) throws {
        var random = SplitMix64(seed: 11)
        let dimension = 24
        let points = data == "uniform"
            ? (0..<2_500).map { _ in Self.randomVector(dimension, &random) }
            : Self.clustered(2_500, dimension: dimension, centres: 25, &random)
        let cache = SemanticCache<Answer>(limits: Self.limits(entries: 10_000), approximateAbove: 100, index: Self.testIndex)
        for (n, point) in points.enumerated() {
            try cache.insert(in: Self.a, vector: point, payload: Answer(text: "\(n)"), now: 0)
        }
        cache.waitForRebuilds()
        #expect(cache.isApproximate(Self.a))
        let queries = data == "uniform"
            ? (0..<200).map { _ in Self.randomVector(dimension, &random) }
            : Self.clustered(200, dimension: dimension, centres: 25, &random)
        let recall = try Self.recallAtOne(cache, queries)
        #expect(recall >= 0.95, "recall@1 \(recall) on \(data) data")
        // A stored vector finds itself.
        for n in stride(from: 0, to: points.count, by: 97) {
            let found = try cache.nearest(in: Self.a, to: points[n], minimumSimilarity: 0.999, limit: 1, now: 1)
            #expect(found.first?.payload.text == "\(n)")
        }
    }

    @Test func movingFromTheScanToTheGraphKeepsTheAnswers() throws {
        var random = SplitMix64(seed: 3)
        let dimension = 16
        let points = Self.clustered(600, dimension: dimension, centres: 10, &random)
        let queries = Self.clustered(100, dimension: dimension, centres: 10, &random)
        let cache = SemanticCache<Answer>(limits: Self.limits(), approximateAbove: 300, index: Self.testIndex)
        for (n, point) in points[..<300].enumerated() {
            try cache.insert(in: Self.a, vector: point, payload: Answer(text: "\(n)"), now: 0)
        }
        #expect(!cache.isApproximate(Self.a))
        let before = try queries.map { try cache.nearest(in: Self.a, to: $0, minimumSimilarity: -1, limit: 1, now: 1).first?.entry }
        try cache.insert(in: Self.a, vector: points[300], payload: Answer(text: "300"), now: 0)
        cache.waitForRebuilds()
        #expect(cache.isApproximate(Self.a))
        // The entry just added is found, and the older answers mostly stand where it is not better.
        #expect(try cache.nearest(in: Self.a, to: points[300], minimumSimilarity: 0.999, limit: 1, now: 1).first?.payload.text == "300")
        var same = 0
        for (query, old) in zip(queries, before) {
            let exact = try cache.nearest(in: Self.a, to: query, minimumSimilarity: -1, limit: 1, now: 1, method: .exact).first?.entry
            let now = try cache.nearest(in: Self.a, to: query, minimumSimilarity: -1, limit: 1, now: 1).first?.entry
            if now == exact { same += 1 }
            if exact != EntryID(rawValue: 301) { #expect(exact == old) }
        }
        #expect(same >= 95)
        for (n, point) in points[301...].enumerated() {
            try cache.insert(in: Self.a, vector: point, payload: Answer(text: "\(n + 301)"), now: 0)
        }
        for n in stride(from: 0, to: 600, by: 7) {
            let found = try cache.nearest(in: Self.a, to: points[n], minimumSimilarity: 0.999, limit: 1, now: 1)
            #expect(found.first?.payload.text == "\(n)")
        }
    }

    @Test func evictionsInTheGraphAreNeverReturnedAndCompactionKeepsTheRest() throws {
        var random = SplitMix64(seed: 5)
        let dimension = 16
        let points = (0..<1_000).map { _ in Self.randomVector(dimension, &random) }
        let cache = SemanticCache<Answer>(limits: Self.limits(entries: 400), approximateAbove: 100, index: Self.testIndex)
        var ids: [EntryID] = []
        for (n, point) in points.enumerated() {
            ids.append(try cache.insert(in: Self.a, vector: point, payload: Answer(text: "\(n)"), now: 0))
        }
        #expect(cache.statistics.entries == 400)
        #expect(cache.statistics.evictedForSpace == 600)
        cache.waitForRebuilds()
        #expect(cache.isApproximate(Self.a))
        let live = Set(ids[600...])
        for n in stride(from: 0, to: 1_000, by: 3) {
            let found = try cache.nearest(in: Self.a, to: points[n], minimumSimilarity: -1, limit: 5, now: 1)
            #expect(found.allSatisfy { live.contains($0.entry) })
            if n >= 600 { #expect(found.first?.entry == ids[n]) }
        }
    }

    @Test func theSameSeedAndInsertsGiveTheSameAnswers() throws {
        var random = SplitMix64(seed: 9)
        let points = (0..<400).map { _ in Self.randomVector(16, &random) }
        let queries = (0..<50).map { _ in Self.randomVector(16, &random) }
        let index = HNSWParameters(m: 4, efConstruction: 8, efSearch: 2, seed: 1)
        let one = SemanticCache<Answer>(limits: Self.limits(), approximateAbove: 10, index: index)
        let two = SemanticCache<Answer>(limits: Self.limits(), approximateAbove: 10, index: index)
        for point in points {
            try one.insert(in: Self.a, vector: point, payload: Answer(text: ""), now: 0)
            try two.insert(in: Self.a, vector: point, payload: Answer(text: ""), now: 0)
            // Graphs are built off the caller's thread: the same inserts give the same graph when each
            // rebuild is over before the next insert.
            one.waitForRebuilds()
            two.waitForRebuilds()
        }
        for query in queries {
            let first = try one.nearest(in: Self.a, to: query, minimumSimilarity: -1, limit: 3, now: 1)
            let second = try two.nearest(in: Self.a, to: query, minimumSimilarity: -1, limit: 3, now: 1)
            #expect(first.map(\.entry) == second.map(\.entry))
        }
    }

    @Test func manyTasksInsertAndSearchAcrossPartitions() async throws {
        let limits = Self.limits(entries: 300, bytes: 300 * (16 + 4 * 16 + SemanticCache<Answer>.entryOverhead), ttl: 50)
        let cache = SemanticCache<Answer>(limits: limits, approximateAbove: 40, index: Self.testIndex)
        let partitions = (0..<4).map { CacheKey(high: 77, low: UInt64($0)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var random = SplitMix64(seed: UInt64(task))
                    for step in 0..<400 {
                        let p = Int(random.next() % 4)
                        let vector = Self.randomVector(16, &random)
                        let now = Double(step) / 4
                        if random.next() % 3 == 0 {
                            try cache.insert(in: partitions[p], vector: vector, payload: Answer(text: "", partition: p), now: now)
                        } else {
                            let found = try cache.nearest(in: partitions[p], to: vector, minimumSimilarity: -1, limit: 3, now: now)
                            #expect(found.allSatisfy { $0.payload.partition == p })
                            if let best = found.first { cache.markUsed(best.entry, now: now) }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let statistics = cache.statistics
        #expect(statistics.entries <= 300)
        #expect(statistics.bytes <= limits.maxBytes)
        #expect(statistics.entries + statistics.evictedForSpace + statistics.expired == statistics.inserts)
        #expect(statistics.partitions <= 4)
        var total = 0
        for p in partitions {
            total += try cache.nearest(in: p, to: Self.axis16, minimumSimilarity: -1, limit: 1_000, now: 99.9).count
        }
        #expect(total <= statistics.entries)
    }

    static let axis16: [Float] = (0..<16).map { $0 == 0 ? 1 : 0 }
}
