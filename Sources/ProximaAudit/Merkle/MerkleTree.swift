import Crypto

/// A 32-byte SHA-256 digest.
public typealias MerkleHash = [UInt8]

/// RFC 9162 (Certificate Transparency 2.0) hashing: leaf SHA-256(0x00 || entry), node
/// SHA-256(0x01 || left || right), the empty tree SHA-256 of nothing.
public enum MerkleHashing {
    public static func leaf(_ entry: some Collection<UInt8>) -> MerkleHash {
        var hasher = SHA256()
        hasher.update(data: [0x00])
        let hashed: Void? = entry.withContiguousStorageIfAvailable { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        if hashed == nil { hasher.update(data: Array(entry)) }
        return Array(hasher.finalize())
    }

    public static func node(_ left: MerkleHash, _ right: MerkleHash) -> MerkleHash {
        var hasher = SHA256()
        hasher.update(data: [0x01])
        hasher.update(data: left)
        hasher.update(data: right)
        return Array(hasher.finalize())
    }

    public static var emptyRoot: MerkleHash { Array(SHA256.hash(data: [UInt8]())) }
}

/// An append-only Merkle tree over leaf hashes, held in memory: appends and the current root in
/// O(log n); roots at earlier sizes and proofs from the stored leaf hashes.
///
/// Besides the leaves, the tree keeps the hash of every complete, aligned perfect subtree (level
/// `h` holds the roots of the subtrees of `2^h` leaves starting at multiples of `2^h`): about one
/// more hash per leaf, filled in as leaves arrive (amortised one node hash per append). Any
/// subtree hash the RFC's recursions ask for is then O(log n) lookups and node hashes, so a root
/// at an earlier size or a proof costs O(log² n) at worst rather than O(n). Hashes are stored flat
/// (32 bytes each in one array per level), not one array per hash.
///
/// After a pruned prefix (``init(prunedSize:frontier:)``) each level starts at the first subtree
/// that is not entirely pruned, or at the frontier's subtree at that level.
public struct MerkleTree: Sendable {
    /// `levels[h]`: the hashes of the perfect subtrees of `2^h` leaves, flat, the first one's index
    /// being `bases[h]`.
    private var levels: [[UInt8]] = [[]]
    private var bases: [Int] = [0]
    private var prunedSize = 0
    private var count = 0

    public init() {}

    /// A tree continuing from a pruned prefix: `frontier` holds the roots of the perfect subtrees of
    /// the first `size` leaves, left to right (see ``MerkleTree/frontier``). Proofs can then be made
    /// only for leaves at `size` and beyond, and roots only for sizes `>= size`.
    public init(prunedSize size: Int, frontier: [MerkleHash]) throws {
        guard size >= 0 else { throw MerkleError("a negative tree size") }
        guard frontier.count == size.nonzeroBitCount else {
            throw MerkleError("a frontier of \(frontier.count) hashes for a tree of \(size) leaves (expected \(size.nonzeroBitCount))")
        }
        guard frontier.allSatisfy({ $0.count == 32 }) else { throw MerkleError("a frontier hash is not 32 bytes") }
        prunedSize = size
        count = size
        let height = size == 0 ? 1 : (Int.bitWidth - size.leadingZeroBitCount)
        levels = Array(repeating: [], count: height)
        bases = Array(repeating: 0, count: height)
        // The frontier's subtrees, largest (leftmost) first: one per set bit of `size`, from the top.
        var next = frontier.makeIterator()
        for level in stride(from: height - 1, through: 0, by: -1) {
            if size & (1 << level) != 0 {
                bases[level] = (size >> level) - 1
                levels[level] = next.next()!
            } else {
                bases[level] = size >> level
            }
        }
    }

    public var size: Int { count }

    public mutating func append(leafHash: MerkleHash) {
        precondition(leafHash.count == 32, "a Merkle leaf hash is 32 bytes")
        levels[0].append(contentsOf: leafHash)
        count += 1
        // Complete every perfect subtree this leaf closes.
        var level = 0
        var index = count - 1
        while index & 1 == 1, index - 1 >= bases[level] {
            let left = hash(level: level, index: index - 1)
            let right = hash(level: level, index: index)
            if level + 1 == levels.count {
                levels.append([])
                bases.append(prunedSize >> (level + 1))
            }
            levels[level + 1].append(contentsOf: MerkleHashing.node(left, right))
            level += 1
            index >>= 1
        }
    }

    public var root: MerkleHash { (try? root(size: count)) ?? MerkleHashing.emptyRoot }

    /// The roots of the perfect subtrees covering the current leaves, left to right.
    public var frontier: [MerkleHash] { (try? frontier(size: count)) ?? [] }

    /// The roots of the perfect subtrees covering the first `size` leaves, left to right.
    public func frontier(size: Int) throws -> [MerkleHash] {
        try check(size: size)
        var result: [MerkleHash] = []
        var start = 0
        for level in stride(from: Int.bitWidth - 1, through: 0, by: -1) where size & (1 << level) != 0 {
            result.append(try subtree(start, start + (1 << level)))
            start += 1 << level
        }
        return result
    }

    public func leafHash(at index: Int) -> MerkleHash? {
        guard index >= max(prunedSize, 0), index < count, index >= bases[0] else { return nil }
        return hash(level: 0, index: index)
    }

