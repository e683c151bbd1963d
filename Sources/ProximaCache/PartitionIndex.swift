/// How a partition is searched. The cache chooses by size; the benchmark forces one or the other.
enum SearchMethod: Sendable {
    case automatic
    case exact
    case approximate
}

/// One partition's entries: normalised vectors stored contiguously (row-major `[Float]`), with the
/// entry serial, payload and expiry of each row.
///
/// Up to `approximateAbove` live rows a query is an exact SIMD scan and a deletion is a swap-remove.
/// Above, an HNSW graph over the rows answers queries; a deletion then only marks the row (the
/// graph needs its vector to stay navigable) and frees its payload.
///
/// No graph is ever built here on the caller's path: crossing `approximateAbove` without a graph, or
/// marking a quarter of the rows, only makes a rebuild due (`rebuildDue`), and the partition keeps
/// answering from its scan or its graph with the marked rows skipped. The owner (`SemanticCache`)
/// claims the rebuild under its lock (`claimRebuild`), takes a snapshot under it (`beginRebuild`:
/// copy-on-write, O(1)), compacts and builds a new index from the snapshot outside any lock
/// (`init(compacting:)`, `buildGraphIfLarge`), and swaps it in under the lock (`finishRebuild`),
/// which replays the appends and removals made since the snapshot (recorded by serial in `journal`).
struct PartitionIndex<Payload: CachePayload> {
    let dimension: Int
    let approximateAbove: Int
    let parameters: HNSWParameters
    private(set) var vectors: [Float] = []
    private var serials: [UInt64] = []
    private var payloads: [Payload?] = []
    private var expiries: [Double] = []
    private var rowOf: [UInt64: Int32] = [:]
    private(set) var graph: HNSWGraph?
    private var removedRows = 0
    /// A compaction or first graph build is due (the owner starts it; see `claimRebuild`).
    private(set) var rebuildDue = false
    /// A rebuild was claimed and not yet swapped in: no second one starts meanwhile.
    private var rebuildClaimed = false
    /// Changes since the running rebuild's snapshot (nil when no snapshot is out).
    private var journal: Journal?

    private struct Journal {
        var appended: [UInt64] = []
        var removed: [UInt64] = []
    }

    /// The rows at the start of a rebuild. Its arrays share storage with the partition's until one
    /// side writes (copy-on-write): taking it under the lock costs no copy.
    struct Snapshot: Sendable {
        var vectors: [Float]
        var serials: [UInt64]
        var payloads: [Payload?]
        var expiries: [Double]
    }

    var liveCount: Int { serials.count - removedRows }
    var rowCount: Int { serials.count }
    var isApproximate: Bool { graph != nil }

    init(dimension: Int, approximateAbove: Int, parameters: HNSWParameters) {
        self.dimension = dimension
        self.approximateAbove = approximateAbove
        self.parameters = parameters
    }

    mutating func append(serial: UInt64, vector: [Float], payload: Payload, expiresAt: Double) {
        let row = serials.count
        vectors.append(contentsOf: vector)
        serials.append(serial)
        payloads.append(payload)
        expiries.append(expiresAt)
        rowOf[serial] = Int32(row)
        journal?.appended.append(serial)
        if graph != nil {
            vectors.withUnsafeBufferPointer { graph!.insertNext(vectors: $0.baseAddress!) }
        } else if liveCount > approximateAbove {
            rebuildDue = true
        }
    }

