/// Which models a tenant or key may use: every model, or a list of names and prefix patterns
/// (`llama-3.1-*` matches every name starting `llama-3.1-`). Names are compared exactly; the gateway
/// allows a request when the scope allows the name the caller sent or the logical model that name
/// resolves to (so listing a model's logical name covers its aliases).
public enum ModelScope: Sendable, Equatable, Codable {
    case all
    case only([String])

    public func allows(_ model: Substring) -> Bool {
        switch self {
        case .all: return true
        case .only(let patterns):
            for pattern in patterns where Self.matches(pattern, model) { return true }
            return false
        }
    }

    public func allows(_ model: String) -> Bool { allows(model[...]) }

    /// Both scopes at once: a key can only narrow its tenant's models.
    public func intersecting(_ other: ModelScope) -> ModelScope {
        switch (self, other) {
        case (.all, _): return other
        case (_, .all): return self
        case (.only(let a), .only(let b)):
            // A name allowed by both lists: keep each pattern of one list that the other allows
            // entirely (an exact name it matches, or a narrower prefix).
            var kept: [String] = []
            for p in a where Self.covers(b, p) { kept.append(p) }
            for p in b where Self.covers(a, p) && !kept.contains(p) { kept.append(p) }
            return .only(kept)
        }
    }

    /// Whether every name `pattern` matches is matched by one of `patterns`.
    static func covers(_ patterns: [String], _ pattern: String) -> Bool {
        let isPrefix = pattern.hasSuffix("*")
        let stem = isPrefix ? String(pattern.dropLast()) : pattern
        for p in patterns {
            if p.hasSuffix("*") {
                if stem.hasPrefix(p.dropLast()) { return true }
            } else if !isPrefix && p == stem {
                return true
            }
        }
        return false
    }

    static func matches(_ pattern: String, _ model: Substring) -> Bool {
        if pattern.hasSuffix("*") { return model.hasPrefix(pattern.dropLast()) }
        return model == pattern[...]
    }

    /// Encoded as `null` (every model) or a list of patterns.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        self = c.decodeNil() ? .all : .only(try c.decode([String].self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .all: try c.encodeNil()
        case .only(let patterns): try c.encode(patterns)
        }
    }
}
