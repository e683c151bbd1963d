import Foundation

/// Parameters of the approximate index (a hierarchical navigable small world graph).
public struct HNSWParameters: Sendable, Hashable {
    /// Links per node on the upper layers; layer 0 keeps up to `2 * m`.
    public var m: Int
    /// Candidates examined when a node is linked in (larger: better graph, slower inserts).
    public var efConstruction: Int
    /// Candidates examined per query (at least the number of results asked for).
    public var efSearch: Int
    /// Seed of the level draws: the same seed and insertion order give the same graph.
    public var seed: UInt64

    public init(m: Int = 16, efConstruction: Int = 100, efSearch: Int = 64, seed: UInt64 = 0x5EED_CAC4E) {
        precondition(m >= 2 && m <= 127, "m must be in 2...127")
        self.m = m
        self.efConstruction = max(efConstruction, m)
        self.efSearch = max(efSearch, 1)
        self.seed = seed
    }
}

/// The graph over a partition's rows (node n is row n of the partition's vector storage, which the
/// caller passes to every operation). Deleted nodes stay in the graph to keep it navigable but are
/// never returned; the partition rebuilds the graph when too many are deleted.
///
/// Insertion follows Malkov and Yashunin's algorithm: a level drawn with P(level >= l) = m^-l, a
/// greedy descent through the layers above it, then on each of its layers a beam search of
/// `efConstruction` candidates and the neighbour-selection heuristic (a candidate is kept only if it
/// is closer to the new node than to every neighbour already kept), with the reverse links pruned by
/// the same heuristic when a node is full.
struct HNSWGraph {
    let m: Int
    let m0: Int
    let efConstruction: Int
    let dimension: Int
    private let levelScale: Double
    private var random: SplitMix64

    private var levels: [UInt8] = []
    /// Layer-0 links, `m0` slots per node.
    private var links0: [Int32] = []
    private var linkCount0: [UInt8] = []
    /// Per node, for each layer 1...level, a block of `m + 1` values: the count, then the links.
    private var upper: [[Int32]] = []
    private(set) var deleted: [Bool] = []
    private(set) var deletedCount = 0
    private var entry: Int32 = -1
    private var maxLevel = -1

    private var visitMarks: [UInt32] = []
    private var visitEpoch: UInt32 = 0
    private var candidates = PairHeap()
    private var found = PairHeap()

    var nodeCount: Int { levels.count }

    init(dimension: Int, parameters: HNSWParameters) {
        self.m = parameters.m
        self.m0 = 2 * parameters.m
        self.efConstruction = parameters.efConstruction
        self.dimension = dimension
        self.levelScale = 1 / log(Double(parameters.m))
        self.random = SplitMix64(seed: parameters.seed)
    }

    /// Bytes the graph holds per node on average (layer-0 links and counts, upper layers by the
    /// expected 1/(m-1) share of nodes, flags and visit marks).
    static func bytesPerNode(m: Int) -> Int {
        let layer0 = 2 * m * 4 + 1
        let upperShare = (m + 1) * 4 / max(m - 1, 1) + 8
        return layer0 + upperShare + 1 + 1 + 4
    }

    // MARK: links

    @inline(__always)
    private func neighbourCount(_ node: Int32, _ level: Int) -> Int {
        level == 0 ? Int(linkCount0[Int(node)]) : Int(upper[Int(node)][(level - 1) * (m + 1)])
    }

    @inline(__always)
    private func neighbour(_ node: Int32, _ level: Int, _ i: Int) -> Int32 {
        level == 0 ? links0[Int(node) * m0 + i] : upper[Int(node)][(level - 1) * (m + 1) + 1 + i]
    }

    private mutating func setNeighbours(_ node: Int32, _ level: Int, _ list: [Int32]) {
        if level == 0 {
            let base = Int(node) * m0
            for (i, n) in list.enumerated() { links0[base + i] = n }
            linkCount0[Int(node)] = UInt8(list.count)
        } else {
            let base = (level - 1) * (m + 1)
            upper[Int(node)][base] = Int32(list.count)
            for (i, n) in list.enumerated() { upper[Int(node)][base + 1 + i] = n }
        }
    }

    // MARK: insertion

    /// Links in node `nodeCount` (its vector must already be row `nodeCount` of `vectors`).
    mutating func insertNext(vectors: UnsafePointer<Float>) {
        let node = Int32(nodeCount)
        let level = min(Int(-log(random.nextUnit()) * levelScale), 30)
        levels.append(UInt8(level))
        links0.append(contentsOf: repeatElement(-1, count: m0))
        linkCount0.append(0)
        upper.append(level > 0 ? [Int32](repeating: 0, count: level * (m + 1)) : [])
        deleted.append(false)
        guard entry >= 0 else {
            entry = node
            maxLevel = level
            return
        }
        let query = vectors + Int(node) * dimension
        var current = entry
        var currentSimilarity = similarity(query, current, vectors)
        if maxLevel > level {
            for layer in stride(from: maxLevel, to: level, by: -1) {
                greedy(query, &current, &currentSimilarity, layer, vectors)
            }
        }
        var entryPoints: [(Float, Int32)] = [(currentSimilarity, current)]
        for layer in stride(from: min(level, maxLevel), through: 0, by: -1) {
            let nearest = searchLayer(query, entryPoints, ef: efConstruction, layer: layer, vectors: vectors, liveOnly: false)
            let chosen = selectNeighbours(nearest, max: m, vectors: vectors)
            setNeighbours(node, layer, chosen)
            for other in chosen { connect(other, to: node, layer: layer, vectors: vectors) }
            entryPoints = nearest
        }
        if level > maxLevel {
            entry = node
            maxLevel = level
        }
    }

