import Crypto

// Minimal implementation written by the storage helper so that the audit log's tests run before
// the Merkle helper's work is merged: the merge keeps the other helper's version of this file.

/// A 32-byte SHA-256 digest.
public typealias MerkleHash = [UInt8]

/// RFC 9162 (Certificate Transparency 2.0) hashing: leaf SHA-256(0x00 || entry), node
/// SHA-256(0x01 || left || right), the empty tree SHA-256 of nothing.
public enum MerkleHashing {
    public static func leaf(_ entry: some Collection<UInt8>) -> MerkleHash {
        var hasher = SHA256()
        hasher.update(data: [0])
        hasher.update(data: Array(entry))
        return Array(hasher.finalize())
    }

    public static func node(_ left: MerkleHash, _ right: MerkleHash) -> MerkleHash {
        var hasher = SHA256()
        hasher.update(data: [1])
        hasher.update(data: left)
        hasher.update(data: right)
        return Array(hasher.finalize())
    }

    public static var emptyRoot: MerkleHash { Array(SHA256.hash(data: [UInt8]())) }
}

/// An append-only Merkle tree over leaf hashes, held in memory: appends and the current root in
/// O(log n); roots at earlier sizes and proofs from the stored leaf hashes.
public struct MerkleTree: Sendable {
    private var prunedCount = 0
    /// The pruned prefix's perfect subtrees, by (first leaf, leaf count).
    private var prunedSubtrees: [Int: MerkleHash] = [:]
    /// Leaf hashes from `prunedCount` on.
    private var leaves: [MerkleHash] = []
    /// The current frontier with each subtree's height.
    private var stack: [(hash: MerkleHash, height: Int)] = []

    public init() {}

    /// A tree continuing from a pruned prefix: `frontier` holds the roots of the perfect subtrees of
    /// the first `size` leaves, left to right (see ``MerkleTree/frontier``). Proofs can then be made
    /// only for leaves at `size` and beyond, and roots only for sizes `>= size`.
    public init(prunedSize size: Int, frontier: [MerkleHash]) throws {
        guard size >= 0 else { throw MerkleError("negative size") }
        let heights = Self.heights(of: size)
        guard heights.count == frontier.count, frontier.allSatisfy({ $0.count == 32 }) else {
            throw MerkleError("a frontier of \(frontier.count) hashes does not fit a tree of \(size) leaves")
        }
        prunedCount = size
        var start = 0
        for (height, hash) in zip(heights, frontier) {
            prunedSubtrees[Self.key(start, 1 << height)] = hash
            stack.append((hash, height))
            start += 1 << height
        }
    }

    private static func heights(of size: Int) -> [Int] {
        var result: [Int] = []
        var bit = Int.bitWidth - 2
        while bit >= 0 {
            if size & (1 << bit) != 0 { result.append(bit) }
            bit -= 1
        }
        return result
    }

    private static func key(_ start: Int, _ count: Int) -> Int { start &* 64 &+ count.trailingZeroBitCount }

    public var size: Int { prunedCount + leaves.count }

    public mutating func append(leafHash: MerkleHash) {
        leaves.append(leafHash)
        stack.append((leafHash, 0))
        while stack.count >= 2, stack[stack.count - 1].height == stack[stack.count - 2].height {
            let right = stack.removeLast()
            let left = stack.removeLast()
            stack.append((MerkleHashing.node(left.hash, right.hash), left.height + 1))
        }
    }

    public var root: MerkleHash {
        guard var accumulator = stack.last?.hash else { return MerkleHashing.emptyRoot }
        for entry in stack.dropLast().reversed() { accumulator = MerkleHashing.node(entry.hash, accumulator) }
        return accumulator
    }

    /// The roots of the perfect subtrees covering the current leaves, left to right.
    public var frontier: [MerkleHash] { stack.map(\.hash) }

    public func leafHash(at index: Int) -> MerkleHash? {
        guard index >= prunedCount, index < size else { return nil }
        return leaves[index - prunedCount]
    }

    /// The root of the first `size` leaves.
    public func root(size: Int) throws -> MerkleHash {
        guard size >= prunedCount, size <= self.size else { throw MerkleError("no root at size \(size)") }
        if size == 0 { return MerkleHashing.emptyRoot }
        return try subtree(0, size)
    }

