/// A validating, allocation-light JSON scanner over raw bytes. It checks the syntax of a whole
/// document but materialises nothing except what is asked for: the members of the top-level object
/// as (key, value byte range) pairs. The gateway reads the few fields it needs this way and passes
/// the rest of the body through untouched.
///
/// It is strict and total, because it reads what callers and upstreams send: every input ends in a
/// result or a ``SyntaxError`` after one pass (each step consumes a byte or throws), strings must be
/// valid UTF-8 with every `\u` escape complete and surrogates paired, and nesting stops at
/// ``maximumDepth``.
struct JSONScanner {
    enum ValueKind: Equatable {
        case object, array, string, number, bool, null
    }

    struct Member {
        var key: String
        var kind: ValueKind
        /// Byte range of the value inside the scanned buffer.
        var range: Range<Int>
        /// Where the member's key starts (its opening quote).
        var keyStart: Int = 0
    }

    /// Why a document was refused, and where.
    struct SyntaxError: Error, Equatable {
        enum Code: Equatable, Sendable {
            /// The document ends inside a value (a truncated body or event).
            case unexpectedEnd
            case unexpectedCharacter
            case invalidNumber
            case invalidLiteral
            /// A backslash escape that JSON does not have, or `\u` without four hex digits.
            case invalidEscape
            /// A `\u` escape of a UTF-16 surrogate that is not part of a high-low pair.
            case loneSurrogate
            /// Bytes in a string that are not UTF-8 (overlong, surrogate, out-of-range or cut sequences).
            case invalidUTF8
            /// A raw control character (below U+0020) in a string.
            case controlCharacter
            case tooDeep
            case notAnObject
            case trailingData
        }

        var offset: Int
        var reason: String
        var code: Code = .unexpectedCharacter
    }

    static let maximumDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private var position: Int

