/// Vector arithmetic of the semantic index: vectors are normalised once, so cosine similarity is a
/// dot product, computed eight lanes at a time.
enum VectorMath {
    /// The dot product of two vectors of `count` floats, with two SIMD8 accumulators (independent
    /// additions) and a scalar tail.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        let ra = UnsafeRawPointer(a)
        let rb = UnsafeRawPointer(b)
        var first = SIMD8<Float>()
        var second = SIMD8<Float>()
        var i = 0
        while i + 16 <= count {
            first += ra.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
            second += ra.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self)
            i &+= 16
        }
        if i + 8 <= count {
            first += ra.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
            i &+= 8
        }
        let lanes = first + second
        var sum = (lanes[0] + lanes[4]) + (lanes[1] + lanes[5]) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
        while i < count {
            sum += a[i] * b[i]
            i &+= 1
        }
        return sum
    }

    /// The vector scaled to length 1, or why it cannot be. The norm is summed in Double, so large
    /// finite components do not overflow.
    static func normalised(_ vector: [Float], dimension: Int?) throws(VectorError) -> [Float] {
        if let dimension, vector.count != dimension {
            throw .wrongDimension(expected: dimension, got: vector.count)
        }
        var squares = 0.0
        for component in vector {
            guard component.isFinite else { throw .notFinite }
            squares += Double(component) * Double(component)
        }
        guard squares > 0 else { throw .zero }
        let scale = 1 / squares.squareRoot()
        return vector.map { Float(Double($0) * scale) }
    }
}

/// A small deterministic generator (SplitMix64): the index's levels depend only on its seed and the
/// order of insertions.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    mutating func nextUnit() -> Double {
        Double((next() >> 11) + 1) * 0x1p-53
    }
}

/// A binary max-heap of (priority, node) pairs whose storage is kept between uses.
struct PairHeap {
    private(set) var priorities: [Float] = []
    private(set) var nodes: [Int32] = []

    var count: Int { nodes.count }
    var isEmpty: Bool { nodes.isEmpty }
    var topPriority: Float { priorities[0] }
    var topNode: Int32 { nodes[0] }

    mutating func clear() {
        priorities.removeAll(keepingCapacity: true)
        nodes.removeAll(keepingCapacity: true)
    }

    mutating func push(_ priority: Float, _ node: Int32) {
        priorities.append(priority)
        nodes.append(node)
        var child = nodes.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard priorities[parent] < priorities[child] else { break }
            priorities.swapAt(parent, child)
            nodes.swapAt(parent, child)
            child = parent
        }
    }

    @discardableResult
    mutating func pop() -> (priority: Float, node: Int32) {
        let top = (priorities[0], nodes[0])
        let lastPriority = priorities.removeLast()
        let lastNode = nodes.removeLast()
        if !nodes.isEmpty {
            priorities[0] = lastPriority
            nodes[0] = lastNode
            var parent = 0
            let n = nodes.count
            while true {
                let left = 2 * parent + 1
                guard left < n else { break }
                let right = left + 1
                let larger = right < n && priorities[right] > priorities[left] ? right : left
                guard priorities[larger] > priorities[parent] else { break }
                priorities.swapAt(parent, larger)
                nodes.swapAt(parent, larger)
                parent = larger
            }
        }
        return top
    }
}
