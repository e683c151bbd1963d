/// The part of Structured Field Values for HTTP (RFC 8941) that HTTP Message Signatures need: the
/// `Signature-Input` and `Signature` fields are dictionaries whose members are inner lists or items
/// with parameters. The parser is strict (anything RFC 8941 refuses is refused) and total (every
/// input ends in a value or a ``StructuredFieldError``), and bounded: a field longer than
/// ``StructuredFields/maximumFieldBytes``, a dictionary of more than
/// ``StructuredFields/maximumMembers`` members, or an inner list or parameter set beyond its limit
/// is refused rather than parsed.
public enum StructuredFields {
    /// Longest field value parsed (bytes).
    public static let maximumFieldBytes = 8_192
    /// Most dictionary members (signature labels) in one field.
    public static let maximumMembers = 8
    /// Most items in one inner list (covered components).
    public static let maximumInnerListItems = 64
    /// Most parameters on one item or inner list.
    public static let maximumParameters = 32

    /// Parses a dictionary field value (`sig1=("@authority");created=1, sig2=:AAAA:`).
    public static func parseDictionary(_ text: some StringProtocol) throws(StructuredFieldError) -> StructuredFieldDictionary {
        guard text.utf8.count <= maximumFieldBytes else { throw StructuredFieldError(.tooLong) }
        var parser = StructuredFieldParser(Array(text.utf8))
        return try parser.parseWholeDictionary()
    }

    /// Parses an item field value (`"https://agent.example"`, `42`, `token;a=1`).
    public static func parseItem(_ text: some StringProtocol) throws(StructuredFieldError) -> StructuredFieldItem {
        guard text.utf8.count <= maximumFieldBytes else { throw StructuredFieldError(.tooLong) }
        var parser = StructuredFieldParser(Array(text.utf8))
        return try parser.parseWholeItem()
    }
}

/// Why a structured field was refused.
public struct StructuredFieldError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case tooLong = "too_long"
        case tooManyMembers = "too_many_members"
        case tooManyItems = "too_many_items"
        case tooManyParameters = "too_many_parameters"
        case invalidKey = "invalid_key"
        case invalidItem = "invalid_item"
        case invalidInteger = "invalid_integer"
        case invalidString = "invalid_string"
        case invalidByteSequence = "invalid_byte_sequence"
        case invalidInnerList = "invalid_inner_list"
        case unexpectedCharacter = "unexpected_character"
        case trailingCharacters = "trailing_characters"
        case empty
    }

    public let code: Code

    public init(_ code: Code) { self.code = code }

    public var description: String { "invalid structured field: \(code.rawValue)" }
}

/// A bare item (RFC 8941 section 3.3).
public enum StructuredFieldBareItem: Equatable, Sendable {
    case integer(Int64)
    /// A decimal in thousandths (RFC 8941 decimals have at most three fractional digits), so that
    /// it serializes back exactly.
    case decimal(thousandths: Int64)
    case string(String)
    case token(String)
    case byteSequence([UInt8])
    case boolean(Bool)

    public var string: String? { if case .string(let value) = self { value } else { nil } }
    public var integer: Int64? { if case .integer(let value) = self { value } else { nil } }
    public var byteSequence: [UInt8]? { if case .byteSequence(let value) = self { value } else { nil } }
}

/// Parameters in their order; a key appears once (a repeated key keeps its first place and its last
/// value, as RFC 8941 says).
public struct StructuredFieldParameters: Equatable, Sendable {
    public struct Parameter: Equatable, Sendable {
        public var key: String
        public var value: StructuredFieldBareItem
    }

    public var parameters: [Parameter] = []

    public init(_ parameters: [Parameter] = []) { self.parameters = parameters }

    public subscript(key: String) -> StructuredFieldBareItem? {
        parameters.first(where: { $0.key == key })?.value
    }

    public var isEmpty: Bool { parameters.isEmpty }

