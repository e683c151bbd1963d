import ProximaCore

/// A DNS message in wire format (RFC 1035, section 4): the header, questions and answers the
/// crawler check needs (PTR, A, AAAA, CNAME; other records are kept as opaque data). Decoding is
/// strict and total: any bytes give a message or a ``DNSMessage/DecodingError``, in time linear in the
/// input (compression pointers must point backwards, names are at most 255 bytes). Authority and
/// additional records are skipped.
public struct DNSMessage: Sendable, Equatable {
    public var id: UInt16
    public var isResponse: Bool
    public var opcode: UInt8
    public var isAuthoritative: Bool
    public var isTruncated: Bool
    public var recursionDesired: Bool
    public var recursionAvailable: Bool
    public var responseCode: ResponseCode
    public var questions: [Question]
    public var answers: [Record]

    public init(
        id: UInt16, isResponse: Bool = false, opcode: UInt8 = 0, isAuthoritative: Bool = false, isTruncated: Bool = false,
        recursionDesired: Bool = true, recursionAvailable: Bool = false, responseCode: ResponseCode = .noError, questions: [Question] = [],
        answers: [Record] = []
    ) {
        self.id = id
        self.isResponse = isResponse
        self.opcode = opcode
        self.isAuthoritative = isAuthoritative
        self.isTruncated = isTruncated
        self.recursionDesired = recursionDesired
        self.recursionAvailable = recursionAvailable
        self.responseCode = responseCode
        self.questions = questions
        self.answers = answers
    }

    /// A query for one name and type, recursion desired.
    public static func query(id: UInt16, name: String, type: RecordType) -> DNSMessage {
        DNSMessage(id: id, questions: [Question(name: name, type: type)])
    }

    public struct ResponseCode: RawRepresentable, Sendable, Equatable, Hashable, CustomStringConvertible {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }
        public static let noError = ResponseCode(rawValue: 0)
        public static let formatError = ResponseCode(rawValue: 1)
        public static let serverFailure = ResponseCode(rawValue: 2)
        public static let nameError = ResponseCode(rawValue: 3)
        public static let notImplemented = ResponseCode(rawValue: 4)
        public static let refused = ResponseCode(rawValue: 5)

        public var description: String {
            switch rawValue {
            case 0: "NOERROR"
            case 1: "FORMERR"
            case 2: "SERVFAIL"
            case 3: "NXDOMAIN"
            case 4: "NOTIMP"
            case 5: "REFUSED"
            default: "RCODE\(rawValue)"
            }
        }
    }

    public struct RecordType: RawRepresentable, Sendable, Equatable, Hashable {
        public var rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        public static let a = RecordType(rawValue: 1)
        public static let cname = RecordType(rawValue: 5)
        public static let ptr = RecordType(rawValue: 12)
        public static let aaaa = RecordType(rawValue: 28)
    }

    public struct Question: Sendable, Equatable {
        /// Dotted, without the final dot; labels with bytes other than letters, digits, `-` and `_`
        /// are escaped as `\DDD` (a dot inside a label as `\.`), so that a name reads one way only.
        public var name: String
        public var type: RecordType
        /// 1 (IN).
        public var recordClass: UInt16

        public init(name: String, type: RecordType, recordClass: UInt16 = 1) {
            self.name = name
            self.type = type
            self.recordClass = recordClass
        }
    }

    public struct Record: Sendable, Equatable {
        public enum Data: Sendable, Equatable {
            case address(IPAddress)
            /// PTR or CNAME target.
            case name(String)
            case other([UInt8])
        }

        public var name: String
        public var type: RecordType
        public var recordClass: UInt16
        /// Seconds; the top bit set is read as 0 (RFC 2181, 8).
        public var ttl: UInt32
        public var data: Data

        public init(name: String, type: RecordType, recordClass: UInt16 = 1, ttl: UInt32, data: Data) {
            self.name = name
            self.type = type
            self.recordClass = recordClass
            self.ttl = ttl
            self.data = data
        }
    }

    public enum DecodingError: Error, Equatable, Sendable {
        case truncated
        case badName
        case badPointer
        case badRecordData
        case trailingBytes
    }

    public enum EncodingError: Error, Equatable, Sendable {
        case badName(String)
        case badRecordData
    }

    /// Largest message read or written (a UDP datagram's payload).
    public static let maximumLength = 65_535
    /// Longest name in wire format (RFC 1035, 3.1).
    public static let maximumNameLength = 255
}

// MARK: Encoding