    private init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.position = 0
    }

    /// Members of the object that makes up the whole document. Fails when the document is not valid
    /// JSON or not an object.
    static func topLevelMembers(of bytes: UnsafeRawBufferPointer) throws(SyntaxError) -> [Member] {
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        guard scanner.peek() == UInt8(ascii: "{") else {
            throw SyntaxError(
                offset: scanner.position, reason: "the body must be a JSON object", code: bytes.isEmpty ? .unexpectedEnd : .notAnObject)
        }
        let members = try scanner.scanObjectMembers(depth: 1)
        scanner.skipWhitespace()
        guard scanner.position == bytes.count else {
            throw SyntaxError(offset: scanner.position, reason: "unexpected data after the JSON object", code: .trailingData)
        }
        return members
    }

    /// Members of an object found at `range` of a buffer already validated by `topLevelMembers`.
    static func members(ofObjectAt range: Range<Int>, in bytes: UnsafeRawBufferPointer) throws(SyntaxError) -> [Member] {
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[range]))
        var members = try scanner.scanObjectMembers(depth: 1)
        for index in members.indices {
            members[index].range = (members[index].range.lowerBound + range.lowerBound)..<(members[index].range.upperBound + range.lowerBound)
            members[index].keyStart += range.lowerBound
        }
        return members
    }

    /// The elements of an array found at `range` of a buffer already validated by `topLevelMembers`:
    /// each one's kind and byte range.
    static func elements(ofArrayAt range: Range<Int>, in bytes: UnsafeRawBufferPointer) throws(SyntaxError) -> [(kind: ValueKind, range: Range<Int>)] {
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[range]))
        try scanner.expect(UInt8(ascii: "["), "'['")
        var elements: [(kind: ValueKind, range: Range<Int>)] = []
        scanner.skipWhitespace()
        if scanner.peek() == UInt8(ascii: "]") { return elements }
        while true {
            scanner.skipWhitespace()
            let start = scanner.position
            let kind = try scanner.scanValue(depth: 1)
            elements.append((kind, (start + range.lowerBound)..<(scanner.position + range.lowerBound)))
            scanner.skipWhitespace()
            switch scanner.peek() {
            case UInt8(ascii: ","): scanner.position += 1
            case UInt8(ascii: "]"): return elements
            default: throw scanner.error("expected ',' or ']'")
            }
        }
    }

    /// Decodes the JSON string literal at `range` (quotes included), which the scanner has validated.
    static func decodeString(at range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> String {
        let inner = UnsafeRawBufferPointer(rebasing: bytes[(range.lowerBound + 1)..<(range.upperBound - 1)])
        if !inner.contains(UInt8(ascii: "\\")) {
            return String(decoding: inner, as: UTF8.self)
        }
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        func flush() {
            if !utf8.isEmpty {
                scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
                utf8.removeAll(keepingCapacity: true)
            }
        }
        var index = 0
        while index < inner.count {
            let byte = inner[index]
            guard byte == UInt8(ascii: "\\"), index + 1 < inner.count else {
                utf8.append(byte)
                index += 1
                continue
            }
            let escaped = inner[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                flush()
                var value = hexValue(inner, at: index)
                index += 4
                if (0xD800..<0xDC00).contains(value), index + 6 <= inner.count, inner[index] == UInt8(ascii: "\\"),
                    inner[index + 1] == UInt8(ascii: "u")
                {
                    let low = hexValue(inner, at: index + 2)
                    if (0xDC00..<0xE000).contains(low) {
                        value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                        index += 6
                    }
                }
                scalars.append(Unicode.Scalar(value) ?? "\u{FFFD}")
            default: utf8.append(escaped)
            }
        }
        flush()
        return String(scalars)
    }

    private static func hexValue(_ bytes: UnsafeRawBufferPointer, at index: Int) -> UInt32 {
        var value: UInt32 = 0
        for offset in 0..<4 where index + offset < bytes.count {
            value = value << 4 | UInt32(hexDigit(bytes[index + offset]) ?? 0)
        }
        return value
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    // MARK: scanning

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private func error(_ reason: String, _ code: SyntaxError.Code = .unexpectedCharacter) -> SyntaxError {
        SyntaxError(offset: position, reason: reason, code: position >= bytes.count ? .unexpectedEnd : code)
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(SyntaxError) {
        guard peek() == byte else { throw error("expected \(what)") }
        position += 1
    }

    private mutating func scanObjectMembers(depth: Int) throws(SyntaxError) -> [Member] {
        try expect(UInt8(ascii: "{"), "'{'")
        var members: [Member] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
            return members
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let keyStart = position
            try scanString()
            let key = Self.decodeString(at: keyStart..<position, in: bytes)
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':'")
            skipWhitespace()
            let valueStart = position
            let kind = try scanValue(depth: depth)
            members.append(Member(key: key, kind: kind, range: valueStart..<position, keyStart: keyStart))
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                return members
            default: throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func scanValue(depth: Int) throws(SyntaxError) -> ValueKind {
        guard let byte = peek() else { throw error("unexpected end of data") }
        switch byte {
        case UInt8(ascii: "{"):
            guard depth < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels", .tooDeep) }
            try skipContainer(open: UInt8(ascii: "{"), close: UInt8(ascii: "}"), isObject: true, depth: depth + 1)
            return .object
        case UInt8(ascii: "["):
            guard depth < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels", .tooDeep) }
            try skipContainer(open: UInt8(ascii: "["), close: UInt8(ascii: "]"), isObject: false, depth: depth + 1)
            return .array
        case UInt8(ascii: "\""):
            try scanString()
            return .string
        case UInt8(ascii: "t"):
            try scanLiteral("true")
            return .bool
        case UInt8(ascii: "f"):
            try scanLiteral("false")
            return .bool
        case UInt8(ascii: "n"):
            try scanLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try scanNumber()
            return .number
        default:
            throw error("unexpected character")
        }
    }

    private mutating func skipContainer(open: UInt8, close: UInt8, isObject: Bool, depth: Int) throws(SyntaxError) {
        position += 1
        skipWhitespace()
        if peek() == close {
            position += 1
            return
        }
        while true {
            skipWhitespace()
            if isObject {
                guard peek() == UInt8(ascii: "\"") else { throw error("expected a string key") }
                try scanString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':'")
                skipWhitespace()
            }
            _ = try scanValue(depth: depth)
            skipWhitespace()
            guard let next = peek() else { throw error("unexpected end of data") }
            if next == UInt8(ascii: ",") {
                position += 1
            } else if next == close {
                position += 1
                return
            } else {
                throw error(isObject ? "expected ',' or '}'" : "expected ',' or ']'")
            }
        }
    }

    /// Scans a string literal from its opening quote: escapes complete and paired, raw bytes valid
    /// UTF-8 and no control characters.
    private mutating func scanString() throws(SyntaxError) {
        position += 1
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                position += 1
                return
            }
            if byte < 0x20 { throw error("control character in string", .controlCharacter) }
            if byte >= 0x80 {
                try scanMultiByteCharacter()
                continue
            }
            if byte == UInt8(ascii: "\\") {
                guard position + 1 < bytes.count else { throw error("unterminated string", .unexpectedEnd) }
                switch bytes[position + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    position += 2
                case UInt8(ascii: "u"):
                    try scanUnicodeEscape()
                default:
                    throw error("invalid escape", .invalidEscape)
                }
                continue
            }
            position += 1
        }
        throw error("unterminated string", .unexpectedEnd)
    }

    /// Scans `\uXXXX` at `position`, and its low half when it is a high surrogate.
    private mutating func scanUnicodeEscape() throws(SyntaxError) {
        let value = try hexEscape(at: position)
        switch value {
        case 0xD800..<0xDC00:
            position += 6
            guard position + 1 < bytes.count else {
                throw SyntaxError(offset: bytes.count, reason: "unterminated string", code: .unexpectedEnd)
            }
            guard bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                throw error("a high surrogate escape must be followed by a low one", .loneSurrogate)
            }
            let low = try hexEscape(at: position)
            guard (0xDC00..<0xE000).contains(low) else {
                throw error("a high surrogate escape must be followed by a low one", .loneSurrogate)
            }
            position += 6
        case 0xDC00..<0xE000:
            throw error("a low surrogate escape without a high one before it", .loneSurrogate)
        default:
            position += 6
        }
    }

    /// The value of the `\uXXXX` escape starting at `start` (its backslash).
    private func hexEscape(at start: Int) throws(SyntaxError) -> UInt32 {
        var value: UInt32 = 0
        for offset in 2..<6 {
            guard start + offset < bytes.count else {
                throw SyntaxError(offset: bytes.count, reason: "unterminated \\u escape", code: .unexpectedEnd)
            }
            guard let digit = Self.hexDigit(bytes[start + offset]) else {
                throw SyntaxError(offset: start + offset, reason: "invalid \\u escape", code: .invalidEscape)
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// Scans one UTF-8 sequence of two to four bytes (RFC 3629: no overlong forms, no surrogates,
    /// nothing above U+10FFFF).
    private mutating func scanMultiByteCharacter() throws(SyntaxError) {
        let lead = bytes[position]
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; secondRange = 0x80...0x9F
        case 0xF0: length = 4; secondRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; secondRange = 0x80...0x8F
        default: throw error("invalid UTF-8 in string", .invalidUTF8)
        }
        for offset in 1..<length {
            guard position + offset < bytes.count else {
                throw SyntaxError(offset: bytes.count, reason: "unterminated string", code: .unexpectedEnd)
            }
            let byte = bytes[position + offset]
            guard offset == 1 ? secondRange.contains(byte) : (0x80...0xBF).contains(byte) else {
                throw SyntaxError(offset: position, reason: "invalid UTF-8 in string", code: .invalidUTF8)
            }
        }
        position += length
    }

    private mutating func scanLiteral(_ literal: StaticString) throws(SyntaxError) {
        let count = literal.utf8CodeUnitCount
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count {
            guard position + offset < bytes.count else { throw SyntaxError(offset: bytes.count, reason: "unexpected end of data", code: .unexpectedEnd) }
            guard bytes[position + offset] == expected[offset] else { throw error("invalid literal", .invalidLiteral) }
        }
        position += count
    }

    /// Scans a number. One too large for a double (`1e400`, four hundred digits) is refused: JSON
    /// leaves the range to implementations, and engines' parsers read it as infinity or refuse it.
    private mutating func scanNumber() throws(SyntaxError) {
        let start = position
        try scanNumberSyntax()
        if position - start > 15 || bytes[start..<position].contains(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            guard let value = Double(text), value.isFinite else {
                throw SyntaxError(offset: start, reason: "number out of range", code: .invalidNumber)
            }
        }
    }

    private mutating func scanNumberSyntax() throws(SyntaxError) {
        if peek() == UInt8(ascii: "-") { position += 1 }
        guard let first = peek(), Self.isDigit(first) else { throw error("invalid number", .invalidNumber) }
        if first == UInt8(ascii: "0") {
            position += 1
        } else {
            while let byte = peek(), Self.isDigit(byte) { position += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            position += 1
            guard let byte = peek(), Self.isDigit(byte) else { throw error("invalid number", .invalidNumber) }
            while let byte = peek(), Self.isDigit(byte) { position += 1 }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            guard let byte = peek(), Self.isDigit(byte) else { throw error("invalid number", .invalidNumber) }
            while let byte = peek(), Self.isDigit(byte) { position += 1 }
        }
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}

extension JSONScanner {
    /// The value range of the last member named `key` (JSON takes the last of duplicates).
    static func member(_ key: String, in members: [Member]) -> Member? {
        members.last { $0.key == key }
    }

    /// True when the array or object at `range` has no elements.
    static func isEmptyContainer(at range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Bool {
        var index = range.lowerBound + 1
        while index < range.upperBound - 1 {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return false
            }
        }
        return true
    }

    /// Reads an integer literal at `range`; nil when the number has a fraction or does not fit.
    static func integer(at range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Int? {
        Int(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self))
    }

    /// The JSON string literal for `text`, quotes included.
    static func quoted(_ text: String) -> String {
        var result = "\""
        result.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case let s where s.value < 0x20:
                let hex = String(s.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        result += "\""
        return result
    }
}
