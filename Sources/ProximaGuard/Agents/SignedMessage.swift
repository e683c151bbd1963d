/// A request as HTTP Message Signatures (RFC 9421) see it: the request line's parts and the header
/// fields in the order received. The gateway fills it from the request head; tests build it by hand.
public struct SignedMessage: Sendable {
    public struct Field: Sendable, Equatable {
        /// Lower-cased.
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name.lowercased()
            self.value = value
        }
    }

    public var method: String
    /// `http` or `https`.
    public var scheme: String
    /// The `Host` (or `:authority`) as sent.
    public var authority: String?
    /// The request target as sent: the path and query in origin form (`/foo?a=b`), or an absolute
    /// URI.
    public var target: String?
    public var fields: [Field]

    public init(method: String, scheme: String, authority: String?, target: String?, fields: [Field]) {
        self.method = method
        self.scheme = scheme
        self.authority = authority
        self.target = target
        self.fields = fields
    }

    /// The value of the field `name` (lower-case) as a signature covers it: each line's value with
    /// surrounding spaces and tabs removed, lines joined by `, `; nil when absent.
    public func fieldValue(_ name: String) -> String? {
        var joined: String?
        for field in fields where field.name == name {
            let trimmed = Self.trimmed(field.value)
            if joined == nil { joined = trimmed } else { joined! += ", " + trimmed }
        }
        return joined
    }

    static func trimmed(_ text: String) -> String {
        let utf8 = text.utf8
        guard let start = utf8.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }) else { return "" }
        let end = utf8.lastIndex(where: { $0 != 0x20 && $0 != 0x09 })!
        return String(text[start...end])
    }

    /// The path and query of the target (`/foo`, `a=b`), whatever its form; nil when the target is
    /// absent or neither origin nor absolute form.
    var pathAndQuery: (path: String, query: String?)? {
        guard let target, !target.isEmpty else { return nil }
        var rest = Substring(target)
        if !rest.hasPrefix("/") {
            guard let schemeEnd = rest.firstRange(of: "://") else { return nil }
            rest = rest[schemeEnd.upperBound...]
            if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
                rest = rest[slash...]
            } else {
                rest = ""
            }
        }
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let path: Substring
        let query: Substring?
        if let mark = rest.firstIndex(of: "?") {
            path = rest[..<mark]
            query = rest[rest.index(after: mark)...]
        } else {
            path = rest
            query = nil
        }
        return (path.isEmpty ? "/" : String(path), query.map(String.init))
    }

    /// The authority lower-cased, without the scheme's default port (RFC 9421 section 2.2.3).
    var normalizedAuthority: String? {
        guard let authority = authority.map(Self.trimmed), !authority.isEmpty else { return nil }
        var lowered = authority.lowercased()
        let scheme = scheme.lowercased()
        if scheme == "https", lowered.hasSuffix(":443") {
            lowered.removeLast(4)
        } else if scheme == "http", lowered.hasSuffix(":80") {
            lowered.removeLast(3)
        }
        return lowered
    }
}

/// The signature base of RFC 9421 section 2.5: one line per covered component, `"<name>": <value>`,
/// then `"@signature-params": <the inner list, serialized>`, joined by `\n` without a trailing one.
public enum SignatureBase {
    /// The derived components this verifier can resolve (RFC 9421 section 2.2, requests only).
    public static let derivedComponents: Set<String> = [
        "@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query",
    ]

    /// The base for `parameters` (the covered components and their parameters) over `message`.
    /// Fails with ``SignatureFailure/missingComponent`` when a covered component is absent from the
    /// message, and ``SignatureFailure/malformedSignature`` for a component identifier this verifier
    /// does not resolve (one with parameters, one repeated, `@signature-params` or `@status`, not
    /// lower-case).
    public static func build(for parameters: StructuredFieldInnerList, over message: SignedMessage) throws(SignatureFailure) -> String {
        var base = ""
        var seen: Set<String> = []
        for item in parameters.items {
            guard case .string(let name) = item.value, item.parameters.isEmpty, !name.isEmpty, seen.insert(name).inserted else {
                throw .malformedSignature
            }
            let value = try componentValue(name, of: message)
            guard !value.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) else { throw .malformedSignature }
            base += "\"" + name + "\": " + value + "\n"
        }
        base += "\"@signature-params\": " + parameters.serialized
        return base
    }

    static func componentValue(_ name: String, of message: SignedMessage) throws(SignatureFailure) -> String {
        if name.hasPrefix("@") {
            switch name {
            case "@method":
                return message.method
            case "@scheme":
                return message.scheme.lowercased()
            case "@authority":
                guard let authority = message.normalizedAuthority else { throw .missingComponent }
                return authority
            case "@request-target":
                guard let target = message.target, !target.isEmpty else { throw .missingComponent }
                return target
            case "@path":
                guard let parts = message.pathAndQuery else { throw .missingComponent }
                return parts.path
            case "@query":
                guard let parts = message.pathAndQuery else { throw .missingComponent }
                return "?" + (parts.query ?? "")
            case "@target-uri":
                guard let authority = message.normalizedAuthority, let parts = message.pathAndQuery else { throw .missingComponent }
                return message.scheme.lowercased() + "://" + authority + parts.path + (parts.query.map { "?" + $0 } ?? "")
            default:
                throw .malformedSignature
            }
        }
        guard name.utf8.allSatisfy({ StructuredFieldParser.isTokenCharacter($0) && !($0 >= 0x41 && $0 <= 0x5A) }) else {
            throw .malformedSignature
        }
        guard let value = message.fieldValue(name) else { throw .missingComponent }
        return value
    }
}
