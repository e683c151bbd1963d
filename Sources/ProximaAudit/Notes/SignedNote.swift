import Crypto
import Foundation
import ProximaCore

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
        guard body.utf8.last == UInt8(ascii: "\n") else { throw NoteError("a checkpoint body must end in a newline") }
        var lines = body.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        lines.removeLast()  // after the final newline
        guard lines.count >= 3 else { throw NoteError("a checkpoint body has at least three lines (origin, size, root hash)") }
        let origin = lines[0]
        guard !origin.isEmpty, !origin.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw NoteError("a checkpoint's origin must be a non-empty line of printable text")
        }
        let sizeText = lines[1]
        guard !sizeText.isEmpty, sizeText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            sizeText == "0" || !sizeText.hasPrefix("0"), let size = Int(sizeText)
        else { throw NoteError("a checkpoint's tree size must be a decimal number without sign or leading zeros") }
        guard let root = Data(base64Encoded: lines[2]), root.count == 32, root.base64EncodedString() == lines[2] else {
            throw NoteError("a checkpoint's root hash must be 32 bytes in standard base64")
        }
        let extensions = Array(lines[3...])
        guard !extensions.contains(where: \.isEmpty) else { throw NoteError("a checkpoint's extension lines must not be empty") }
        return Checkpoint(origin: origin, size: size, rootHash: Array(root), extensions: extensions)
    }
}

/// A signed note split into its body and signature lines, nothing verified yet (C2SP signed-note).
///
/// Strict: the text must be valid UTF-8 without control characters other than newline, end in a
/// newline, and hold a blank line; the body is everything up to and including the newline before
/// the last blank line; every line after it must be `— <key name> <base64 of at least 5 bytes>`.
public struct SignedNote: Sendable, Equatable {
    public struct Signature: Sendable, Equatable {
        public var name: String
        public var keyHash: [UInt8]
        public var signature: [UInt8]
    }

    public var body: String
    public var signatures: [Signature]

    /// At most this many signature lines (as other implementations of the format).
    public static let maxSignatures = 100

    public init(parsing text: some Collection<UInt8>) throws {
        let bytes = Array(text)
        guard let string = String(validating: bytes, as: UTF8.self) else { throw NoteError("a note must be valid UTF-8") }
        guard !string.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\n") || $0.value == 0x7F }) else {
            throw NoteError("a note must not contain control characters other than newline")
        }
        guard bytes.last == UInt8(ascii: "\n") else { throw NoteError("a note must end in a newline") }
        // The last "\n\n": the body ends at its first newline, the signatures start after it.
        var split: Int?
        var index = bytes.count - 2
        while index >= 0 {
            if bytes[index] == UInt8(ascii: "\n"), bytes[index + 1] == UInt8(ascii: "\n") {
                split = index
                break
            }
            index -= 1
        }
        guard let split else { throw NoteError("a note must separate its body from its signatures with a blank line") }
        let body = String(decoding: bytes[...split], as: UTF8.self)
        let signatureLines = bytes[(split + 2)...].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        guard !signatureLines.isEmpty else { throw NoteError("a note has no signature lines") }
        guard signatureLines.count <= Self.maxSignatures else { throw NoteError("a note has more than \(Self.maxSignatures) signatures") }
        let prefix = Array("— ".utf8)
        var signatures: [Signature] = []
        for line in signatureLines {
            guard line.starts(with: prefix) else { throw NoteError("a signature line must start with an em dash and a space") }
            let rest = line.dropFirst(prefix.count)
            let parts = rest.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw NoteError("a signature line is `— <key name> <base64 signature>`") }
            let name = String(decoding: parts[0], as: UTF8.self)
            guard NoteSigner.isValidName(name) else { throw NoteError("a signature line's key name is not valid") }
            let encoded = String(decoding: parts[1], as: UTF8.self)
            guard let raw = Data(base64Encoded: encoded), raw.count >= 5, raw.base64EncodedString() == encoded else {
                throw NoteError("a signature must be standard base64 of a key hash and a signature")
            }
            signatures.append(Signature(name: name, keyHash: Array(raw.prefix(4)), signature: Array(raw.dropFirst(4))))
        }
        self.body = body
        self.signatures = signatures
    }
}

