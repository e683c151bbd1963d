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
/// graph needs its vector to stay navigable) and frees its payload, and when a quarter of the rows
/// are marked the partition compacts its rows and rebuilds the graph (or goes back to the scan if it
/// is small enough).
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
        if graph != nil {
            vectors.withUnsafeBufferPointer { graph!.insertNext(vectors: $0.baseAddress!) }
        } else if liveCount > approximateAbove {
            buildGraph()
        }
    }

    /// Removes the entry if present (it may already be gone: eviction and expiry can race).
    mutating func remove(serial: UInt64) {
        guard let row32 = rowOf.removeValue(forKey: serial) else { return }
        let row = Int(row32)
        if graph != nil {
            payloads[row] = nil
            graph!.markDeleted(row)
            removedRows += 1
            if removedRows >= max(32, rowCount / 4) { compact() }
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
    }

    /// Drops the marked rows, then rebuilds the graph over the others (or returns to the scan).
    private mutating func compact() {
        var keep = 0
        let d = dimension
        for row in 0..<serials.count where payloads[row] != nil {
            if keep != row {
                vectors.withUnsafeMutableBufferPointer { buffer in
                    let base = buffer.baseAddress!
                    (base + keep * d).update(from: base + row * d, count: d)
                }
                serials[keep] = serials[row]
                payloads[keep] = payloads[row]
                expiries[keep] = expiries[row]
                rowOf[serials[keep]] = Int32(keep)
            }
            keep += 1
        }
        vectors.removeLast((serials.count - keep) * d)
        serials.removeLast(serials.count - keep)
        payloads.removeLast(payloads.count - keep)
        expiries.removeLast(expiries.count - keep)
        removedRows = 0
        graph = nil
        if liveCount > approximateAbove { buildGraph() }
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
