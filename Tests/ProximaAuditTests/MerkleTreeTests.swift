import Foundation
import ProximaAudit
import Testing

@Suite struct MerkleTreeTests {
    /// The eight entries of the classic Certificate Transparency test data (hex), whose roots,
    /// audit paths and consistency proofs below were recomputed here from the RFC's definitions.
    static let entries = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map(bytes(hex:))
    static let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    static func bytes(hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            result.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return result
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func tree(leaves: Int) -> MerkleTree {
        var tree = MerkleTree()
        for index in 0..<leaves { tree.append(leafHash: MerkleHashing.leaf(Array("leaf \(index)".utf8))) }
        return tree
    }

    @Test func hashingFollowsTheRFC() {
        #expect(Self.hex(MerkleHashing.emptyRoot) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // The leaf of the empty entry is SHA-256(0x00).
        #expect(Self.hex(MerkleHashing.leaf([])) == Self.roots[0])
        #expect(MerkleTree().root == MerkleHashing.emptyRoot)
    }

    @Test func rootsMatchTheKnownVectorsAtEverySize() throws {
        var tree = MerkleTree()
        for (index, entry) in Self.entries.enumerated() {
            tree.append(leafHash: MerkleHashing.leaf(entry))
            #expect(Self.hex(tree.root) == Self.roots[index])
        }
        for size in 1...8 { #expect(Self.hex(try tree.root(size: size)) == Self.roots[size - 1]) }
        #expect(try tree.root(size: 0) == MerkleHashing.emptyRoot)
    }

    @Test func proofsMatchTheKnownVectors() throws {
        var tree = MerkleTree()
        for entry in Self.entries { tree.append(leafHash: MerkleHashing.leaf(entry)) }
        #expect(try tree.inclusionProof(index: 0, size: 8).map(Self.hex) == [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ])
        #expect(try tree.inclusionProof(index: 5, size: 8).map(Self.hex) == [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ])
        #expect(try tree.inclusionProof(index: 2, size: 3).map(Self.hex) == [Self.roots[1]])
        #expect(try tree.inclusionProof(index: 0, size: 1).isEmpty)
        #expect(try tree.consistencyProof(from: 1, to: 8).map(Self.hex) == [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ])
        #expect(try tree.consistencyProof(from: 6, to: 8).map(Self.hex) == [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ])
        #expect(try tree.consistencyProof(from: 2, to: 5).map(Self.hex) == [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ])
        #expect(try tree.consistencyProof(from: 3, to: 7).map(Self.hex) == [
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e",
        ])
        #expect(try tree.consistencyProof(from: 8, to: 8).isEmpty)
    }

    /// Every index and size up to 64: the proof verifies, and a flipped bit anywhere, another index,
    /// a size beyond the path's shape, a dropped or an extra hash each make it fail.
    @Test func inclusionProofsVerifyAndTamperingFails() throws {
        let tree = Self.tree(leaves: 64)
        for size in 1...64 {
            let root = try tree.root(size: size)
            for index in 0..<size {
                let leaf = tree.leafHash(at: index)!
                let proof = try tree.inclusionProof(index: index, size: size)
                #expect(MerkleProof.verifyInclusion(leafHash: leaf, index: index, size: size, proof: proof, root: root))
                for hashIndex in proof.indices {
                    var bad = proof
                    bad[hashIndex][(index + size) % 32] ^= 1 << UInt8((index + hashIndex) % 8)
                    #expect(!MerkleProof.verifyInclusion(leafHash: leaf, index: index, size: size, proof: bad, root: root))
                }
                var badLeaf = leaf
                badLeaf[index % 32] ^= 0x80
                #expect(!MerkleProof.verifyInclusion(leafHash: badLeaf, index: index, size: size, proof: proof, root: root))
                var badRoot = root
                badRoot[31] ^= 1
                #expect(!MerkleProof.verifyInclusion(leafHash: leaf, index: index, size: size, proof: proof, root: badRoot))
                for other in 0..<size where other != index {
                    #expect(!MerkleProof.verifyInclusion(leafHash: leaf, index: other, size: size, proof: proof, root: root))
                }
                // (Another size with the same path shape verifies: the size is bound by the signed
                // checkpoint holding the root, not by the path. A size that changes the shape fails.)
                if size > 1 {
                    #expect(!MerkleProof.verifyInclusion(leafHash: leaf, index: index, size: size * 2, proof: proof, root: root))
                }
                #expect(!MerkleProof.verifyInclusion(leafHash: leaf, index: index, size: index, proof: proof, root: root))
                if !proof.isEmpty {
                    #expect(!MerkleProof.verifyInclusion(leafHash: leaf, index: index, size: size, proof: Array(proof.dropLast()), root: root))
                }
                #expect(!MerkleProof.verifyInclusion(leafHash: leaf, index: index, size: size, proof: proof + [root], root: root))
            }
        }
    }