    /// The root of the first `size` leaves.
    public func root(size: Int) throws -> MerkleHash {
        try check(size: size)
        if size == 0 { return MerkleHashing.emptyRoot }
        return try subtree(0, size)
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 9162 2.1.3.1).
    public func inclusionProof(index: Int, size: Int) throws -> [MerkleHash] {
        try check(size: size)
        guard index >= 0, index < size else { throw MerkleError("leaf \(index) is not in a tree of \(size) leaves") }
        guard index >= prunedSize else { throw MerkleError("leaf \(index) was pruned (the tree starts at \(prunedSize))") }
        var path: [MerkleHash] = []
        var low = 0
        var high = size
        // Descend from the root, collecting the sibling of each subtree holding the leaf; the path
        // runs from the leaf up, so the collected hashes are reversed at the end.
        while high - low > 1 {
            let split = low + Self.largestPowerOfTwo(below: high - low)
            if index < split {
                path.append(try subtree(split, high))
                high = split
            } else {
                path.append(try subtree(low, split))
                low = split
            }
        }
        return path.reversed()
    }

    /// The consistency proof between the trees of the first `from` and `to` leaves (RFC 9162 2.1.4.1).
    /// Empty when `from` is 0 or equals `to`.
    public func consistencyProof(from: Int, to: Int) throws -> [MerkleHash] {
        try check(size: to)
        guard from >= 0, from <= to else { throw MerkleError("no consistency proof from \(from) to \(to) leaves") }
        guard from < to, from > 0 else { return [] }
        guard from >= prunedSize else { throw MerkleError("size \(from) is inside the pruned prefix (\(prunedSize) leaves)") }
        // SUBPROOF(m, D[low:high], b), unrolled: each step records one hash, inner steps first.
        var proof: [MerkleHash] = []
        var m = from
        var low = 0
        var high = to
        var whole = true
        while true {
            let n = high - low
            if m == n {
                if !whole { proof.append(try subtree(low, high)) }
                break
            }
            let k = Self.largestPowerOfTwo(below: n)
            if m <= k {
                proof.append(try subtree(low + k, high))
                high = low + k
            } else {
                proof.append(try subtree(low, low + k))
                m -= k
                low += k
                whole = false
            }
        }
        // The recursion puts the inner hash first, then the siblings from the innermost out; the loop
        // collected the siblings outermost first and the inner hash (if any) last.
        var inner: [MerkleHash] = []
        if !whole { inner.append(proof.removeLast()) }
        return inner + proof.reversed()
    }

    // MARK: internals

    private func check(size: Int) throws {
        guard size >= 0, size <= count else { throw MerkleError("a tree of \(size) leaves, but the tree holds \(count)") }
        guard size >= prunedSize else { throw MerkleError("a tree of \(size) leaves is inside the pruned prefix (\(prunedSize) leaves)") }
    }

    private func hash(level: Int, index: Int) -> MerkleHash {
        let offset = (index - bases[level]) * 32
        return Array(levels[level][offset..<offset + 32])
    }

    /// MTH(D[low:high]) for `low < high <= count`.
    private func subtree(_ low: Int, _ high: Int) throws -> MerkleHash {
        let n = high - low
        if n & (n - 1) == 0 {
            // A perfect subtree: aligned to its size in the RFC's recursions, so stored when complete.
            let level = n.trailingZeroBitCount
            let index = low >> level
            guard level < levels.count, index >= bases[level], (index - bases[level] + 1) * 32 <= levels[level].count else {
                throw MerkleError("the subtree of leaves \(low)..<\(high) was pruned")
            }
            return hash(level: level, index: index)
        }
        let k = Self.largestPowerOfTwo(below: n)
        return MerkleHashing.node(try subtree(low, low + k), try subtree(low + k, high))
    }

    /// The largest power of two smaller than `n` (n > 1).
    static func largestPowerOfTwo(below n: Int) -> Int {
        1 << (Int.bitWidth - 1 - (n - 1).leadingZeroBitCount)
    }
}

/// Proof checks a client can run with nothing but the hashes (RFC 9162 2.1.3.2 and 2.1.4.2).
public enum MerkleProof {
    public static func verifyInclusion(leafHash: MerkleHash, index: Int, size: Int, proof: [MerkleHash], root: MerkleHash) -> Bool {
        guard index >= 0, index < size, leafHash.count == 32, root.count == 32, proof.allSatisfy({ $0.count == 32 }) else { return false }
        var fn = index
        var sn = size - 1
        var r = leafHash
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = MerkleHashing.node(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0, fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = MerkleHashing.node(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// Size 0 is consistent with any tree (the proof must be empty); equal sizes need equal roots and
    /// an empty proof.
    public static func verifyConsistency(
        from size1: Int, to size2: Int, root1: MerkleHash, root2: MerkleHash, proof: [MerkleHash]
    ) -> Bool {
        guard size1 >= 0, size1 <= size2, root1.count == 32, root2.count == 32, proof.allSatisfy({ $0.count == 32 }) else { return false }
        if size1 == 0 { return proof.isEmpty && root1 == MerkleHashing.emptyRoot }
        if size1 == size2 { return proof.isEmpty && root1 == root2 }
        if proof.isEmpty { return false }
        var path = proof
        if size1 & (size1 - 1) == 0 { path.insert(root1, at: 0) }
        var fn = size1 - 1
        var sn = size2 - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = MerkleHashing.node(c, fr)
                sr = MerkleHashing.node(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0, fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = MerkleHashing.node(sr, c)
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
