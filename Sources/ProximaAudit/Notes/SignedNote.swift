import Crypto

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
    public var body: String { fatalError("stub: helper A") }
    /// Parses a body strictly (the exact three lines, decimal size without sign or leading zeros,
    /// 32-byte base64 root).
    public static func parse(body: String) throws -> Checkpoint { fatalError("stub: helper A") }
}

/// Signs notes (C2SP signed-note) with an Ed25519 key named after the log's origin.
public struct NoteSigner: Sendable {
    public var name: String
    public init(name: String, privateKey: Curve25519.Signing.PrivateKey) throws { fatalError("stub: helper A") }
    /// `<name>+<key hash, 8 hex digits>+<base64(0x01 || public key)>`.
    public var verifierKey: String { fatalError("stub: helper A") }
    /// The whole signed note: the body, a blank line, and the signature line
    /// `— <name> <base64(key hash || signature)>\n`.
    public func sign(_ body: String) throws -> String { fatalError("stub: helper A") }
}

/// Checks signed notes against one verifier key.
public struct NoteVerifier: Sendable {
    public var name: String
    public var keyHash: [UInt8]
    public init(verifierKey: String) throws { fatalError("stub: helper A") }
    /// The note's body when one of its signature lines is this key's and verifies; throws otherwise
    /// (a malformed note, no signature by this key, a bad signature). Signature lines by unknown keys
    /// are ignored.
    public func open(_ note: String) throws -> String { fatalError("stub: helper A") }
}

public struct NoteError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
