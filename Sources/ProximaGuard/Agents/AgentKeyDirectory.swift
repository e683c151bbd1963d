import Crypto
import ProximaCore

/// An Ed25519 public key of a signed agent, as a JWK (`{"kty":"OKP","crv":"Ed25519","x":"..."}`),
/// with its RFC 7638 thumbprint: the `keyid` Web Bot Auth signatures name it by.
public struct AgentPublicKey: Sendable {
    public let key: Curve25519.Signing.PublicKey
    /// `x`, base64url without padding.
    public let x: String
    /// SHA-256 of `{"crv":"Ed25519","kty":"OKP","x":"<x>"}`, base64url without padding.
    public let thumbprint: String

    /// A key from its JWK members; nil unless `kty` is `OKP`, `crv` is `Ed25519` and `x` is 32 bytes
    /// of base64url.
    public init?(kty: String, crv: String, x: String) {
        guard kty == "OKP", crv == "Ed25519", let raw = Base64.decode(x.utf8, urlSafe: true), raw.count == 32,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else { return nil }
        self.init(key: key)
    }

    public init(key: Curve25519.Signing.PublicKey) {
        self.key = key
        self.x = Base64.encode(key.rawRepresentation, urlSafe: true)
        self.thumbprint = Self.thumbprint(x: x)
    }

    /// The RFC 7638 thumbprint of an OKP key: its required members in lexicographic order, without
    /// spaces, hashed with SHA-256 and written in base64url.
    public static func thumbprint(x: String) -> String {
        let canonical = #"{"crv":"Ed25519","kty":"OKP","x":""# + x + #""}"#
        return Base64.encode(Array(SHA256.hash(data: Array(canonical.utf8))), urlSafe: true)
    }

    public func isValidSignature(_ signature: [UInt8], for message: String) -> Bool {
        signature.count == 64 && key.isValidSignature(signature, for: Array(message.utf8))
    }
}

/// An agent's keys, by thumbprint: a configured set or a parsed
/// `/.well-known/http-message-signatures-directory`.
public struct AgentKeyDirectory: Sendable {
    /// Largest directory document parsed (bytes).
    public static let maximumBytes = 65_536
    /// Most keys kept of one directory.
    public static let maximumKeys = 64

    public private(set) var keys: [AgentPublicKey]

    public init(keys: [AgentPublicKey]) {
        self.keys = Array(keys.prefix(Self.maximumKeys))
    }

    public func key(thumbprint: String) -> AgentPublicKey? {
        keys.first(where: { $0.thumbprint == thumbprint })
    }

    /// Parses a JWKS (`{"keys": [...]}`), keeping its Ed25519 keys and ignoring the rest (other key
    /// types, members of other types). Fails when the document is too large, not a JSON object with
    /// a `keys` array, or holds no Ed25519 key.
    public init(parsing document: some Collection<UInt8>) throws(KeyDirectoryError) {
        guard document.count <= Self.maximumBytes else { throw KeyDirectoryError(.tooLarge) }
        let bytes = Array(document)
        let parsed: JSONValue
        do {
            parsed = try bytes.withUnsafeBytes { buffer throws(CanonicalJSON.Failure) in try CanonicalJSON.parse(buffer, depthLimit: 16) }
        } catch {
            throw KeyDirectoryError(.notJSON)
        }
        guard case .object = parsed, case .array(let entries)? = parsed["keys"] else { throw KeyDirectoryError(.noKeysArray) }
        var keys: [AgentPublicKey] = []
        for entry in entries where keys.count < Self.maximumKeys {
            guard case .string(let kty)? = entry["kty"], case .string(let crv)? = entry["crv"], case .string(let x)? = entry["x"],
                let key = AgentPublicKey(kty: kty, crv: crv, x: x)
            else { continue }
            keys.append(key)
        }
        guard !keys.isEmpty else { throw KeyDirectoryError(.noUsableKeys) }
        self.keys = keys
    }
}

/// Why a key directory document was refused.
public struct KeyDirectoryError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case tooLarge = "too_large"
        case notJSON = "not_json"
        case noKeysArray = "no_keys_array"
        case noUsableKeys = "no_ed25519_keys"
    }

    public let code: Code

    public init(_ code: Code) { self.code = code }

    public var description: String { "key directory refused: \(code.rawValue)" }
}
