import Crypto

/// A 32-byte SHA-256 digest.
public typealias MerkleHash = [UInt8]

/// RFC 9162 (Certificate Transparency 2.0) hashing: leaf SHA-256(0x00 || entry), node
/// SHA-256(0x01 || left || right), the empty tree SHA-256 of nothing.
public enum MerkleHashing {
    public static func leaf(_ entry: some Collection<UInt8>) -> MerkleHash { fatalError("stub: helper A") }
    public static func node(_ left: MerkleHash, _ right: MerkleHash) -> MerkleHash { fatalError("stub: helper A") }
    public static var emptyRoot: MerkleHash { fatalError("stub: helper A") }
}

/// An append-only Merkle tree over leaf hashes, held in memory: appends and the current root in
/// O(log n); roots at earlier sizes and proofs from the stored leaf hashes.
public struct MerkleTree: Sendable {
    public init() {}

    /// A tree continuing from a pruned prefix: `frontier` holds the roots of the perfect subtrees of
    /// the first `size` leaves, left to right (see ``MerkleTree/frontier``). Proofs can then be made
    /// only for leaves at `size` and beyond, and roots only for sizes `>= size`.
    public init(prunedSize size: Int, frontier: [MerkleHash]) throws { fatalError("stub: helper A") }

    public var size: Int { fatalError("stub: helper A") }
    public mutating func append(leafHash: MerkleHash) { fatalError("stub: helper A") }
    public var root: MerkleHash { fatalError("stub: helper A") }
    /// The roots of the perfect subtrees covering the current leaves, left to right.
    public var frontier: [MerkleHash] { fatalError("stub: helper A") }
    public func leafHash(at index: Int) -> MerkleHash? { fatalError("stub: helper A") }
    /// The root of the first `size` leaves.
    public func root(size: Int) throws -> MerkleHash { fatalError("stub: helper A") }
    /// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 9162 2.1.3.1).
    public func inclusionProof(index: Int, size: Int) throws -> [MerkleHash] { fatalError("stub: helper A") }
    /// The consistency proof between the trees of the first `from` and `to` leaves (RFC 9162 2.1.4.1).
    public func consistencyProof(from: Int, to: Int) throws -> [MerkleHash] { fatalError("stub: helper A") }
}

/// Proof checks a client can run with nothing but the hashes (RFC 9162 2.1.3.2 and 2.1.4.2).
public enum MerkleProof {
    public static func verifyInclusion(leafHash: MerkleHash, index: Int, size: Int, proof: [MerkleHash], root: MerkleHash) -> Bool {
        fatalError("stub: helper A")
    }

    public static func verifyConsistency(
        from size1: Int, to size2: Int, root1: MerkleHash, root2: MerkleHash, proof: [MerkleHash]
    ) -> Bool {
        fatalError("stub: helper A")
    }
}

public struct MerkleError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
