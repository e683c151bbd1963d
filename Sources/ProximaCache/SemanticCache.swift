import Dispatch
import Synchronization

/// One answer of the semantic cache: the entry, its cosine similarity to the query, its payload.
public struct SemanticMatch<Payload: CachePayload>: Sendable {
    public var entry: EntryID
    public var similarity: Float
    public var payload: Payload

    public init(entry: EntryID, similarity: Float, payload: Payload) {
        self.entry = entry
        self.similarity = similarity
        self.payload = payload
    }
}

/// The semantic tier: nearest neighbours by cosine similarity inside a hard partition (the gateway's
/// hash of tenant, model, system prompt and earlier turns, tools and sampling class), never across.
///
/// Memory is bounded over all partitions together, by entries and bytes: an entry counts
/// `payload.byteCount + 4 * dimension + SemanticCache.entryOverhead` bytes, and the least recently
/// used entries (inserted or marked used) are evicted first; every entry expires `timeToLive`
/// seconds after its insertion and is never returned after. A partition left empty is dropped.
///
/// Locks: a small global one (the LRU ledger, byte accounting and the partition directory; O(1)
/// work) and one per partition (its rows and graph), never one inside the other in the
/// partition-then-global order, so a long scan blocks only its own partition. An insert is appended to
/// its partition first and accounted in the ledger after; an entry evicted between the two steps of
/// another insert is deleted from its partition after the ledger's lock is released, and a query
/// that finds it in that short window may still return it (it is evicted, not expired: expiry is
/// checked in the partition, on every result).
///
/// Graph builds never run on the caller's thread nor under a partition's lock: when a partition
/// crosses `approximateAbove` or a quarter of its graph's rows are deleted, the call that made it so
/// only schedules a rebuild on the cache's own serial dispatch queue (not Swift's cooperative pool),
/// at most one per partition. The rebuild snapshots the partition under its lock, compacts it and
/// builds the graph outside any lock, then under the lock replays the changes made meanwhile and swaps
/// the result in; until then the partition answers from its scan or old graph (marked rows skipped).
/// The snapshot holds a second copy of the partition's rows while the rebuild compacts it.
public final class SemanticCache<Payload: CachePayload>: Sendable {
    /// Entries per partition above which a partition is searched with the HNSW graph rather than an
    /// exact scan: the crossover measured by `proxima bench cache-index` (d = 384, docs/cache.md).
    public static var defaultApproximateAbove: Int { 1_500 }

    /// Bytes counted per entry beyond the payload and the vector: the HNSW graph's links at its
    /// default `m` (counted even while the partition scans, so that the budget holds when it
    /// migrates), the row's serial, expiry and payload slot, the row dictionary, and the ledger's
    /// node and dictionary slot.
    public static var entryOverhead: Int {
        HNSWGraph.bytesPerNode(m: HNSWParameters().m) + 8 + 8 + MemoryLayout<Payload?>.stride + 32 + 72 + 32
    }

    public let limits: CacheLimits
    public let approximateAbove: Int
    public let index: HNSWParameters

    private let ledger: Mutex<Ledger>
    private let fixedDimension = Atomic<Int>(0)
    private let hits = Atomic<Int>(0)
    private let misses = Atomic<Int>(0)
    private let rejectedVectors = Atomic<Int>(0)

    /// Runs rebuilds one at a time, off the cooperative pool.
    private let rebuilds = DispatchQueue(label: "proxima.cache.rebuild", qos: .utility)
    private let pendingRebuilds = Atomic<Int>(0)
    /// The longest a rebuild held a partition's lock (snapshot, catch-up drain or swap), in ns.
    private let longestRebuildHold = Atomic<Int>(0)
    private let swappedRebuilds = Atomic<Int>(0)
    /// Called on the rebuild thread after a new index is built, before it is swapped in (tests).
    private let beforeSwap: (@Sendable () -> Void)?

    final class Partition: Sendable {
        let key: CacheKey
        let rows: Mutex<PartitionIndex<Payload>>

        init(_ key: CacheKey, _ index: PartitionIndex<Payload>) {
            self.key = key
            rows = Mutex(index)
        }
    }

    private struct Directory {
        var partition: Partition
        /// Entries accounted in the ledger plus inserts on their way: the partition is dropped at 0.
        var holds: Int
    }

    private struct Ledger {
        /// Serial to the entry's partition key; bytes and expiry in the node.
        var list = LRUList<UInt64, CacheKey>()
        var partitions: [CacheKey: Directory] = [:]
        var nextSerial: UInt64 = 1
        var statistics = CacheStatistics()

