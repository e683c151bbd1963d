import Crypto
import ProximaCore

/// Making and checking API key secrets. A new key gets 56 random bits of id and 256 of secret from
/// the system's generator; only the SHA-256 of the secret is stored. A slow password hash is not
/// needed: the secret is random and long, so a leaked hash cannot be reversed by guessing.
public enum APIKeySecret {
    /// A new key's record and its token text. The text is shown to its owner once and never stored.
    public static func mint(
        tenantID: String, principalID: String, name: String = "", models: ModelScope = .all, limits: ScopeLimits = .unlimited,
        createdAt: Double, expiresAt: Double? = nil
    ) -> (key: APIKey, token: String) {
        var generator = SystemRandomNumberGenerator()
        let idBytes = (0..<7).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let secretBytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let id = APIKeyToken.base32(idBytes)
        let secret = APIKeyToken.base32(secretBytes)
        let key = APIKey(
            id: id, tenantID: tenantID, principalID: principalID, name: name, secretHash: hash(secret[...]), models: models,
            limits: limits, createdAt: createdAt, expiresAt: expiresAt)
        return (key, APIKeyToken.text(id: id, secret: secret))
    }

    /// SHA-256 of a token's secret part, lowercase hex.
    public static func hash(_ secret: Substring) -> String {
        var copy = secret
        let digest = copy.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        return hex(digest)
    }

    /// Whether `secret` is the one `key` was made with. The comparison takes the same time whatever
    /// the first differing byte.
    public static func matches(_ secret: Substring, _ key: APIKey) -> Bool {
        // Compares the digest with the stored hex digit by digit, without building either as a
        // string or an array: this runs on every request that carries a key.
        var copy = secret
        let digest = copy.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        var stored = key.secretHash
        return stored.withUTF8 { hex -> Bool in
            guard hex.count == 2 * SHA256.byteCount else { return false }
            let digits = Self.hexDigits
            var difference: UInt8 = 0
            var index = 0
            for byte in digest {
                difference |= hex[index] ^ digits[Int(byte >> 4)]
                difference |= hex[index + 1] ^ digits[Int(byte & 15)]
                index += 2
            }
            return difference == 0
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = hexDigits
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
