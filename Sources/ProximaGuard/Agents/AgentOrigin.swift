import ProximaCore

/// The origin an agent names in its `Signature-Agent` header (or a configured directory's origin):
/// scheme, host and port, lower-cased, the default port left out. Its key directory is at
/// ``directoryURL``.
public struct AgentOrigin: Sendable, Hashable, CustomStringConvertible {
    public let scheme: String
    /// The host as written: a name, an IPv4 address, or an IPv6 address in brackets.
    public let host: String
    public let port: Int?

    /// Parses an http(s) URL and keeps its origin; a path, query or fragment is ignored. Nil for
    /// another scheme, userinfo, an empty or invalid host, or a bad port.
    public init?(_ text: some StringProtocol) {
        guard text.utf8.count <= 2_048 else { return nil }
        let lowered = String(text).lowercased()
        let rest: Substring
        if lowered.hasPrefix("https://") {
            scheme = "https"
            rest = lowered.dropFirst(8)
        } else if lowered.hasPrefix("http://") {
            scheme = "http"
            rest = lowered.dropFirst(7)
        } else {
            return nil
        }
        let authority = rest.prefix(while: { $0 != "/" && $0 != "?" && $0 != "#" })
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var hostPart = authority
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            hostPart = authority[...close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
            guard IPAddress(hostPart.dropFirst().dropLast()) != nil else { return nil }
        } else if let colon = authority.firstIndex(of: ":") {
            hostPart = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { return nil }
        if !hostPart.hasPrefix("[") {
            guard hostPart.utf8.allSatisfy({ byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
            }) else { return nil }
        }
        host = String(hostPart)
        if let portText {
            guard !portText.isEmpty, portText.utf8.count <= 5, let value = Int(portText), (1...65_535).contains(value) else { return nil }
            port = (scheme == "https" && value == 443) || (scheme == "http" && value == 80) ? nil : value
        } else {
            port = nil
        }
    }

    /// `https://agent.example` or `http://127.0.0.1:8080`.
    public var description: String {
        port.map { "\(scheme)://\(host):\($0)" } ?? "\(scheme)://\(host)"
    }

    /// Where the agent's keys are published.
    public var directoryURL: String { description + "/.well-known/http-message-signatures-directory" }

    /// Whether the host is `localhost` (or under it) or a literal loopback, private, link-local,
    /// shared or unspecified address. Names are not resolved: a name that resolves to a private
    /// address is not caught here.
    public var isPrivateOrLoopback: Bool {
        if host == "localhost" || host.hasSuffix(".localhost") { return true }
        let literal = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        guard let address = IPAddress(literal) else { return false }
        return Self.privateNetworks.contains(where: { $0.contains(address) })
    }

    private static let privateNetworks: [IPNetwork] = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
        "::/128", "::1/128", "fc00::/7", "fe80::/10",
    ].compactMap { try? IPNetwork(parsing: $0) }
}
