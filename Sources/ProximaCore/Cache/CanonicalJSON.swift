/// One byte form for every JSON document that means the same thing, so that the cache's exact tier
/// and the router's prefix hashing see two requests as equal whatever their key order, whitespace or
/// escapes.
///
/// The parser is a complete RFC 8259 parser (any value at the top level, UTF-8 checked, nesting
/// bounded by `depthLimit`). The canonical form it writes:
/// - no insignificant whitespace;
/// - object members sorted by the UTF-8 bytes of their unescaped keys; a key given twice keeps its
///   last value, as Python's `json` module (which the engines use) reads it;
/// - strings unescaped then escaped again minimally: only `"`, `\` and the control characters below
///   U+0020 are escaped (`\b \f \n \r \t`, else `\u00XX`), so `"\u0041"` and `"A"` are one form; a
///   lone or reversed UTF-16 surrogate escape is an error;
/// - numbers: an integer literal stays as written (`-0` becomes `0`); a number with a fraction or
///   exponent becomes the shortest text that reads back as the same `Double`, and an integral value
///   within ±2^53 is written as an integer, so `1`, `1.0` and `1e0` are one form. A number whose
///   `Double` overflows is an error.
public enum CanonicalJSON {
    /// Nesting allowed by default: far beyond any real request, small enough for the stack.
    public static let defaultDepthLimit = 64

    /// Why a document was refused, and at which byte of the input.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public enum Reason: Sendable, Equatable {
            case unexpectedEnd
            case unexpectedByte(UInt8)
            case invalidUTF8
            case controlCharacterInString
            case invalidEscape
            case invalidSurrogate
            case invalidNumber
            case numberOutOfRange
            case tooDeep(limit: Int)
            case trailingContent
            /// A request body that is valid JSON but not an object.
            case notAnObject
        }

        public let reason: Reason
        /// Offset in the input of the byte where the problem was found.
        public let offset: Int

        public init(_ reason: Reason, at offset: Int) {
            self.reason = reason
            self.offset = offset
        }

        public var description: String {
            let what: String = switch reason {
            case .unexpectedEnd: "the document ends too early"
            case .unexpectedByte(let byte): "unexpected byte 0x\(String(byte, radix: 16))"
            case .invalidUTF8: "invalid UTF-8"
            case .controlCharacterInString: "unescaped control character in a string"
            case .invalidEscape: "invalid escape sequence"
            case .invalidSurrogate: "unpaired UTF-16 surrogate escape"
            case .invalidNumber: "invalid number"
            case .numberOutOfRange: "number out of the range of a double"
            case .tooDeep(let limit): "nested deeper than \(limit) levels"
            case .trailingContent: "content after the JSON value"
            case .notAnObject: "the body is not a JSON object"
            }
            return "invalid JSON: \(what) at byte \(offset)"
        }
    }

    /// Parses `bytes` into a value tree already in canonical form (members sorted and deduplicated,
    /// numbers rewritten).
    public static func parse(_ bytes: UnsafeRawBufferPointer, depthLimit: Int = defaultDepthLimit) throws(Failure) -> JSONValue {
        var parser = Parser(bytes: bytes, depthLimit: depthLimit)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw Failure(.trailingContent, at: parser.position) }
        return value
    }

    /// The canonical bytes of the document in `bytes`.
    public static func canonicalize(_ bytes: UnsafeRawBufferPointer, depthLimit: Int = defaultDepthLimit) throws(Failure) -> [UInt8] {
        let value = try parse(bytes, depthLimit: depthLimit)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        value.appendCanonical(to: &output)
        return output
    }

    /// The canonical bytes of a document given as bytes.
    public static func canonicalize(_ bytes: [UInt8], depthLimit: Int = defaultDepthLimit) throws(Failure) -> [UInt8] {
        try bytes.withUnsafeBytes { buffer in
            Result { () throws(Failure) in try canonicalize(buffer, depthLimit: depthLimit) }
        }.get()
    }

    /// The canonical text of a number literal that the grammar has already accepted.
    static func canonicalNumber(_ literal: UnsafeRawBufferPointer, isInteger: Bool, offset: Int) throws(Failure) -> String {
        if isInteger {
            if literal.count == 2 && literal[0] == UInt8(ascii: "-") && literal[1] == UInt8(ascii: "0") { return "0" }
            return String(decoding: literal, as: UTF8.self)
        }
        guard let value = Double(String(decoding: literal, as: UTF8.self)), value.isFinite else {
            throw Failure(.numberOutOfRange, at: offset)
        }
        return canonicalText(of: value)
    }

    /// The canonical text of a finite `Double`: an integer when integral within ±2^53, else Swift's
    /// shortest round-trip form (`1.5`, `1e-05`, `1e+20`), which is valid JSON.
    public static func canonicalText(of value: Double) -> String {
        if value == value.rounded(.towardZero) && abs(value) <= 9_007_199_254_740_992 {
            return String(Int64(value))
        }
        return value.description
    }
}

