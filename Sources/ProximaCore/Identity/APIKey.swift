/// A stored API key: everything but its secret, of which only a hash is kept. The key's `id` is
/// also the public part of the token, so a presented token finds its record without a search.
public struct APIKey: Codable, Sendable, Equatable, Identifiable {
    /// The public prefix (``APIKeyToken/idLength`` characters of base32), unique.
    public var id: String
    public var tenantID: String
    public var principalID: String
    /// Free text naming the key for its owner ("ci", "laptop").
    public var name: String
    /// SHA-256 of the token's secret part, lowercase hex.
    public var secretHash: String
    /// Narrows the tenant's models; never widens them.
    public var models: ModelScope
    /// The key's own limits; unset ones fall back to `limits.key` of the configuration.
    public var limits: ScopeLimits
    /// Unix seconds.
    public var createdAt: Double
    /// Unix seconds after which the key no longer works; `nil`: never.
    public var expiresAt: Double?
    /// Unix seconds at which the key was revoked; `nil`: not revoked.
    public var revokedAt: Double?

    public init(
        id: String, tenantID: String, principalID: String, name: String = "", secretHash: String, models: ModelScope = .all,
        limits: ScopeLimits = .unlimited, createdAt: Double, expiresAt: Double? = nil, revokedAt: Double? = nil
    ) {
        self.id = id
        self.tenantID = tenantID
        self.principalID = principalID
        self.name = name
        self.secretHash = secretHash
        self.models = models
        self.limits = limits
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }

    /// Whether the key works at `now` (Unix seconds): not revoked and not expired.
    public func isUsable(at now: Double) -> Bool {
        if revokedAt != nil { return false }
        if let expiresAt, !(now < expiresAt) { return false }
        return true
    }
}

/// The text form of an API key: `pxk_` + id (12 characters) + `_` + secret (52 characters), both in
/// lowercase base32 (`a-z`, `2-7`), 69 characters in all. The secret carries 256 random bits. The
/// prefix makes leaked keys easy to recognise for secret scanners; the id is what lists and logs
/// show.
public struct APIKeyToken: Sendable, Equatable {
    public static let prefix = "pxk_"
    public static let idLength = 12
    public static let secretLength = 52
    public static let length = prefix.utf8.count + idLength + 1 + secretLength

    public var id: Substring
    public var secret: Substring

    /// Splits a presented token, or `nil` when it does not have the shape of a key (no look-up is
    /// done then).
    public init?(parsing text: Substring) {
        let bytes = text.utf8
        guard bytes.count == Self.length, text.hasPrefix(Self.prefix) else { return nil }
        let idStart = text.utf8.index(text.startIndex, offsetBy: Self.prefix.utf8.count)
        let idEnd = text.utf8.index(idStart, offsetBy: Self.idLength)
        guard text.utf8[idEnd] == UInt8(ascii: "_") else { return nil }
        let secretStart = text.utf8.index(after: idEnd)
        let id = text[idStart..<idEnd]
        let secret = text[secretStart...]
        guard Self.isBase32(id), Self.isBase32(secret) else { return nil }
        self.id = id
        self.secret = secret
    }

    public init?(parsing text: String) { self.init(parsing: text[...]) }

    /// The token of an id and a secret, both already in base32.
    public static func text(id: String, secret: String) -> String { prefix + id + "_" + secret }

    /// Lowercase base32 (RFC 4648 alphabet, lowercased, no padding) of `bytes`.
    public static func base32(_ bytes: some Sequence<UInt8>) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func isBase32(_ text: Substring) -> Bool {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "2")...UInt8(ascii: "7"): continue
            default: return false
            }
        }
        return true
    }
}