    mutating func set(_ key: String, _ value: StructuredFieldBareItem) {
        if let index = parameters.firstIndex(where: { $0.key == key }) {
            parameters[index].value = value
        } else {
            parameters.append(Parameter(key: key, value: value))
        }
    }
}

/// An item with its parameters.
public struct StructuredFieldItem: Equatable, Sendable {
    public var value: StructuredFieldBareItem
    public var parameters: StructuredFieldParameters

    public init(_ value: StructuredFieldBareItem, parameters: StructuredFieldParameters = .init()) {
        self.value = value
        self.parameters = parameters
    }
}

/// An inner list with its parameters (`("@authority" "signature-agent");created=1`).
public struct StructuredFieldInnerList: Equatable, Sendable {
    public var items: [StructuredFieldItem]
    public var parameters: StructuredFieldParameters

    public init(_ items: [StructuredFieldItem], parameters: StructuredFieldParameters = .init()) {
        self.items = items
        self.parameters = parameters
    }
}

/// A dictionary member's value.
public enum StructuredFieldMember: Equatable, Sendable {
    case item(StructuredFieldItem)
    case innerList(StructuredFieldInnerList)
}

/// A dictionary in member order; a key appears once (the last value wins, in the first place).
public struct StructuredFieldDictionary: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var key: String
        public var member: StructuredFieldMember
    }

    public var entries: [Entry] = []

    public subscript(key: String) -> StructuredFieldMember? {
        entries.first(where: { $0.key == key })?.member
    }
}

// MARK: - Serialization (RFC 8941 section 4.1), as the signature base needs it

extension StructuredFieldBareItem {
    func serialize(into output: inout String) {
        switch self {
        case .integer(let value):
            output += String(value)
        case .decimal(let thousandths):
            if thousandths < 0 { output += "-" }
            let magnitude = thousandths.magnitude
            output += String(magnitude / 1_000)
            output += "."
            var fraction = String(magnitude % 1_000)
            while fraction.utf8.count < 3 { fraction = "0" + fraction }
            while fraction.utf8.count > 1, fraction.hasSuffix("0") { fraction.removeLast() }
            output += fraction
        case .string(let value):
            output += "\""
            for scalar in value.unicodeScalars {
                if scalar == "\"" || scalar == "\\" { output += "\\" }
                output.unicodeScalars.append(scalar)
            }
            output += "\""
        case .token(let value):
            output += value
        case .byteSequence(let bytes):
            output += ":" + Base64.encode(bytes) + ":"
        case .boolean(let value):
            output += value ? "?1" : "?0"
        }
    }
}

extension StructuredFieldParameters {
    func serialize(into output: inout String) {
        for parameter in parameters {
            output += ";" + parameter.key
            if parameter.value != .boolean(true) {
                output += "="
                parameter.value.serialize(into: &output)
            }
        }
    }
}

extension StructuredFieldItem {
    func serialize(into output: inout String) {
        value.serialize(into: &output)
        parameters.serialize(into: &output)
    }
}

extension StructuredFieldInnerList {
    /// The canonical text of the inner list and its parameters (what `@signature-params` covers).
    public var serialized: String {
        var output = "("
        for (index, item) in items.enumerated() {
            if index > 0 { output += " " }
            item.serialize(into: &output)
        }
        output += ")"
        parameters.serialize(into: &output)
        return output
    }
}

// MARK: - Parsing (RFC 8941 section 4.2)

struct StructuredFieldParser {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipSpaces() {
        while current == UInt8(ascii: " ") { position += 1 }
    }

    private mutating func skipOptionalWhitespace() {
        while current == UInt8(ascii: " ") || current == UInt8(ascii: "\t") { position += 1 }
    }