/// Signs notes (C2SP signed-note) with an Ed25519 key named after the log's origin.
public struct NoteSigner: Sendable {
    public var name: String
    private let privateKey: Curve25519.Signing.PrivateKey
    private let keyHash: [UInt8]

    public init(name: String, privateKey: Curve25519.Signing.PrivateKey) throws {
        guard Self.isValidName(name) else {
            throw NoteError("a key name must be non-empty printable text without spaces or '+'")
        }
        self.name = name
        self.privateKey = privateKey
        self.keyHash = Self.keyHash(name: name, publicKey: Array(privateKey.publicKey.rawRepresentation))
    }

    /// `<name>+<key hash, 8 hex digits>+<base64(0x01 || public key)>`.
    public var verifierKey: String {
        let hex = Hex.lowercase(keyHash)
        return "\(name)+\(hex)+\(Data([0x01] + privateKey.publicKey.rawRepresentation).base64EncodedString())"
    }

    /// The whole signed note: the body, a blank line, and the signature line
    /// `— <name> <base64(key hash || signature)>\n`.
    public func sign(_ body: String) throws -> String {
        guard body.utf8.last == UInt8(ascii: "\n") else { throw NoteError("a note's body must end in a newline") }
        guard !body.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\n") || $0.value == 0x7F }) else {
            throw NoteError("a note's body must not contain control characters other than newline")
        }
        guard !body.hasSuffix("\n\n"), !body.hasPrefix("\n") else { throw NoteError("a note's body must not start or end with a blank line") }
        let signature = try privateKey.signature(for: Array(body.utf8))
        return body + "\n— \(name) \(Data(keyHash + Array(signature)).base64EncodedString())\n"
    }

    /// A key name: non-empty, valid printable text, no spaces and no `+` (a verifier key splits at its
    /// first two `+`: the base64 key may hold more).
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F || $0 == "+" || $0.properties.isWhitespace }
    }

    /// The first 4 bytes of SHA-256(name || "\n" || 0x01 || public key).
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
        guard parts.count == 3 else { throw NoteError("a verifier key is `<name>+<key hash hex>+<base64 key>`") }
        let name = String(parts[0])
        guard NoteSigner.isValidName(name) else { throw NoteError("a verifier key's name is not valid") }
        let hex = Array(parts[1].utf8)
        guard hex.count == 8, let hash = Self.bytes(hex: hex) else { throw NoteError("a verifier key's hash must be 8 hex digits") }
        guard let raw = Data(base64Encoded: String(parts[2])), raw.count == 33, raw.first == 0x01 else {
            throw NoteError("a verifier key must be an Ed25519 key (0x01 and 32 bytes, base64)")
        }
        let keyBytes = Array(raw.dropFirst())
        guard NoteSigner.keyHash(name: name, publicKey: keyBytes) == hash else {
            throw NoteError("a verifier key's hash does not match its name and key")
        }
        self.name = name
        self.keyHash = hash
        self.publicKey = try Curve25519.Signing.PublicKey(rawRepresentation: keyBytes)
    }

    /// The note's body when one of its signature lines is this key's and verifies; throws otherwise
    /// (a malformed note, no signature by this key, a bad signature). Signature lines by unknown keys
    /// are ignored.
    public func open(_ note: String) throws -> String {
        let parsed = try SignedNote(parsing: Array(note.utf8))
        var found = false
        for signature in parsed.signatures where signature.name == name && signature.keyHash == keyHash {
            found = true
            guard publicKey.isValidSignature(signature.signature, for: Array(parsed.body.utf8)) else {
                throw NoteError("the signature by \(name) does not verify")
            }
        }
        guard found else { throw NoteError("the note is not signed by \(name)+\(Hex.lowercase(keyHash))") }
        return parsed.body
    }

    private static func bytes(hex: [UInt8]) -> [UInt8]? {
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var result: [UInt8] = []
        var index = 0
        while index + 1 < hex.count {
            guard let high = value(hex[index]), let low = value(hex[index + 1]) else { return nil }
            result.append(high << 4 | low)
            index += 2
        }
        return result
    }
}

public struct NoteError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