extension CanonicalJSON {
    struct Parser {
        let bytes: UnsafeRawBufferPointer
        let depthLimit: Int
        var position = 0

        init(bytes: UnsafeRawBufferPointer, depthLimit: Int) {
            self.bytes = bytes
            self.depthLimit = depthLimit
        }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        func peek() throws(Failure) -> UInt8 {
            guard position < bytes.count else { throw Failure(.unexpectedEnd, at: position) }
            return bytes[position]
        }

        mutating func expect(_ literal: StaticString) throws(Failure) {
            let text = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
            for byte in text {
                let found = try peek()
                guard found == byte else { throw Failure(.unexpectedByte(found), at: position) }
                position += 1
            }
        }

        mutating func parseValue(depth: Int) throws(Failure) -> JSONValue {
            switch try peek() {
            case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
            case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            case let byte: throw Failure(.unexpectedByte(byte), at: position)
            }
        }

        mutating func parseObject(depth: Int) throws(Failure) -> JSONValue {
            guard depth <= depthLimit else { throw Failure(.tooDeep(limit: depthLimit), at: position) }
            position += 1
            var members: [JSONValue.Member] = []
            skipWhitespace()
            if try peek() == UInt8(ascii: "}") {
                position += 1
                return .object([])
            }
            while true {
                skipWhitespace()
                let found = try peek()
                guard found == UInt8(ascii: "\"") else { throw Failure(.unexpectedByte(found), at: position) }
                let key = try parseString()
                skipWhitespace()
                try expect(":")
                skipWhitespace()
                let value = try parseValue(depth: depth)
                members.append(JSONValue.Member(key: key, value: value))
                skipWhitespace()
                let next = try peek()
                position += 1
                if next == UInt8(ascii: "}") { break }
                guard next == UInt8(ascii: ",") else { throw Failure(.unexpectedByte(next), at: position - 1) }
            }
            return .object(JSONValue.sortedMembers(members))
        }