    mutating func parseWholeDictionary() throws(StructuredFieldError) -> StructuredFieldDictionary {
        skipSpaces()
        guard current != nil else { throw StructuredFieldError(.empty) }
        var dictionary = StructuredFieldDictionary()
        while current != nil {
            let key = try parseKey()
            let member: StructuredFieldMember
            if current == UInt8(ascii: "=") {
                position += 1
                member = try parseItemOrInnerList()
            } else {
                member = .item(StructuredFieldItem(.boolean(true), parameters: try parseParameters()))
            }
            if let index = dictionary.entries.firstIndex(where: { $0.key == key }) {
                dictionary.entries[index].member = member
            } else {
                guard dictionary.entries.count < StructuredFields.maximumMembers else {
                    throw StructuredFieldError(.tooManyMembers)
                }
                dictionary.entries.append(.init(key: key, member: member))
            }
            skipOptionalWhitespace()
            guard let next = current else { break }
            guard next == UInt8(ascii: ",") else { throw StructuredFieldError(.unexpectedCharacter) }
            position += 1
            skipOptionalWhitespace()
            guard current != nil else { throw StructuredFieldError(.trailingCharacters) }
        }
        return dictionary
    }

    mutating func parseWholeItem() throws(StructuredFieldError) -> StructuredFieldItem {
        skipSpaces()
        guard current != nil else { throw StructuredFieldError(.empty) }
        let item = try parseItem()
        skipSpaces()
        guard current == nil else { throw StructuredFieldError(.trailingCharacters) }
        return item
    }

    private mutating func parseItemOrInnerList() throws(StructuredFieldError) -> StructuredFieldMember {
        if current == UInt8(ascii: "(") { return .innerList(try parseInnerList()) }
        return .item(try parseItem())
    }

    private mutating func parseInnerList() throws(StructuredFieldError) -> StructuredFieldInnerList {
        position += 1  // "("
        var items: [StructuredFieldItem] = []
        while true {
            skipSpaces()
            guard let next = current else { throw StructuredFieldError(.invalidInnerList) }
            if next == UInt8(ascii: ")") {
                position += 1
                return StructuredFieldInnerList(items, parameters: try parseParameters())
            }
            guard items.count < StructuredFields.maximumInnerListItems else { throw StructuredFieldError(.tooManyItems) }
            items.append(try parseItem())
            guard let after = current, after == UInt8(ascii: " ") || after == UInt8(ascii: ")") else {
                throw StructuredFieldError(.invalidInnerList)
            }
        }
    }

    private mutating func parseItem() throws(StructuredFieldError) -> StructuredFieldItem {
        let value = try parseBareItem()
        return StructuredFieldItem(value, parameters: try parseParameters())
    }

    private mutating func parseParameters() throws(StructuredFieldError) -> StructuredFieldParameters {
        var parameters = StructuredFieldParameters()
        while current == UInt8(ascii: ";") {
            position += 1
            skipSpaces()
            let key = try parseKey()
            var value = StructuredFieldBareItem.boolean(true)
            if current == UInt8(ascii: "=") {
                position += 1
                value = try parseBareItem()
            }
            if parameters[key] == nil, parameters.parameters.count >= StructuredFields.maximumParameters {
                throw StructuredFieldError(.tooManyParameters)
            }
            parameters.set(key, value)
        }
        return parameters
    }

