import HTTPTypes

/// The credential of a request: the token of its one `Authorization: Bearer <token>` field
/// (RFC 6750). Anything else (no field, several, another scheme, a token with characters outside
/// token68, a token longer than ``maximumLength``) has no credential, which the identify stage
/// answers like a bad one.
enum BearerCredential {
    /// Longer than any API key (69 bytes) or reasonable JWT.
    static let maximumLength = 8 * 1024

    enum Kind: Equatable {
        /// `pxk_...`: an API key.
        case apiKey
        /// Three base64url parts separated by dots: a JWT.
        case jwt
    }

    /// The token, or nil when the request carries no usable bearer credential.
    static func token(in headers: HTTPFields) -> Substring? {
        var found: Substring?
        for field in headers[fields: .authorization] {
            guard found == nil else { return nil }  // several: ambiguous
            found = field.value[...]
        }
        guard let value = found else { return nil }
        return token(inFieldValue: value)
    }

    /// The token of one `Authorization` value: `Bearer` (any case), one or more spaces, token68.
    static func token(inFieldValue value: Substring) -> Substring? {
        let utf8 = value.utf8
        guard utf8.count > 7, utf8.count <= maximumLength + 64 else { return nil }
        var index = utf8.startIndex
        for expected in "bearer".utf8 {
            guard utf8[index] | 0x20 == expected else { return nil }
            index = utf8.index(after: index)
        }
        guard utf8[index] == UInt8(ascii: " ") else { return nil }
        while index < utf8.endIndex && utf8[index] == UInt8(ascii: " ") { index = utf8.index(after: index) }
        let token = value[index...]
        guard !token.isEmpty, token.utf8.count <= maximumLength, isToken68(token) else { return nil }
        return token
    }

    /// What kind of credential a token looks like; nil when neither.
    static func kind(of token: Substring) -> Kind? {
        if token.utf8.starts(with: "pxk_".utf8) { return .apiKey }
        var dots = 0
        for byte in token.utf8 where byte == UInt8(ascii: ".") { dots += 1 }
        return dots == 2 ? .jwt : nil
    }

    /// token68: `A-Z a-z 0-9 - . _ ~ + /` then any number of `=`.
    static func isToken68(_ token: Substring) -> Bool {
        var padding = false
        for byte in token.utf8 {
            switch byte {
            case UInt8(ascii: "="):
                padding = true
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                if padding { return false }
            default:
                return false
            }
        }
        return true
    }
}

/// base64url without padding (RFC 4648 §5), as JWTs use it. Strict: characters outside the
/// alphabet, padding, and a length that leaves stray bits (a remainder of one character, or
/// non-zero bits in the last character) are refused, so that each byte string has one encoding.
enum Base64URL {
    static func decode(_ text: Substring) -> [UInt8]? {
        let utf8 = text.utf8
        guard utf8.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(utf8.count * 3 / 4)
        var buffer: UInt32 = 0
        var bits = 0
        for byte in utf8 {
            guard let value = sextet(byte) else { return nil }
            buffer = buffer << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        // Leftover bits must be zero.
        guard buffer & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return output
    }

    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= 6 {
                bits -= 6
                out.append(alphabet[Int(buffer >> UInt32(bits) & 63)])
            }
        }
        if bits > 0 { out.append(alphabet[Int(buffer << UInt32(6 - bits) & 63)]) }
        return String(decoding: out, as: UTF8.self)
    }

    private static func sextet(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }
}
