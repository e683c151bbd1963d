/// One crawler-user-agents pattern, compiled for a cheap match: most patterns are literal text with
/// escapes, small character classes (`[wW]get`), alternations (`(sistrix|SISTRIX) [cC]rawler`), an
/// optional character (`Bot?`) and anchors (`^curl`). Those expand into a few literal strings, each
/// with its anchors, and match without a regular expression. The rest keep a literal the pattern
/// cannot match without (its longest run of plain text) and are confirmed by a regular expression
/// only when that literal occurs; a pattern without such a literal is confirmed on every input.
public struct UserAgentPattern: Sendable, Equatable {
    /// A literal with its anchors: it must start the input (`anchoredStart`) or end it (`anchoredEnd`).
    public struct Literal: Sendable, Equatable, Hashable {
        public var bytes: [UInt8]
        public var anchoredStart: Bool
        public var anchoredEnd: Bool
    }

    public enum Form: Sendable, Equatable {
        /// The pattern matches exactly when one of these literals occurs (with its anchors).
        case literals([Literal])
        /// The pattern needs a regular expression; `required` (unanchored) occurs in every match, or
        /// nil when no such literal of two bytes or more was found.
        case regex(required: [UInt8]?)
    }

    public var source: String
    public var form: Form

    /// Expansions kept at most per pattern; a pattern with more needs its regular expression.
    public static let maximumExpansions = 64

    public init(_ source: String) {
        self.source = source
        let bytes = Array(source.utf8)
        if let expansions = Self.expand(bytes), !expansions.isEmpty, expansions.allSatisfy({ $0.bytes.count >= 2 }) {
            form = .literals(expansions)
        } else {
            let required = Self.requiredLiteral(bytes)
            form = .regex(required: (required?.count ?? 0) >= 2 ? required : nil)
        }
    }

    // MARK: Expansion

    /// A unit of an expansion: a byte, or an anchor (`^` start, `$` end).
    private enum Unit: Hashable { case byte(UInt8), start, end }

    private static func expand(_ pattern: [UInt8]) -> [Literal]? {
        var index = 0
        guard let alternatives = parseAlternation(pattern, &index, depth: 0), index == pattern.count else { return nil }
        var literals: [Literal] = []
        var seen = Set<Literal>()
        for units in alternatives {
            // Anchors: `^` only first, `$` only last; one elsewhere can never match, so it drops the
            // expansion (not the pattern).
            var bytes: [UInt8] = []
            var anchoredStart = false
            var anchoredEnd = false
            var possible = true
            for (position, unit) in units.enumerated() {
                switch unit {
                case .byte(let byte):
                    if anchoredEnd { possible = false }
                    bytes.append(byte)
                case .start:
                    if !bytes.isEmpty { possible = false }
                    anchoredStart = true
                case .end:
                    anchoredEnd = true
                    if position != units.count - 1, units[(position + 1)...].contains(where: { if case .byte = $0 { true } else { false } }) {
                        possible = false
                    }
                }
            }
            guard possible else { continue }
            let literal = Literal(bytes: bytes, anchoredStart: anchoredStart, anchoredEnd: anchoredEnd)
            if seen.insert(literal).inserted { literals.append(literal) }
        }
        return literals
    }

    /// alternation := sequence ('|' sequence)*
    private static func parseAlternation(_ p: [UInt8], _ i: inout Int, depth: Int) -> [[Unit]]? {
        guard depth < 8 else { return nil }
        guard var result = parseSequence(p, &i, depth: depth) else { return nil }
        while i < p.count, p[i] == UInt8(ascii: "|") {
            i += 1
            guard let next = parseSequence(p, &i, depth: depth) else { return nil }
            result += next
            guard result.count <= maximumExpansions else { return nil }
        }
        return result
    }