    private mutating func parseKey() throws(StructuredFieldError) -> String {
        guard let first = current, Self.isLowercaseLetter(first) || first == UInt8(ascii: "*") else {
            throw StructuredFieldError(.invalidKey)
        }
        let start = position
        position += 1
        while let byte = current,
            Self.isLowercaseLetter(byte) || Self.isDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "*")
        {
            position += 1
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    private mutating func parseBareItem() throws(StructuredFieldError) -> StructuredFieldBareItem {
        guard let first = current else { throw StructuredFieldError(.invalidItem) }
        switch first {
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        case UInt8(ascii: "\""): return try parseString()
        case UInt8(ascii: ":"): return try parseByteSequence()
        case UInt8(ascii: "?"): return try parseBoolean()
        case UInt8(ascii: "*"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"): return parseToken()
        default: throw StructuredFieldError(.invalidItem)
        }
    }

    private mutating func parseNumber() throws(StructuredFieldError) -> StructuredFieldBareItem {
        var negative = false
        if current == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        var integerPart: Int64 = 0
        var integerDigits = 0
        while let byte = current, Self.isDigit(byte) {
            integerDigits += 1
            guard integerDigits <= 15 else { throw StructuredFieldError(.invalidInteger) }
            integerPart = integerPart * 10 + Int64(byte - UInt8(ascii: "0"))
            position += 1
        }
        guard integerDigits > 0 else { throw StructuredFieldError(.invalidInteger) }
        guard current == UInt8(ascii: ".") else { return .integer(negative ? -integerPart : integerPart) }
        // A decimal: at most 12 integer digits and 1 to 3 fractional ones.
        guard integerDigits <= 12 else { throw StructuredFieldError(.invalidInteger) }
        position += 1
        var fraction: Int64 = 0
        var fractionDigits = 0
        while let byte = current, Self.isDigit(byte) {
            fractionDigits += 1
            guard fractionDigits <= 3 else { throw StructuredFieldError(.invalidInteger) }
            fraction = fraction * 10 + Int64(byte - UInt8(ascii: "0"))
            position += 1
        }
        guard fractionDigits > 0 else { throw StructuredFieldError(.invalidInteger) }
        for _ in fractionDigits..<3 { fraction *= 10 }
        let thousandths = integerPart * 1_000 + fraction
        return .decimal(thousandths: negative ? -thousandths : thousandths)
    }

    private mutating func parseString() throws(StructuredFieldError) -> StructuredFieldBareItem {
        position += 1  // opening quote
        var scalars = String.UnicodeScalarView()
        while let byte = current {
            position += 1
            switch byte {
            case UInt8(ascii: "\\"):
                guard let escaped = current, escaped == UInt8(ascii: "\"") || escaped == UInt8(ascii: "\\") else {
                    throw StructuredFieldError(.invalidString)
                }
                position += 1
                scalars.append(Unicode.Scalar(escaped))
            case UInt8(ascii: "\""):
                return .string(String(scalars))
            case 0x20...0x7E:
                scalars.append(Unicode.Scalar(byte))
            default:
                throw StructuredFieldError(.invalidString)
            }
        }
        throw StructuredFieldError(.invalidString)
    }

    private mutating func parseToken() -> StructuredFieldBareItem {
        let start = position
        position += 1
        while let byte = current, Self.isTokenCharacter(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "/") {
            position += 1
        }
        return .token(String(decoding: bytes[start..<position], as: UTF8.self))
    }

    private mutating func parseByteSequence() throws(StructuredFieldError) -> StructuredFieldBareItem {
        position += 1  // opening colon
        let start = position
        while let byte = current, byte != UInt8(ascii: ":") {
            guard Base64.isStandardAlphabet(byte) || byte == UInt8(ascii: "=") else {
                throw StructuredFieldError(.invalidByteSequence)
            }
            position += 1
        }
        guard current == UInt8(ascii: ":") else { throw StructuredFieldError(.invalidByteSequence) }
        let end = position
        position += 1
        guard let decoded = Base64.decode(bytes[start..<end], urlSafe: false) else {
            throw StructuredFieldError(.invalidByteSequence)
        }
        return .byteSequence(decoded)
    }

    private mutating func parseBoolean() throws(StructuredFieldError) -> StructuredFieldBareItem {
        position += 1  // "?"
        switch current {
        case UInt8(ascii: "1"):
            position += 1
            return .boolean(true)
        case UInt8(ascii: "0"):
            position += 1
            return .boolean(false)
        default:
            throw StructuredFieldError(.invalidItem)
        }
    }

    private static func isLowercaseLetter(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// `tchar` of RFC 9110.
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default: false
        }
    }
}