        mutating func parseArray(depth: Int) throws(Failure) -> JSONValue {
            guard depth <= depthLimit else { throw Failure(.tooDeep(limit: depthLimit), at: position) }
            position += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if try peek() == UInt8(ascii: "]") {
                position += 1
                return .array([])
            }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth))
                skipWhitespace()
                let next = try peek()
                position += 1
                if next == UInt8(ascii: "]") { break }
                guard next == UInt8(ascii: ",") else { throw Failure(.unexpectedByte(next), at: position - 1) }
            }
            return .array(elements)
        }

        mutating func parseNumber() throws(Failure) -> String {
            let start = position
            var isInteger = true
            if bytes[position] == UInt8(ascii: "-") { position += 1 }
            func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
            guard position < bytes.count, isDigit(bytes[position]) else {
                throw Failure(position < bytes.count ? .invalidNumber : .unexpectedEnd, at: position)
            }
            if bytes[position] == UInt8(ascii: "0") {
                position += 1
            } else {
                while position < bytes.count && isDigit(bytes[position]) { position += 1 }
            }
            if position < bytes.count && bytes[position] == UInt8(ascii: ".") {
                isInteger = false
                position += 1
                guard position < bytes.count, isDigit(bytes[position]) else {
                    throw Failure(position < bytes.count ? .invalidNumber : .unexpectedEnd, at: position)
                }
                while position < bytes.count && isDigit(bytes[position]) { position += 1 }
            }
            if position < bytes.count && (bytes[position] | 0x20) == UInt8(ascii: "e") {
                isInteger = false
                position += 1
                if position < bytes.count && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-")) { position += 1 }
                guard position < bytes.count, isDigit(bytes[position]) else {
                    throw Failure(position < bytes.count ? .invalidNumber : .unexpectedEnd, at: position)
                }
                while position < bytes.count && isDigit(bytes[position]) { position += 1 }
            }
            let literal = UnsafeRawBufferPointer(rebasing: bytes[start..<position])
            return try CanonicalJSON.canonicalNumber(literal, isInteger: isInteger, offset: start)
        }

        mutating func parseHex4() throws(Failure) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = try peek()
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw Failure(.invalidEscape, at: position)
                }
                value = value << 4 | UInt32(digit)
                position += 1
            }
            return value
        }

        /// Reads a string (the cursor is on its opening quote) and returns it unescaped.
        mutating func parseString() throws(Failure) -> String {
            position += 1
            let start = position
            // Fast path: no escapes, all ASCII printable.
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
                    position += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") || byte < 0x20 || byte >= 0x80 { break }
                position += 1
            }
            var unescaped = Array(bytes[start..<position])
            while true {
                let byte = try peek()
                switch byte {
                case UInt8(ascii: "\""):
                    position += 1
                    return String(decoding: unescaped, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    let escapeStart = position
                    position += 1
                    let kind = try peek()
                    position += 1
                    switch kind {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): unescaped.append(kind)
                    case UInt8(ascii: "b"): unescaped.append(0x08)
                    case UInt8(ascii: "f"): unescaped.append(0x0C)
                    case UInt8(ascii: "n"): unescaped.append(0x0A)
                    case UInt8(ascii: "r"): unescaped.append(0x0D)
                    case UInt8(ascii: "t"): unescaped.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try parseHex4()
                        if (0xDC00...0xDFFF).contains(scalar) { throw Failure(.invalidSurrogate, at: escapeStart) }
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                                throw Failure(.invalidSurrogate, at: escapeStart)
                            }
                            position += 2
                            let low = try parseHex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw Failure(.invalidSurrogate, at: escapeStart) }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        appendUTF8(scalar, to: &unescaped)
                    default:
                        throw Failure(.invalidEscape, at: escapeStart)
                    }
                case 0..<0x20:
                    throw Failure(.controlCharacterInString, at: position)
                case 0..<0x80:
                    unescaped.append(byte)
                    position += 1
                default:
                    let length = try validateUTF8Sequence()
                    unescaped.append(contentsOf: bytes[position..<position + length])
                    position += length
                }
            }
        }

        /// The length of the valid UTF-8 sequence at the cursor (RFC 3629: no overlong forms, no
        /// surrogates, nothing above U+10FFFF).
        func validateUTF8Sequence() throws(Failure) -> Int {
            let lead = bytes[position]
            let length: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: throw Failure(.invalidUTF8, at: position)
            }
            guard position + length <= bytes.count else {
                // A truncated sequence at the end: invalid whether or not more was meant to follow.
                throw Failure(.invalidUTF8, at: position)
            }
            let second = bytes[position + 1]
            guard second >= low && second <= high else { throw Failure(.invalidUTF8, at: position) }
            for index in 2..<length where bytes[position + index] & 0xC0 != 0x80 {
                throw Failure(.invalidUTF8, at: position)
            }
            return length
        }

        func appendUTF8(_ scalar: UInt32, to output: inout [UInt8]) {
            switch scalar {
            case 0..<0x80:
                output.append(UInt8(scalar))
            case 0x80..<0x800:
                output.append(UInt8(0xC0 | scalar >> 6))
                output.append(UInt8(0x80 | scalar & 0x3F))
            case 0x800..<0x10000:
                output.append(UInt8(0xE0 | scalar >> 12))
                output.append(UInt8(0x80 | scalar >> 6 & 0x3F))
                output.append(UInt8(0x80 | scalar & 0x3F))
            default:
                output.append(UInt8(0xF0 | scalar >> 18))
                output.append(UInt8(0x80 | scalar >> 12 & 0x3F))
                output.append(UInt8(0x80 | scalar >> 6 & 0x3F))
                output.append(UInt8(0x80 | scalar & 0x3F))
            }
        }
    }
}