    private func subtree(_ start: Int, _ end: Int) throws -> MerkleHash {
        let count = end - start
        if end <= prunedCount {
            if count.nonzeroBitCount == 1, let hash = prunedSubtrees[Self.key(start, count)] { return hash }
            if count == 1 { throw MerkleError("leaf \(start) was pruned") }
        }
        if count == 1 { return leaves[start - prunedCount] }
        let split = Self.largestPowerOfTwo(below: count)
        return MerkleHashing.node(try subtree(start, start + split), try subtree(start + split, end))
    }

    private static func largestPowerOfTwo(below count: Int) -> Int {
        var split = 1
        while split << 1 < count { split <<= 1 }
        return split
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 9162 2.1.3.1).
    public func inclusionProof(index: Int, size: Int) throws -> [MerkleHash] {
        guard index >= prunedCount, index < size, size <= self.size else {
            throw MerkleError("no inclusion proof for leaf \(index) at size \(size)")
        }
        return try path(index, 0, size)
    }

    private func path(_ index: Int, _ start: Int, _ end: Int) throws -> [MerkleHash] {
        let count = end - start
        if count <= 1 { return [] }
        let split = Self.largestPowerOfTwo(below: count)
        if index < start + split { return try path(index, start, start + split) + [try subtree(start + split, end)] }
        return try path(index, start + split, end) + [try subtree(start, start + split)]
    }

    /// The consistency proof between the trees of the first `from` and `to` leaves (RFC 9162 2.1.4.1).
    public func consistencyProof(from: Int, to: Int) throws -> [MerkleHash] {
        guard from >= prunedCount, from <= to, to <= size, from > 0 || to == 0 || from == to else {
            throw MerkleError("no consistency proof from \(from) to \(to)")
        }
        if from == to || from == 0 { return [] }
        return try subproof(from, 0, to, true)
    }

    private func subproof(_ from: Int, _ start: Int, _ end: Int, _ complete: Bool) throws -> [MerkleHash] {
        let count = end - start
        if from == count { return complete ? [] : [try subtree(start, end)] }
        let split = Self.largestPowerOfTwo(below: count)
        if from <= split { return try subproof(from, start, start + split, complete) + [try subtree(start + split, end)] }
        return try subproof(from - split, start + split, end, false) + [try subtree(start, start + split)]
    }
}

/// Proof checks a client can run with nothing but the hashes (RFC 9162 2.1.3.2 and 2.1.4.2).
public enum MerkleProof {
    public static func verifyInclusion(leafHash: MerkleHash, index: Int, size: Int, proof: [MerkleHash], root: MerkleHash) -> Bool {
        guard index >= 0, index < size else { return false }
        var fn = index
        var sn = size - 1
        var result = leafHash
        for hash in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                result = MerkleHashing.node(hash, result)
                if fn & 1 == 0 {
                    repeat {
                        fn >>= 1
                        sn >>= 1
                    } while fn & 1 == 0 && fn != 0
                }
            } else {
                result = MerkleHashing.node(result, hash)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && result == root
    }

    public static func verifyConsistency(
        from size1: Int, to size2: Int, root1: MerkleHash, root2: MerkleHash, proof: [MerkleHash]
    ) -> Bool {
        guard size1 >= 0, size1 <= size2 else { return false }
        if size1 == size2 { return proof.isEmpty && root1 == root2 }
        if size1 == 0 { return proof.isEmpty }
        var path = proof
        if size1.nonzeroBitCount == 1 { path.insert(root1, at: 0) }
        guard !path.isEmpty else { return false }
        var fn = size1 - 1
        var sn = size2 - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for hash in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = MerkleHashing.node(hash, fr)
                sr = MerkleHashing.node(hash, sr)
                if fn & 1 == 0 {
                    repeat {
                        fn >>= 1
                        sn >>= 1
                    } while fn & 1 == 0 && fn != 0
                }
            } else {
                sr = MerkleHashing.node(sr, hash)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == root1 && sr == root2 && sn == 0
    }
}

public struct MerkleError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