    /// Every pair of sizes up to 64: the proof verifies against both roots; a flipped bit, another
    /// size, a root of another size, a dropped hash each make it fail.
    @Test func consistencyProofsVerifyAndTamperingFails() throws {
        let tree = Self.tree(leaves: 64)
        let roots = try (0...64).map { try tree.root(size: $0) }
        for size2 in 1...64 {
            for size1 in 0...size2 {
                let proof = try tree.consistencyProof(from: size1, to: size2)
                #expect(MerkleProof.verifyConsistency(from: size1, to: size2, root1: roots[size1], root2: roots[size2], proof: proof))
                guard size1 > 0, size1 < size2 else { continue }
                #expect(!proof.isEmpty)
                for hashIndex in proof.indices {
                    var bad = proof
                    bad[hashIndex][(size1 * 7 + hashIndex) % 32] ^= 1 << UInt8((size2 + hashIndex) % 8)
                    #expect(!MerkleProof.verifyConsistency(from: size1, to: size2, root1: roots[size1], root2: roots[size2], proof: bad))
                }
                #expect(!MerkleProof.verifyConsistency(from: size1, to: size2, root1: roots[size1 - 1], root2: roots[size2], proof: proof))
                if size1 + 1 < size2 {
                    #expect(!MerkleProof.verifyConsistency(from: size1 + 1, to: size2, root1: roots[size1 + 1], root2: roots[size2], proof: proof))
                }
                #expect(!MerkleProof.verifyConsistency(from: size1, to: size2 - 1, root1: roots[size1], root2: roots[size2 - 1], proof: proof))
                #expect(!MerkleProof.verifyConsistency(from: size1, to: size2, root1: roots[size1], root2: roots[size2 - 1], proof: proof))
                #expect(!MerkleProof.verifyConsistency(from: size1, to: size2, root1: roots[size1], root2: roots[size2], proof: Array(proof.dropLast())))
                #expect(!MerkleProof.verifyConsistency(from: size1, to: size2, root1: roots[size1], root2: roots[size2], proof: []))
            }
        }
        #expect(!MerkleProof.verifyConsistency(from: 5, to: 5, root1: roots[5], root2: roots[4], proof: []))
        #expect(!MerkleProof.verifyConsistency(from: 6, to: 5, root1: roots[6], root2: roots[5], proof: []))
    }

    @Test func earlierRootsAndFrontiersMatchAFreshTree() throws {
        let tree = Self.tree(leaves: 40)
        for size in 0...40 {
            let fresh = Self.tree(leaves: size)
            #expect(try tree.root(size: size) == fresh.root)
            #expect(try tree.frontier(size: size) == fresh.frontier)
            #expect(fresh.frontier.count == size.nonzeroBitCount)
        }
        #expect(throws: MerkleError.self) { try tree.root(size: 41) }
        #expect(throws: MerkleError.self) { try tree.inclusionProof(index: 40, size: 40) }
        #expect(throws: MerkleError.self) { try tree.consistencyProof(from: 5, to: 41) }
        #expect(tree.leafHash(at: 40) == nil)
    }

    /// A tree continued from a pruned prefix's frontier has the same roots and proofs from there on
    /// as the whole tree, and refuses what needs the pruned leaves.
    @Test func aPrunedTreeContinuesFromItsFrontier() throws {
        let whole = Self.tree(leaves: 50)
        for pruned in [0, 1, 5, 6, 8, 13, 32, 33] {
            var tree = try MerkleTree(prunedSize: pruned, frontier: try whole.frontier(size: pruned))
            #expect(tree.size == pruned)
            #expect(tree.root == (try whole.root(size: pruned)))
            for index in pruned..<50 { tree.append(leafHash: whole.leafHash(at: index)!) }
            for size in pruned...50 {
                #expect(try tree.root(size: size) == whole.root(size: size))
                for index in pruned..<size {
                    #expect(try tree.inclusionProof(index: index, size: size) == whole.inclusionProof(index: index, size: size))
                }
                if pruned > 0 { #expect(try tree.consistencyProof(from: pruned, to: size) == whole.consistencyProof(from: pruned, to: size)) }
            }
            if pruned > 0 {
                #expect(throws: MerkleError.self) { try tree.inclusionProof(index: pruned - 1, size: 50) }
                #expect(throws: MerkleError.self) { try tree.root(size: pruned - 1) }
                #expect(tree.leafHash(at: pruned - 1) == nil)
            }
        }
        #expect(throws: MerkleError.self) { try MerkleTree(prunedSize: 6, frontier: [MerkleHashing.emptyRoot]) }
        #expect(throws: MerkleError.self) { try MerkleTree(prunedSize: 1, frontier: [[1, 2, 3]]) }
    }

    /// A tree beyond the sizes above (not a perfect one): proofs stay short and verify.
    @Test func proofsInALargeTreeVerify() throws {
        var tree = MerkleTree()
        let leaf = MerkleHashing.leaf([1])
        for _ in 0..<100_003 { tree.append(leafHash: leaf) }
        let proof = try tree.inclusionProof(index: 77_777, size: 100_003)
        #expect(proof.count <= 17)
        #expect(MerkleProof.verifyInclusion(leafHash: leaf, index: 77_777, size: 100_003, proof: proof, root: tree.root))
        let consistency = try tree.consistencyProof(from: 65_537, to: 100_003)
        #expect(MerkleProof.verifyConsistency(from: 65_537, to: 100_003, root1: try tree.root(size: 65_537), root2: tree.root, proof: consistency))
    }
}