extension DNSMessage {
    /// The message in wire format; names in answers are compressed against earlier names.
    public func encoded() throws(EncodingError) -> [UInt8] {
        var writer = Writer()
        writer.u16(id)
        var flags: UInt16 = isResponse ? 0x8000 : 0
        flags |= UInt16(opcode & 0x0F) << 11
        if isAuthoritative { flags |= 0x0400 }
        if isTruncated { flags |= 0x0200 }
        if recursionDesired { flags |= 0x0100 }
        if recursionAvailable { flags |= 0x0080 }
        flags |= UInt16(responseCode.rawValue & 0x0F)
        writer.u16(flags)
        guard questions.count <= Int(UInt16.max), answers.count <= Int(UInt16.max) else { throw .badRecordData }
        writer.u16(UInt16(questions.count))
        writer.u16(UInt16(answers.count))
        writer.u16(0)
        writer.u16(0)
        for question in questions {
            try writer.name(question.name)
            writer.u16(question.type.rawValue)
            writer.u16(question.recordClass)
        }
        for record in answers {
            try writer.name(record.name)
            writer.u16(record.type.rawValue)
            writer.u16(record.recordClass)
            writer.u32(record.ttl)
            let lengthAt = writer.bytes.count
            writer.u16(0)
            switch record.data {
            case .address(let address):
                if record.type == .a {
                    guard address.isIPv4 else { throw .badRecordData }
                    writer.u32(UInt32(truncatingIfNeeded: address.low))
                } else {
                    writer.u32(UInt32(truncatingIfNeeded: address.high >> 32))
                    writer.u32(UInt32(truncatingIfNeeded: address.high))
                    writer.u32(UInt32(truncatingIfNeeded: address.low >> 32))
                    writer.u32(UInt32(truncatingIfNeeded: address.low))
                }
            case .name(let name):
                try writer.name(name)
            case .other(let bytes):
                writer.bytes += bytes
            }
            let length = writer.bytes.count - lengthAt - 2
            guard length <= Int(UInt16.max) else { throw .badRecordData }
            writer.bytes[lengthAt] = UInt8(length >> 8)
            writer.bytes[lengthAt + 1] = UInt8(length & 0xFF)
        }
        guard writer.bytes.count <= Self.maximumLength else { throw .badRecordData }
        return writer.bytes
    }

    private struct Writer {
        var bytes: [UInt8] = []
        /// Offsets of names written so far, by their lowercased dotted suffix, for compression.
        var offsets: [String: Int] = [:]

        mutating func u16(_ value: UInt16) {
            bytes.append(UInt8(value >> 8))
            bytes.append(UInt8(value & 0xFF))
        }

        mutating func u32(_ value: UInt32) {
            u16(UInt16(value >> 16))
            u16(UInt16(value & 0xFFFF))
        }

        mutating func name(_ name: String) throws(EncodingError) {
            let labels = try DNSMessage.labels(of: name)
            for index in labels.indices {
                let suffix = labels[index...].map { String(decoding: $0, as: UTF8.self).lowercased() }.joined(separator: ".")
                if let offset = offsets[suffix] {
                    u16(0xC000 | UInt16(offset))
                    return
                }
                if bytes.count < 0x3FFF { offsets[suffix] = bytes.count }
                bytes.append(UInt8(labels[index].count))
                bytes += labels[index]
            }
            bytes.append(0)
        }
    }

    /// The labels of a dotted name (escapes `\.` and `\DDD` undone); the root is `""` or `"."`.
    static func labels(of name: String) throws(EncodingError) -> [[UInt8]] {
        var labels: [[UInt8]] = []
        var label: [UInt8] = []
        let bytes = Array(name.utf8)
        var index = 0
        var total = 1
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: ".") {
                guard !label.isEmpty else {
                    if index == bytes.count - 1 && labels.isEmpty && bytes.count == 1 { break }
                    throw .badName(name)
                }
                labels.append(label)
                total += label.count + 1
                label = []
                index += 1
                continue
            }
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { throw .badName(name) }
                let next = bytes[index + 1]
                if next >= UInt8(ascii: "0") && next <= UInt8(ascii: "9") {
                    guard index + 3 < bytes.count else { throw .badName(name) }
                    let digits = bytes[(index + 1)...(index + 3)]
                    guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { throw .badName(name) }
                    let value = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
                    guard value <= 255 else { throw .badName(name) }
                    label.append(UInt8(value))
                    index += 4
                } else {
                    label.append(next)
                    index += 2
                }
            } else {
                label.append(byte)
                index += 1
            }
            guard label.count <= 63 else { throw .badName(name) }
        }
        if !label.isEmpty {
            labels.append(label)
            total += label.count + 1
        }
        guard total <= maximumNameLength else { throw .badName(name) }
        return labels
    }
}

// MARK: Decoding