    /// Removes the entry if present (it may already be gone: eviction and expiry can race).
    mutating func remove(serial: UInt64) {
        guard let row32 = rowOf.removeValue(forKey: serial) else { return }
        let row = Int(row32)
        journal?.removed.append(serial)
        if graph != nil {
            payloads[row] = nil
            graph!.markDeleted(row)
            removedRows += 1
            if removedRows >= max(32, rowCount / 4) { rebuildDue = true }
            return
        }
        let last = serials.count - 1
        if row != last {
            let d = dimension
            vectors.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress!
                (base + row * d).update(from: base + last * d, count: d)
            }
            serials[row] = serials[last]
            payloads[row] = payloads[last]
            expiries[row] = expiries[last]
            rowOf[serials[row]] = Int32(row)
        }
        vectors.removeLast(dimension)
        serials.removeLast()
        payloads.removeLast()
        expiries.removeLast()
        if rebuildDue && liveCount <= approximateAbove { rebuildDue = false }
    }

    // MARK: rebuilds

    /// Whether the caller should start a rebuild now: one is due and none is claimed. Claims it.
    mutating func claimRebuild() -> Bool {
        guard rebuildDue, !rebuildClaimed else { return false }
        rebuildClaimed = true
        return true
    }

    /// Takes the snapshot of a claimed rebuild and starts recording the changes made after it.
    mutating func beginRebuild() -> Snapshot {
        rebuildDue = false
        journal = Journal()
        return Snapshot(vectors: vectors, serials: serials, payloads: payloads, expiries: expiries)
    }

    /// A partition holding the snapshot's live rows, compacted, without a graph yet.
    init(compacting snapshot: Snapshot, like model: (dimension: Int, approximateAbove: Int, parameters: HNSWParameters)) {
        self.init(dimension: model.dimension, approximateAbove: model.approximateAbove, parameters: model.parameters)
        let d = dimension
        let live = snapshot.payloads.reduce(0) { $1 == nil ? $0 : $0 + 1 }
        vectors.reserveCapacity(live * d)
        serials.reserveCapacity(live)
        payloads.reserveCapacity(live)
        expiries.reserveCapacity(live)
        rowOf.reserveCapacity(live)
        snapshot.vectors.withUnsafeBufferPointer { source in
            for row in 0..<snapshot.serials.count {
                guard let payload = snapshot.payloads[row] else { continue }
                rowOf[snapshot.serials[row]] = Int32(serials.count)
                vectors.append(contentsOf: source[(row * d)..<((row + 1) * d)])
                serials.append(snapshot.serials[row])
                payloads.append(payload)
                expiries.append(snapshot.expiries[row])
            }
        }
    }

    var model: (dimension: Int, approximateAbove: Int, parameters: HNSWParameters) {
        (dimension, approximateAbove, parameters)
    }

    /// Builds the graph if the partition is above its threshold (the long step: run it off-lock).
    mutating func buildGraphIfLarge() {
        if liveCount > approximateAbove { buildGraph() }
    }

    /// Changes recorded since the snapshot (or the last drain), to replay onto the rebuilt index.
    struct Changes: Sendable {
        var removed: [UInt64] = []
        var appended: [(serial: UInt64, vector: [Float], payload: Payload, expiresAt: Double)] = []
    }

    /// Takes the changes recorded so far, with the rows appended and still live, and starts a new
    /// record. O(changes): the rebuild calls it under the lock and replays the result outside it.
    mutating func drainJournal() -> Changes {
        guard let journal else { return Changes() }
        var changes = Changes(removed: journal.removed)
        changes.appended.reserveCapacity(journal.appended.count)
        let d = dimension
        for serial in journal.appended {
            // Still in `rowOf`: appended after the snapshot and not removed since.
            guard let row32 = rowOf[serial] else { continue }
            let row = Int(row32)
            changes.appended.append((serial, Array(vectors[(row * d)..<((row + 1) * d)]), payloads[row]!, expiries[row]))
        }
        self.journal = Journal()
        return changes
    }

    /// Replays changes drained from the partition this index is rebuilt from: removals, then appends.
    mutating func replay(_ changes: Changes) {
        for serial in changes.removed { remove(serial: serial) }
        for row in changes.appended {
            append(serial: row.serial, vector: row.vector, payload: row.payload, expiresAt: row.expiresAt)
        }
    }

    /// Replaces this partition by `rebuilt` (made from this partition's snapshot and the changes
    /// drained so far), after replaying onto it the changes made since. Returns whether another
    /// rebuild is due and claimed (the replay can make one due).
    mutating func finishRebuild(_ rebuilt: consuming PartitionIndex) -> Bool {
        var next = rebuilt
        next.replay(drainJournal())
        self = next
        return claimRebuild()
    }

    /// Forgets a claimed rebuild whose result is discarded (its partition was dropped).
    mutating func abandonRebuild() {
        journal = nil
        rebuildClaimed = false
    }

    private mutating func buildGraph() {
        var built = HNSWGraph(dimension: dimension, parameters: parameters)
        vectors.withUnsafeBufferPointer { buffer in
            for _ in 0..<serials.count { built.insertNext(vectors: buffer.baseAddress!) }
        }
        graph = built
    }

    struct Found {
        var serial: UInt64
        var similarity: Float
        var payload: Payload
    }

    /// The best `limit` live, unexpired entries at or above `minimum`, best first, and the serials of
    /// expired entries met on the way (the caller removes them).
    mutating func search(
        _ query: [Float], minimum: Float, limit: Int, now: Double, method: SearchMethod
    ) -> (found: [Found], expired: [UInt64]) {
        guard limit > 0, !serials.isEmpty else { return ([], []) }
        // `.approximate` on a partition still below its threshold scans: there is no graph yet.
        if graph != nil && method != .exact {
            return searchGraph(query, minimum: minimum, limit: limit, now: now)
        }
        return scan(query, minimum: minimum, limit: limit, now: now)
    }

    private mutating func searchGraph(_ query: [Float], minimum: Float, limit: Int, now: Double) -> (found: [Found], expired: [UInt64]) {
        let ef = max(parameters.efSearch, limit)
        let nearest = query.withUnsafeBufferPointer { q in
            vectors.withUnsafeBufferPointer { v in graph!.search(q.baseAddress!, ef: ef, vectors: v.baseAddress!) }
        }
        var found: [Found] = []
        var expired: [UInt64] = []
        for (similarity, node) in nearest {
            guard similarity >= minimum else { break }
            let row = Int(node)
            guard let payload = payloads[row] else { continue }
            if expiries[row] <= now {
                expired.append(serials[row])
                continue
            }
            found.append(Found(serial: serials[row], similarity: similarity, payload: payload))
            if found.count == limit { break }
        }
        return (found, expired)
    }

    /// The exact scan: one dot product per row over contiguous storage; a row is examined further only
    /// when it would enter the current best `limit`.
    private func scan(_ query: [Float], minimum: Float, limit: Int, now: Double) -> (found: [Found], expired: [UInt64]) {
        var bestSimilarity: [Float] = []
        var bestRow: [Int] = []
        bestSimilarity.reserveCapacity(limit + 1)
        bestRow.reserveCapacity(limit + 1)
        var expired: [UInt64] = []
        let d = dimension
        let rows = serials.count
        query.withUnsafeBufferPointer { q in
            vectors.withUnsafeBufferPointer { v in
                let queryBase = q.baseAddress!
                var row = 0
                var floor = minimum
                var vector = v.baseAddress!
                while row < rows {
                    let s = VectorMath.dot(queryBase, vector, count: d)
                    if s >= floor && (bestRow.count < limit || s > bestSimilarity[bestSimilarity.count - 1]) {
                        if payloads[row] == nil {
                            // marked deleted (graph mode)
                        } else if expiries[row] <= now {
                            expired.append(serials[row])
                        } else {
                            var at = bestRow.count
                            while at > 0 && bestSimilarity[at - 1] < s { at -= 1 }
                            bestSimilarity.insert(s, at: at)
                            bestRow.insert(row, at: at)
                            if bestRow.count > limit {
                                bestSimilarity.removeLast()
                                bestRow.removeLast()
                            }
                            if bestRow.count == limit { floor = max(minimum, bestSimilarity[limit - 1]) }
                        }
                    }
                    row += 1
                    vector += d
                }
            }
        }
        var found: [Found] = []
        found.reserveCapacity(bestRow.count)
        for (s, row) in zip(bestSimilarity, bestRow) {
            found.append(Found(serial: serials[row], similarity: s, payload: payloads[row]!))
        }
        return (found, expired)
    }
}