    /// Adds `node` to `other`'s links on the layer, pruning them with the heuristic when full.
    private mutating func connect(_ other: Int32, to node: Int32, layer: Int, vectors: UnsafePointer<Float>) {
        let capacity = layer == 0 ? m0 : m
        let count = neighbourCount(other, layer)
        if count < capacity {
            if layer == 0 {
                links0[Int(other) * m0 + count] = node
                linkCount0[Int(other)] = UInt8(count + 1)
            } else {
                let base = (layer - 1) * (m + 1)
                upper[Int(other)][base + 1 + count] = node
                upper[Int(other)][base] = Int32(count + 1)
            }
            return
        }
        let base = vectors + Int(other) * dimension
        var pool: [(Float, Int32)] = [(similarity(base, node, vectors), node)]
        pool.reserveCapacity(count + 1)
        for i in 0..<count {
            let n = neighbour(other, layer, i)
            pool.append((similarity(base, n, vectors), n))
        }
        pool.sort { $0.0 > $1.0 }
        setNeighbours(other, layer, selectNeighbours(pool, max: capacity, vectors: vectors))
    }

    /// The heuristic: walk the candidates best first and keep one only if it is more similar to the
    /// base than to any candidate kept before it (this keeps links pointing in diverse directions,
    /// which matters on clustered data).
    private func selectNeighbours(_ sortedCandidates: [(Float, Int32)], max: Int, vectors: UnsafePointer<Float>) -> [Int32] {
        var kept: [Int32] = []
        kept.reserveCapacity(max)
        for (similarityToBase, candidate) in sortedCandidates {
            if kept.count >= max { break }
            let vector = vectors + Int(candidate) * dimension
            var diverse = true
            for other in kept where similarity(vector, other, vectors) > similarityToBase {
                diverse = false
                break
            }
            if diverse { kept.append(candidate) }
        }
        return kept
    }

    // MARK: search

    @inline(__always)
    private func similarity(_ query: UnsafePointer<Float>, _ node: Int32, _ vectors: UnsafePointer<Float>) -> Float {
        VectorMath.dot(query, vectors + Int(node) * dimension, count: dimension)
    }

    private func greedy(_ query: UnsafePointer<Float>, _ current: inout Int32, _ best: inout Float, _ layer: Int, _ vectors: UnsafePointer<Float>) {
        var changed = true
        while changed {
            changed = false
            let node = current
            let count = neighbourCount(node, layer)
            for i in 0..<count {
                let n = neighbour(node, layer, i)
                let s = similarity(query, n, vectors)
                if s > best {
                    best = s
                    current = n
                    changed = true
                }
            }
        }
    }

    /// Beam search on one layer: the `ef` most similar nodes reachable from the entry points, best
    /// first. With `liveOnly`, deleted nodes are walked through but not returned.
    private mutating func searchLayer(
        _ query: UnsafePointer<Float>, _ entryPoints: [(Float, Int32)], ef: Int, layer: Int,
        vectors: UnsafePointer<Float>, liveOnly: Bool
    ) -> [(Float, Int32)] {
        var marks = visitMarks
        visitMarks = []
        var candidates = self.candidates
        self.candidates = PairHeap()
        var found = self.found
        self.found = PairHeap()
        defer {
            visitMarks = marks
            candidates.clear()
            found.clear()
            self.candidates = candidates
            self.found = found
        }
        if marks.count < nodeCount { marks.append(contentsOf: repeatElement(0, count: nodeCount - marks.count)) }
        visitEpoch &+= 1
        if visitEpoch == 0 {
            for i in marks.indices { marks[i] = 0 }
            visitEpoch = 1
        }
        let epoch = visitEpoch
        // `found` is a min-heap by similarity (priorities negated).
        for (s, node) in entryPoints {
            guard marks[Int(node)] != epoch else { continue }
            marks[Int(node)] = epoch
            candidates.push(s, node)
            if !liveOnly || !deleted[Int(node)] {
                found.push(-s, node)
                if found.count > ef { found.pop() }
            }
        }
        while !candidates.isEmpty {
            let (s, node) = candidates.pop()
            if found.count >= ef && s < -found.topPriority { break }
            let count = neighbourCount(node, layer)
            for i in 0..<count {
                let n = neighbour(node, layer, i)
                guard marks[Int(n)] != epoch else { continue }
                marks[Int(n)] = epoch
                let sn = similarity(query, n, vectors)
                if found.count < ef || sn > -found.topPriority {
                    candidates.push(sn, n)
                    if !liveOnly || !deleted[Int(n)] {
                        found.push(-sn, n)
                        if found.count > ef { found.pop() }
                    }
                }
            }
        }
        var result = [(Float, Int32)](repeating: (0, 0), count: found.count)
        var i = found.count - 1
        while !found.isEmpty {
            let (negated, node) = found.pop()
            result[i] = (-negated, node)
            i -= 1
        }
        return result
    }

    /// The `ef` (at least) most similar live nodes to a normalised query, best first.
    mutating func search(_ query: UnsafePointer<Float>, ef: Int, vectors: UnsafePointer<Float>) -> [(Float, Int32)] {
        guard entry >= 0 else { return [] }
        var current = entry
        var best = similarity(query, current, vectors)
        if maxLevel > 0 {
            for layer in stride(from: maxLevel, to: 0, by: -1) {
                greedy(query, &current, &best, layer, vectors)
            }
        }
        return searchLayer(query, [(best, current)], ef: ef, layer: 0, vectors: vectors, liveOnly: true)
    }

    mutating func markDeleted(_ node: Int) {
        guard !deleted[node] else { return }
        deleted[node] = true
        deletedCount += 1
    }
}
