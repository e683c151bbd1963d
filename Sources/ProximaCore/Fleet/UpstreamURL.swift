/// An endpoint's base URL split into the parts an HTTP client needs. Parsed once at start so the
/// request path only concatenates strings.
public struct UpstreamURL: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    /// Path prefix without a trailing slash, e.g. `/v1`.
    public var basePath: String

    public init?(_ text: String) {
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
                guard after.hasPrefix(":"), let value = Int(after.dropFirst()) else { return nil }
                port = value
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let value = Int(host[host.index(after: colon)...]) else { return nil }
            port = value
            host = host[..<colon]
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
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

    /// Why a text is not a usable base URL, or nil when it is.
    public static func problem(with text: String) -> String? {
        UpstreamURL(text) == nil ? "must be an http:// or https:// URL with a host (e.g. http://127.0.0.1:8000/v1), got '\(text)'" : nil
    }
}