        /// Removes an accounted entry; returns its partition for the row's deletion.
        mutating func remove(_ slot: Int32) -> (Partition, UInt64)? {
            let (serial, key) = list.remove(slot)
            guard var directory = partitions[key] else { return nil }
            directory.holds -= 1
            partitions[key] = directory.holds > 0 ? directory : nil
            return (directory.partition, serial)
        }

        mutating func release(_ key: CacheKey) {
            guard var directory = partitions[key] else { return }
            directory.holds -= 1
            partitions[key] = directory.holds > 0 ? directory : nil
        }

        mutating func expire(now: Double, into deletions: inout [(Partition, UInt64)]) {
            while let oldest = list.oldest, list.expiresAt(oldest) <= now {
                if let deletion = remove(oldest) { deletions.append(deletion) }
                statistics.expired += 1
            }
        }
    }

    /// - Parameters:
    ///   - approximateAbove: live entries per partition above which the partition builds an HNSW graph.
    ///   - index: the graph's parameters.
    public convenience init(
        limits: CacheLimits, approximateAbove: Int = SemanticCache.defaultApproximateAbove,
        index: HNSWParameters = HNSWParameters()
    ) {
        self.init(limits: limits, approximateAbove: approximateAbove, index: index, beforeSwap: nil)
    }

    /// - Parameter beforeSwap: run on the rebuild thread between a rebuild's build and its swap.
    init(
        limits: CacheLimits, approximateAbove: Int, index: HNSWParameters,
        beforeSwap: (@Sendable () -> Void)?
    ) {
        self.limits = limits
        self.approximateAbove = max(approximateAbove, 0)
        self.index = index
        self.ledger = Mutex(Ledger())
        self.beforeSwap = beforeSwap
    }

    /// The dimension fixed by the first insert, or nil before it.
    public var dimension: Int? {
        let d = fixedDimension.load(ordering: .acquiring)
        return d == 0 ? nil : d
    }

    /// The best entries of the partition for the vector, best first: at most `limit`, each with
    /// cosine similarity of at least `minimumSimilarity`, none expired. Does not count as a use
    /// (see `markUsed`). A query before any insert finds nothing.
    public func nearest(
        in partition: CacheKey, to vector: [Float], minimumSimilarity: Float, limit: Int, now: Double
    ) throws(VectorError) -> [SemanticMatch<Payload>] {
        try nearest(in: partition, to: vector, minimumSimilarity: minimumSimilarity, limit: limit, now: now, method: .automatic)
    }

    func nearest(
        in partition: CacheKey, to vector: [Float], minimumSimilarity: Float, limit: Int, now: Double,
        method: SearchMethod
    ) throws(VectorError) -> [SemanticMatch<Payload>] {
        let query: [Float]
        do {
            query = try VectorMath.normalised(vector, dimension: dimension)
        } catch {
            rejectedVectors.wrappingAdd(1, ordering: .relaxed)
            throw error
        }
        let box = ledger.withLock { $0.partitions[partition]?.partition }
        guard let box else {
            misses.wrappingAdd(1, ordering: .relaxed)
            return []
        }
        let (found, expired) = box.rows.withLock {
            $0.search(query, minimum: minimumSimilarity, limit: limit, now: now, method: method)
        }
        if !expired.isEmpty { removeExpired(expired, from: box, now: now) }
        if found.isEmpty {
            misses.wrappingAdd(1, ordering: .relaxed)
        } else {
            hits.wrappingAdd(1, ordering: .relaxed)
        }
        return found.map { SemanticMatch(entry: EntryID(rawValue: $0.serial), similarity: $0.similarity, payload: $0.payload) }
    }