    /// sequence := (atom '?'?)*, as the cross product of the atoms' expansions.
    private static func parseSequence(_ p: [UInt8], _ i: inout Int, depth: Int) -> [[Unit]]? {
        var result: [[Unit]] = [[]]
        while i < p.count, p[i] != UInt8(ascii: "|"), p[i] != UInt8(ascii: ")") {
            guard var atom = parseAtom(p, &i, depth: depth) else { return nil }
            if i < p.count {
                switch p[i] {
                case UInt8(ascii: "?"):
                    i += 1
                    if i < p.count, p[i] == UInt8(ascii: "?") || p[i] == UInt8(ascii: "+") { return nil }
                    atom.append([])
                case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "{"):
                    return nil
                default:
                    break
                }
            }
            guard result.count * atom.count <= maximumExpansions else { return nil }
            var product: [[Unit]] = []
            product.reserveCapacity(result.count * atom.count)
            for prefix in result {
                for suffix in atom { product.append(prefix + suffix) }
            }
            result = product
        }
        return result
    }

    /// atom := literal | '\' punctuation | '[' class ']' | '(' alternation ')' | '^' | '$'
    private static func parseAtom(_ p: [UInt8], _ i: inout Int, depth: Int) -> [[Unit]]? {
        let byte = p[i]
        switch byte {
        case UInt8(ascii: "\\"):
            guard i + 1 < p.count, let literal = escapedLiteral(p[i + 1]) else { return nil }
            i += 2
            return [[.byte(literal)]]
        case UInt8(ascii: "["):
            i += 1
            var members: [UInt8] = []
            guard i < p.count, p[i] != UInt8(ascii: "^") else { return nil }
            while i < p.count, p[i] != UInt8(ascii: "]") {
                var member = p[i]
                if member == UInt8(ascii: "\\") {
                    guard i + 1 < p.count, let literal = escapedLiteral(p[i + 1]) else { return nil }
                    member = literal
                    i += 2
                } else {
                    if member == UInt8(ascii: "[") { return nil }
                    i += 1
                }
                if i + 1 < p.count, p[i] == UInt8(ascii: "-"), p[i + 1] != UInt8(ascii: "]") {
                    // A range: small ones expand.
                    var upper = p[i + 1]
                    if upper == UInt8(ascii: "\\") {
                        guard i + 2 < p.count, let literal = escapedLiteral(p[i + 2]) else { return nil }
                        upper = literal
                        i += 1
                    }
                    i += 2
                    guard upper >= member, Int(upper) - Int(member) < 16 else { return nil }
                    members += Array(member...upper)
                } else {
                    members.append(member)
                }
            }
            guard i < p.count, !members.isEmpty else { return nil }
            i += 1
            var unique: [UInt8] = []
            for member in members where !unique.contains(member) { unique.append(member) }
            return unique.map { [.byte($0)] }
        case UInt8(ascii: "("):
            i += 1
            if i + 1 < p.count, p[i] == UInt8(ascii: "?") {
                guard p[i + 1] == UInt8(ascii: ":") else { return nil }
                i += 2
            }
            guard let inner = parseAlternation(p, &i, depth: depth + 1), i < p.count, p[i] == UInt8(ascii: ")") else { return nil }
            i += 1
            return inner
        case UInt8(ascii: "^"):
            i += 1
            return [[.start]]
        case UInt8(ascii: "$"):
            i += 1
            return [[.end]]
        case UInt8(ascii: "."), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"), UInt8(ascii: "}"),
            UInt8(ascii: "]"), UInt8(ascii: ")"), UInt8(ascii: "|"):
            return nil
        default:
            i += 1
            return [[.byte(byte)]]
        }
    }

    /// The byte an escape stands for when it is punctuation (`\/`, `\.`, `\(`); nil for classes
    /// (`\d`, `\s`), letters and digits.
    private static func escapedLiteral(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): nil
        case 0x21...0x7E, UInt8(ascii: " "): byte
        default: nil
        }
    }

    // MARK: Required literal

    /// The longest run of plain text at the top level that every match contains; nil when the
    /// pattern has a top-level alternation (no single literal is required).
    private static func requiredLiteral(_ p: [UInt8]) -> [UInt8]? {
        var best: [UInt8] = []
        var run: [UInt8] = []
        var i = 0
        func endRun() {
            if run.count > best.count { best = run }
            run.removeAll(keepingCapacity: true)
        }
        while i < p.count {
            let byte = p[i]
            switch byte {
            case UInt8(ascii: "|"):
                return nil
            case UInt8(ascii: "\\"):
                guard i + 1 < p.count, let literal = escapedLiteral(p[i + 1]) else {
                    endRun()
                    i += 2
                    continue
                }
                run.append(literal)
                i += 2
            case UInt8(ascii: "("), UInt8(ascii: "["):
                endRun()
                // Skip the group or class (groups nest; escapes inside are skipped with them).
                let open = byte
                let close = open == UInt8(ascii: "(") ? UInt8(ascii: ")") : UInt8(ascii: "]")
                var depth = 0
                while i < p.count {
                    if p[i] == UInt8(ascii: "\\") {
                        i += 2
                        continue
                    }
                    if p[i] == open && open == UInt8(ascii: "(") { depth += 1 }
                    if p[i] == close {
                        depth -= 1
                        if depth <= 0 {
                            i += 1
                            break
                        }
                    }
                    if open == UInt8(ascii: "[") && p[i] == UInt8(ascii: "[") { depth = max(depth, 1) }
                    i += 1
                }
                // A quantifier after the group applies to the group; the run is already ended.
                continue
            case UInt8(ascii: "?"), UInt8(ascii: "*"), UInt8(ascii: "{"):
                // The atom before is optional: it leaves the run.
                if !run.isEmpty { run.removeLast() }
                endRun()
                if byte == UInt8(ascii: "{") {
                    while i < p.count, p[i] != UInt8(ascii: "}") { i += 1 }
                }
                i += 1
            case UInt8(ascii: "+"):
                endRun()
                i += 1
            case UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "$"):
                endRun()
                i += 1
            default:
                run.append(byte)
                i += 1
            }
        }
        endRun()
        return best.isEmpty ? nil : best
    }
}
