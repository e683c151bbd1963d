import Crypto
import Foundation

// Minimal implementation written by the storage helper so that the audit log's tests run before
// the signed-note helper's work is merged: the merge keeps the other helper's version of this file.

/// A checkpoint's body (C2SP tlog-checkpoint): origin, tree size, root hash (standard base64), each
/// on its own line ending in `\n`, then optional extension lines.
public struct Checkpoint: Sendable, Equatable {
    public var origin: String
    public var size: Int
    public var rootHash: MerkleHash
    public var extensions: [String]

    public init(origin: String, size: Int, rootHash: MerkleHash, extensions: [String] = []) {
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
        self.extensions = extensions
    }

    /// The body's text.
    public var body: String {
        var text = "\(origin)\n\(size)\n\(Data(rootHash).base64EncodedString())\n"
        for line in extensions { text += line + "\n" }
        return text
    }

    /// Parses a body strictly (the exact three lines, decimal size without sign or leading zeros,
    /// 32-byte base64 root).
    public static func parse(body: String) throws -> Checkpoint {
        guard body.hasSuffix("\n") else { throw NoteError("a checkpoint body ends with a newline") }
        let lines = body.dropLast().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3, !lines[0].isEmpty else { throw NoteError("a checkpoint body has an origin, a size and a root") }
        let sizeText = lines[1]
        guard !sizeText.isEmpty, sizeText.allSatisfy({ $0.isASCII && $0.isNumber }), sizeText == "0" || !sizeText.hasPrefix("0"),
            let size = Int(sizeText)
        else { throw NoteError("bad checkpoint size '\(sizeText)'") }
        guard let root = Data(base64Encoded: lines[2]), root.count == 32 else { throw NoteError("bad checkpoint root hash") }
        return Checkpoint(origin: lines[0], size: size, rootHash: Array(root), extensions: Array(lines[3...]))
    }
}

/// Signs notes (C2SP signed-note) with an Ed25519 key named after the log's origin.
public struct NoteSigner: Sendable {
    public var name: String
    private let privateKey: Curve25519.Signing.PrivateKey
    private let keyHash: [UInt8]

    public init(name: String, privateKey: Curve25519.Signing.PrivateKey) throws {
        guard !name.isEmpty, !name.contains(" "), !name.contains("+"), !name.contains("\n") else {
            throw NoteError("bad key name '\(name)'")
        }
        self.name = name
        self.privateKey = privateKey
        keyHash = NoteKeys.keyHash(name: name, publicKey: Array(privateKey.publicKey.rawRepresentation))
    }

    /// `<name>+<key hash, 8 hex digits>+<base64(0x01 || public key)>`.
    public var verifierKey: String {
        let hex = keyHash.map { String(format: "%02x", $0) }.joined()
        return "\(name)+\(hex)+\(Data([1] + Array(privateKey.publicKey.rawRepresentation)).base64EncodedString())"
    }

    /// The whole signed note: the body, a blank line, and the signature line
    /// `— <name> <base64(key hash || signature)>\n`.
    public func sign(_ body: String) throws -> String {
        guard body.hasSuffix("\n") else { throw NoteError("a note's text ends with a newline") }
        let signature = try privateKey.signature(for: Array(body.utf8))
        return body + "\n— \(name) \(Data(keyHash + Array(signature)).base64EncodedString())\n"
    }
}

enum NoteKeys {
    static func keyHash(name: String, publicKey: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: Array(name.utf8) + [0x0A, 0x01] + publicKey).prefix(4))
    }
}

/// Checks signed notes against one verifier key.
public struct NoteVerifier: Sendable {
    public var name: String
    public var keyHash: [UInt8]
    private let publicKey: Curve25519.Signing.PublicKey

    public init(verifierKey: String) throws {
        let parts = verifierKey.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let key = Data(base64Encoded: String(parts[2])), key.count == 33, key.first == 1 else {
            throw NoteError("malformed verifier key")
        }
        name = String(parts[0])
        publicKey = try Curve25519.Signing.PublicKey(rawRepresentation: key.dropFirst())
        keyHash = NoteKeys.keyHash(name: name, publicKey: Array(key.dropFirst()))
        guard keyHash.map({ String(format: "%02x", $0) }).joined() == parts[1] else { throw NoteError("verifier key hash mismatch") }
    }

    /// The note's body when one of its signature lines is this key's and verifies; throws otherwise
    /// (a malformed note, no signature by this key, a bad signature). Signature lines by unknown keys
    /// are ignored.
    public func open(_ note: String) throws -> String {
        guard let split = note.range(of: "\n\n", options: .backwards) else { throw NoteError("malformed note") }
        let body = String(note[..<split.lowerBound]) + "\n"
        let signatures = note[split.upperBound...]
        guard signatures.hasSuffix("\n") else { throw NoteError("malformed note") }
        for line in signatures.dropLast().split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix("— ") else { throw NoteError("malformed signature line") }
            let fields = line.dropFirst(2).split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 2, let blob = Data(base64Encoded: String(fields[1])), blob.count > 4 else {
                throw NoteError("malformed signature line")
            }
            guard String(fields[0]) == name, Array(blob.prefix(4)) == keyHash else { continue }
            if publicKey.isValidSignature(blob.dropFirst(4), for: Array(body.utf8)) { return body }
            throw NoteError("bad signature")
        }
        throw NoteError("no signature by \(name)")
    }
}

public struct NoteError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