    /// Stores the vector and payload in the partition and evicts least recently used entries (of any
    /// partition) until the cache is within its limits. An entry larger than `maxBytes` alone is not
    /// stored: its id is returned but never found (counted in `rejectedTooLarge`).
    @discardableResult
    public func insert(in partition: CacheKey, vector: [Float], payload: Payload, now: Double) throws(VectorError) -> EntryID {
        let normalised: [Float]
        do throws(VectorError) {
            normalised = try VectorMath.normalised(vector, dimension: dimension)
            if !fixedDimension.compareExchange(expected: 0, desired: normalised.count, ordering: .acquiringAndReleasing).exchanged,
               let fixed = dimension, fixed != normalised.count {
                throw VectorError.wrongDimension(expected: fixed, got: normalised.count)
            }
        } catch {
            rejectedVectors.wrappingAdd(1, ordering: .relaxed)
            throw error
        }
        let bytes = payload.byteCount + 4 * normalised.count + Self.entryOverhead
        let limits = self.limits
        let expiresAt = now + limits.timeToLive
        let (serial, box, early) = ledger.withLock { ledger -> (UInt64, Partition?, [(Partition, UInt64)]) in
            var deletions: [(Partition, UInt64)] = []
            ledger.expire(now: now, into: &deletions)
            let serial = ledger.nextSerial
            ledger.nextSerial += 1
            guard bytes <= limits.maxBytes, limits.maxEntries > 0 else {
                ledger.statistics.rejectedTooLarge += 1
                return (serial, nil, deletions)
            }
            var directory = ledger.partitions[partition] ?? Directory(
                partition: Partition(partition, PartitionIndex(
                    dimension: normalised.count, approximateAbove: approximateAbove,
                    parameters: partitionParameters(partition))),
                holds: 0)
            directory.holds += 1
            ledger.partitions[partition] = directory
            return (serial, directory.partition, deletions)
        }
        apply(early)
        guard let box else { return EntryID(rawValue: serial) }
        let due = box.rows.withLock {
            $0.append(serial: serial, vector: normalised, payload: payload, expiresAt: expiresAt)
            return $0.claimRebuild()
        }
        if due { scheduleRebuild(box) }
        let evicted = ledger.withLock { ledger -> [(Partition, UInt64)] in
            ledger.release(partition)
            let slot = ledger.list.insert(serial, partition, bytes: bytes, expiresAt: expiresAt).slot
            if var directory = ledger.partitions[partition] {
                directory.holds += 1
                ledger.partitions[partition] = directory
            } else {
                // Dropped meanwhile cannot happen (our hold kept it), but stay consistent if it did.
                ledger.partitions[partition] = Directory(partition: box, holds: 1)
            }
            ledger.statistics.inserts += 1
            var deletions: [(Partition, UInt64)] = []
            while ledger.list.count > limits.maxEntries || ledger.list.bytes > limits.maxBytes,
                  let victim = ledger.list.leastRecentlyUsed, victim != slot {
                if let deletion = ledger.remove(victim) { deletions.append(deletion) }
                ledger.statistics.evictedForSpace += 1
            }
            return deletions
        }
        apply(evicted)
        return EntryID(rawValue: serial)
    }

    /// Marks the entry as used now (the gateway served it): it becomes the last to be evicted. Its
    /// expiry does not move. An entry already gone is ignored.
    public func markUsed(_ entry: EntryID, now: Double) {
        ledger.withLock { ledger in
            if let slot = ledger.list.slot(for: entry.rawValue), ledger.list.expiresAt(slot) > now {
                ledger.list.touch(slot)
            }
        }
    }

    public var statistics: CacheStatistics {
        var statistics = ledger.withLock { ledger in
            var statistics = ledger.statistics
            statistics.entries = ledger.list.count
            statistics.bytes = ledger.list.bytes
            statistics.partitions = ledger.partitions.count
            return statistics
        }
        statistics.hits = hits.load(ordering: .relaxed)
        statistics.misses = misses.load(ordering: .relaxed)
        statistics.rejectedVectors = rejectedVectors.load(ordering: .relaxed)
        return statistics
    }

    /// Rebuilds scheduled and not yet swapped in or discarded.
    var rebuildsPending: Int { pendingRebuilds.load(ordering: .acquiring) }

    /// Blocks until no rebuild is pending (tests and the benchmark; never from the rebuild queue).
    func waitForRebuilds() {
        while rebuildsPending > 0 { rebuilds.sync {} }
    }

    /// Whether the partition currently answers from its HNSW graph (for tests and the benchmark).
    func isApproximate(_ partition: CacheKey) -> Bool {
        guard let box = ledger.withLock({ $0.partitions[partition]?.partition }) else { return false }
        return box.rows.withLock { $0.isApproximate }
    }

    /// The partition's live rows and stored rows (live plus rows marked deleted), for tests.
    func rowCounts(_ partition: CacheKey) -> (live: Int, stored: Int)? {
        guard let box = ledger.withLock({ $0.partitions[partition]?.partition }) else { return nil }
        return box.rows.withLock { ($0.liveCount, $0.rowCount) }
    }

    /// Each partition's graph gets its own seed, derived from the cache's and the partition key.
    private func partitionParameters(_ partition: CacheKey) -> HNSWParameters {
        var parameters = index
        var mixer = SplitMix64(seed: index.seed ^ partition.high ^ (partition.low &* 0x9E37_79B9_7F4A_7C15))
        parameters.seed = mixer.next()
        return parameters
    }