extension DNSMessage {
    /// Decodes a message; every field is checked against the bytes there are.
    public init(decoding bytes: [UInt8]) throws(DecodingError) {
        guard bytes.count <= Self.maximumLength else { throw .trailingBytes }
        var reader = Reader(bytes: bytes)
        id = try reader.u16()
        let flags = try reader.u16()
        isResponse = flags & 0x8000 != 0
        opcode = UInt8((flags >> 11) & 0x0F)
        isAuthoritative = flags & 0x0400 != 0
        isTruncated = flags & 0x0200 != 0
        recursionDesired = flags & 0x0100 != 0
        recursionAvailable = flags & 0x0080 != 0
        responseCode = ResponseCode(rawValue: UInt8(flags & 0x0F))
        let questionCount = Int(try reader.u16())
        let answerCount = Int(try reader.u16())
        let authorityCount = Int(try reader.u16())
        let additionalCount = Int(try reader.u16())
        // Each question takes 5 bytes at least, each record 11: counts past the bytes are refused
        // before anything is reserved.
        guard questionCount * 5 + (answerCount + authorityCount + additionalCount) * 11 <= bytes.count - 12 else { throw .truncated }
        var questions: [Question] = []
        for _ in 0..<questionCount {
            let name = try reader.name()
            let type = RecordType(rawValue: try reader.u16())
            let recordClass = try reader.u16()
            questions.append(Question(name: name, type: type, recordClass: recordClass))
        }
        var answers: [Record] = []
        for section in 0..<3 {
            let count = [answerCount, authorityCount, additionalCount][section]
            for _ in 0..<count {
                let record = try reader.record()
                if section == 0 { answers.append(record) }
            }
        }
        guard reader.offset == bytes.count else { throw .trailingBytes }
        self.questions = questions
        self.answers = answers
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func u8() throws(DecodingError) -> UInt8 {
            guard offset < bytes.count else { throw .truncated }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func u16() throws(DecodingError) -> UInt16 {
            UInt16(try u8()) << 8 | UInt16(try u8())
        }

        mutating func u32() throws(DecodingError) -> UInt32 {
            UInt32(try u16()) << 16 | UInt32(try u16())
        }

        /// A name at the current offset, following compression pointers (each must point before the
        /// label that holds it, so a chain always ends).
        mutating func name() throws(DecodingError) -> String {
            var text: [UInt8] = []
            var length = 1
            var position = offset
            var jumped = false
            var lowestPointerTarget = offset
            while true {
                guard position < bytes.count else { throw .truncated }
                let byte = bytes[position]
                switch byte & 0xC0 {
                case 0x00:
                    if byte == 0 {
                        if !jumped { offset = position + 1 }
                        return String(decoding: text, as: UTF8.self)
                    }
                    let count = Int(byte)
                    guard position + 1 + count <= bytes.count else { throw .truncated }
                    length += count + 1
                    guard length <= DNSMessage.maximumNameLength else { throw .badName }
                    if !text.isEmpty { text.append(UInt8(ascii: ".")) }
                    for labelByte in bytes[(position + 1)...(position + count)] { Self.appendEscaped(labelByte, to: &text) }
                    position += 1 + count
                case 0xC0:
                    guard position + 1 < bytes.count else { throw .truncated }
                    let target = Int(byte & 0x3F) << 8 | Int(bytes[position + 1])
                    guard target < lowestPointerTarget, target < position else { throw .badPointer }
                    if !jumped { offset = position + 2 }
                    jumped = true
                    lowestPointerTarget = target
                    position = target
                default:
                    // 0x40 and 0x80: extended label types, not used.
                    throw .badName
                }
            }
        }

        static func appendEscaped(_ byte: UInt8, to text: inout [UInt8]) {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"):
                text.append(byte)
            case UInt8(ascii: "."), UInt8(ascii: "\\"):
                text.append(UInt8(ascii: "\\"))
                text.append(byte)
            default:
                text.append(UInt8(ascii: "\\"))
                text.append(UInt8(ascii: "0") + byte / 100)
                text.append(UInt8(ascii: "0") + byte / 10 % 10)
                text.append(UInt8(ascii: "0") + byte % 10)
            }
        }

        mutating func record() throws(DecodingError) -> Record {
            let name = try name()
            let type = RecordType(rawValue: try u16())
            let recordClass = try u16()
            let rawTTL = try u32()
            let length = Int(try u16())
            guard offset + length <= bytes.count else { throw .truncated }
            let end = offset + length
            let data: Record.Data
            switch type {
            case .a where recordClass == 1:
                guard length == 4 else { throw .badRecordData }
                data = .address(IPAddress(ipv4: try u32()))
            case .aaaa where recordClass == 1:
                guard length == 16 else { throw .badRecordData }
                let high = UInt64(try u32()) << 32 | UInt64(try u32())
                let low = UInt64(try u32()) << 32 | UInt64(try u32())
                data = .address(IPAddress(high: high, low: low))
            case .ptr, .cname:
                let target = try self.name()
                guard offset == end else { throw .badRecordData }
                data = .name(target)
            default:
                data = .other(Array(bytes[offset..<end]))
                offset = end
            }
            guard offset == end else { throw .badRecordData }
            return Record(name: name, type: type, recordClass: recordClass, ttl: rawTTL & 0x8000_0000 == 0 ? rawTTL : 0, data: data)
        }
    }
}
