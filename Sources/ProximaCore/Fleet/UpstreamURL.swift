/// An endpoint's base URL split into the parts an HTTP client needs. Parsed once at start so the
/// request path only concatenates strings.
public struct UpstreamURL: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    /// Path prefix without a trailing slash, e.g. `/v1`.
    public var basePath: String

    public init?(_ text: String) {
        guard Self.characterProblem(in: text) == nil else { return nil }
        let scheme: String
        if text.hasPrefix("http://") {
            scheme = "http"
        } else if text.hasPrefix("https://") {
            scheme = "https"
        } else {
            return nil
        }
        let rest = text.dropFirst(scheme.count + 3)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var path = String(rest.dropFirst(authority.count))
        guard !authority.isEmpty, !authority.contains("@"), !path.contains("?"), !path.contains("#") else { return nil }
        var host = Substring(authority)
        var port = scheme == "https" ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            host = host[...close]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let value = Self.port(after.dropFirst()) else { return nil }
                port = value
            }
            guard host.dropFirst().dropLast().allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else if let colon = host.lastIndex(of: ":") {
            guard let value = Self.port(host[host.index(after: colon)...]) else { return nil }
            port = value
            host = host[..<colon]
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        if !host.hasPrefix("[") {
            guard host.utf8.allSatisfy({ Self.isHostByte($0) }) else { return nil }
        }
        guard Self.isValidPath(path) else { return nil }
        while path.hasSuffix("/") { path.removeLast() }
        self.scheme = scheme
        self.host = String(host)
        self.port = port
        self.basePath = path
    }

    /// Full URL of an API path below the base, e.g. `appending("/chat/completions")`.
    public func appending(_ path: String) -> String {
        "\(scheme)://\(host):\(port)\(basePath)\(path)"
    }

    public var description: String { "\(scheme)://\(host):\(port)\(basePath)" }

    /// Why a text is not a usable base URL, or nil when it is. The URL ends up in request lines, so
    /// whitespace, control characters and anything a path or host may not hold are refused rather
    /// than sent (a CR/LF would start a header of the URL's choosing).
    public static func problem(with text: String) -> String? {
        if let problem = characterProblem(in: text) { return problem + "; got \(shown(text))" }
        return UpstreamURL(text) == nil
            ? "must be an http:// or https:// URL with a host, an optional port and a path of URL characters "
                + "(e.g. http://127.0.0.1:8000/v1), with no user, query or fragment; got \(shown(text))"
            : nil
    }

    /// The text quoted for a message, with control characters escaped.
    private static func shown(_ text: String) -> String {
        var result = "'"
        for scalar in text.unicodeScalars.prefix(200) {
            result += scalar.value < 0x20 || scalar.value == 0x7F ? scalar.escaped(asASCII: true) : String(scalar)
        }
        return result + "'"
    }

    private static func characterProblem(in text: String) -> String? {
        if text.utf8.count > 2_048 { return "must be at most 2048 bytes long" }
        if text.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) { return "must not contain spaces or control characters (CR, LF, tab)" }
        if text.utf8.contains(where: { $0 >= 0x80 }) { return "must be ASCII (percent-encode other characters)" }
        return nil
    }

    private static func port(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return Int(text)
    }

    /// Letters, digits, `-`, `.` and `_`: host names and IPv4 addresses.
    private static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            true
        default: false
        }
    }

    /// A path of RFC 3986 path characters, percent signs only as escapes.
    private static func isValidPath(_ path: String) -> Bool {
        let bytes = Array(path.utf8)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, Character(Unicode.Scalar(bytes[index + 1])).isHexDigit,
                    Character(Unicode.Scalar(bytes[index + 2])).isHexDigit
                else { return false }
                index += 3
                continue
            }
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                break
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "$"),
                UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"),
                UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "/"):
                break
            default:
                return false
            }
            index += 1
        }
        return true
    }
}