    private func removeExpired(_ serials: [UInt64], from box: Partition, now: Double) {
        let deletions = ledger.withLock { ledger -> [(Partition, UInt64)] in
            var deletions: [(Partition, UInt64)] = []
            for serial in serials {
                guard let slot = ledger.list.slot(for: serial), ledger.list.expiresAt(slot) <= now else { continue }
                if let deletion = ledger.remove(slot) { deletions.append(deletion) }
                ledger.statistics.expired += 1
            }
            return deletions
        }
        apply(deletions)
    }

    /// Deletes rows from their partitions, one partition lock at a time, outside the ledger's lock.
    private func apply(_ deletions: [(Partition, UInt64)]) {
        guard !deletions.isEmpty else { return }
        var index = 0
        while index < deletions.count {
            let box = deletions[index].0
            var end = index
            while end < deletions.count && deletions[end].0 === box { end += 1 }
            let due = box.rows.withLock { rows in
                for i in index..<end { rows.remove(serial: deletions[i].1) }
                return rows.claimRebuild()
            }
            if due { scheduleRebuild(box) }
            index = end
        }
    }

    // MARK: rebuilds

    /// Queues the rebuild the caller claimed (`claimRebuild`) for the partition.
    private func scheduleRebuild(_ box: Partition) {
        pendingRebuilds.wrappingAdd(1, ordering: .acquiringAndReleasing)
        rebuilds.async { [self] in
            rebuild(box)
            pendingRebuilds.wrappingSubtract(1, ordering: .acquiringAndReleasing)
        }
    }

    /// Catch-up rounds before the swap, and the changes left for the swap below which they stop.
    private static var catchUpRounds: Int { 8 }
    private static var swapReplayLimit: Int { 32 }

    /// Whether the partition is still the directory's (not dropped). Takes only the ledger's lock.
    private func isCurrent(_ box: Partition) -> Bool {
        ledger.withLock { $0.partitions[box.key]?.partition === box }
    }

    /// On the rebuild queue: snapshot under the partition's lock, compact and build with no lock
    /// held, replay and swap under the lock. A partition dropped meanwhile discards the work.
    private func rebuild(_ box: Partition) {
        guard isCurrent(box) else {
            box.rows.withLock { $0.abandonRebuild() }
            return
        }
        var fresh = compacted(box)
        fresh.buildGraphIfLarge()
        beforeSwap?()
        // Catch up outside the lock with the changes made during the build (inserting into the new
        // graph costs as much as an ordinary insert), so that the swap replays only the last few.
        for _ in 0..<Self.catchUpRounds {
            let changes = timedHold { box.rows.withLock { $0.drainJournal() } }
            fresh.replay(changes)
            if changes.appended.count + changes.removed.count <= Self.swapReplayLimit { break }
        }
        guard isCurrent(box) else {
            box.rows.withLock { $0.abandonRebuild() }
            return
        }
        let again = timedHold { box.rows.withLock { $0.finishRebuild(fresh) } }
        swappedRebuilds.wrappingAdd(1, ordering: .relaxed)
        if again { scheduleRebuild(box) }
    }

    /// The partition's live rows in a new index. The snapshot's storage (shared copy-on-write with
    /// the partition's) is released when this returns, before the long graph build.
    private func compacted(_ box: Partition) -> PartitionIndex<Payload> {
        let (snapshot, model) = timedHold { box.rows.withLock { ($0.beginRebuild(), $0.model) } }
        return PartitionIndex(compacting: snapshot, like: model)
    }

    /// Runs a rebuild's locked step, keeping the longest (for the benchmark; a few per rebuild).
    private func timedHold<T>(_ body: () -> T) -> T {
        let start = ContinuousClock.now
        let result = body()
        let elapsed = ContinuousClock.now - start
        let nanoseconds = Int(elapsed.components.seconds) * 1_000_000_000 + Int(elapsed.components.attoseconds / 1_000_000_000)
        longestRebuildHold.max(nanoseconds, ordering: .relaxed)
        return result
    }

    /// Rebuilds swapped in so far (for the benchmark).
    var rebuildsSwapped: Int { swappedRebuilds.load(ordering: .relaxed) }

    /// The longest a rebuild held a partition's lock so far, in seconds (for the benchmark).
    var longestRebuildLockHold: Double {
        Double(longestRebuildHold.load(ordering: .relaxed)) / 1e9
    }
}
