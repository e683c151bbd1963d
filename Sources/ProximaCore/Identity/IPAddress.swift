/// An IPv4 or IPv6 address as 128 bits. IPv4 addresses are kept in their IPv4-mapped IPv6 form
/// (`::ffff:a.b.c.d`), so that an IPv4 peer seen on a dual-stack socket and the same peer seen on an
/// IPv4 socket are one address and match the same networks.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// The first and last 64 bits, in network order.
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The IPv4 address `a.b.c.d` of a 32-bit value.
    public init(ipv4 value: UInt32) {
        high = 0
        low = 0x0000_FFFF_0000_0000 | UInt64(value)
    }

    /// Whether this is an IPv4 address (or an IPv4-mapped IPv6 one).
    public var isIPv4: Bool { high == 0 && low >> 32 == 0xFFFF }

    /// Parses `a.b.c.d` or an IPv6 address in any of its text forms (`::` compression, a trailing
    /// dotted IPv4 part). A zone (`fe80::1%eth0`) is dropped. Nothing else is accepted: no brackets,
    /// no ports, no leading zeros in IPv4 parts (which some parsers read as octal).
    public init?(_ text: some StringProtocol) {
        var bytes = Array(text.utf8.prefix(Self.maximumTextLength + 1))
        guard !bytes.isEmpty, bytes.count <= Self.maximumTextLength else { return nil }
        if let zone = bytes.firstIndex(of: UInt8(ascii: "%")) {
            guard zone > 0, bytes.contains(UInt8(ascii: ":")) else { return nil }
            bytes.removeSubrange(zone...)
        }
        if let value = Self.parseIPv4(bytes[...]) {
            self.init(ipv4: value)
        } else if let (high, low) = Self.parseIPv6(bytes[...]) {
            self.init(high: high, low: low)
        } else {
            return nil
        }
    }

    /// A hop of `X-Forwarded-For`: an address, optionally in brackets (IPv6) and with a port
    /// (`203.0.113.7:5144`, `[2001:db8::1]:443`), with spaces around it.
    public init?(forwardedHop text: Substring) {
        var hop = text
        while let first = hop.first, first == " " || first == "\t" { hop.removeFirst() }
        while let last = hop.last, last == " " || last == "\t" { hop.removeLast() }
        if hop.first == "[" {
            guard let close = hop.firstIndex(of: "]") else { return nil }
            let rest = hop[hop.index(after: close)...]
            guard rest.isEmpty || (rest.first == ":" && rest.dropFirst().allSatisfy(\.isASCIIDigit) && rest.count > 1) else { return nil }
            hop = hop[hop.index(after: hop.startIndex)..<close]
            guard hop.contains(":") else { return nil }
        } else if hop.utf8.filter({ $0 == UInt8(ascii: ":") }).count == 1, let colon = hop.firstIndex(of: ":") {
            // IPv4 with a port.
            let port = hop[hop.index(after: colon)...]
            guard !port.isEmpty, port.allSatisfy(\.isASCIIDigit) else { return nil }
            hop = hop[..<colon]
        }
        self.init(hop)
    }

    /// Longer than any address in text (an IPv6 address with an IPv4 tail and a zone is shorter).
    static let maximumTextLength = 64

    public var description: String {
        if isIPv4 {
            let value = UInt32(truncatingIfNeeded: low)
            return "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
        }
        let groups = (0..<8).map { index -> UInt16 in
            let word = index < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> UInt64(48 - 16 * (index % 4)))
        }
        // The longest run of two or more zero groups becomes `::` (RFC 5952).
        var bestStart = -1
        var bestLength = 1
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > bestLength {
                bestStart = index
                bestLength = end - index
            }
            index = end
        }
        func hex(_ range: Range<Int>) -> String { range.map { String(groups[$0], radix: 16) }.joined(separator: ":") }
        guard bestStart >= 0 else { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    // MARK: Parsing

    static func parseIPv4(_ bytes: ArraySlice<UInt8>) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        var part: UInt32 = 0
        var digits = 0
        var leadingZero = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if digits == 1 && leadingZero { return nil }
                if digits == 0 { leadingZero = byte == UInt8(ascii: "0") }
                part = part * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard digits <= 3, part <= 255 else { return nil }
            case UInt8(ascii: "."):
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | part
                parts += 1
                part = 0
                digits = 0
            default:
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | part
    }

    static func parseIPv6(_ bytes: ArraySlice<UInt8>) -> (UInt64, UInt64)? {
        guard bytes.contains(UInt8(ascii: ":")) else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var compressed = false
        var index = bytes.startIndex
        // A leading `::`.
        if bytes.starts(with: [UInt8(ascii: ":"), UInt8(ascii: ":")]) {
            compressed = true
            index += 2
            if index == bytes.endIndex { return (0, 0) }
        } else if bytes.first == UInt8(ascii: ":") {
            return nil
        }
        while index < bytes.endIndex {
            // One group, or a dotted IPv4 tail.
            var end = index
            while end < bytes.endIndex && bytes[end] != UInt8(ascii: ":") { end += 1 }
            let field = bytes[index..<end]
            if end == bytes.endIndex, field.contains(UInt8(ascii: ".")) {
                guard let ipv4 = parseIPv4(field) else { return nil }
                let groups = [UInt16(ipv4 >> 16), UInt16(ipv4 & 0xFFFF)]
                if compressed { tail += groups } else { head += groups }
                index = end
                break
            }
            guard (1...4).contains(field.count) else { return nil }
            var group: UInt16 = 0
            for byte in field {
                guard let digit = hexDigit(byte) else { return nil }
                group = group << 4 | UInt16(digit)
            }
            if compressed { tail.append(group) } else { head.append(group) }
            guard head.count + tail.count <= 8 else { return nil }
            index = end
            if index == bytes.endIndex { break }
            // Past the colon; a second one right after it is the `::`.
            index += 1
            if index < bytes.endIndex && bytes[index] == UInt8(ascii: ":") {
                guard !compressed else { return nil }
                compressed = true
                index += 1
                if index == bytes.endIndex { break }
            } else if index == bytes.endIndex {
                return nil  // a trailing single colon
            }
        }
        let count = head.count + tail.count
        guard compressed ? count <= 7 : count == 8 else { return nil }
        let groups = head + Array(repeating: 0, count: 8 - count) + tail
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<4 { high = high << 16 | UInt64(groups[index]) }
        for index in 4..<8 { low = low << 16 | UInt64(groups[index]) }
        return (high, low)
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A block of addresses in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or one address (`/32` or
/// `/128` implied). An IPv4 block also matches the IPv4-mapped form of its addresses; `::/0`
/// matches every address, IPv4 included.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    /// Leading bits that must match, 0 to 128, counted on the 128-bit form (an IPv4 `/8` is 104).
    public let prefixLength: Int

    /// Why a text is not a network, for configuration problems.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notAnAddress
        case badPrefix
        /// Bits are set past the prefix: the text probably meant the given network.
        case hostBitsSet(suggestion: String)

        public var description: String {
            switch self {
            case .notAnAddress: "is not an IPv4 or IPv6 address or network"
            case .badPrefix: "has a prefix length outside 0-32 (IPv4) or 0-128 (IPv6)"
            case .hostBitsSet(let suggestion): "has bits set past its prefix length; did you mean \(suggestion)?"
            }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0].trimmingSpaces()), !parts[0].contains("%") else { throw .notAnAddress }
        let width = address.isIPv4 && !parts[0].contains(":") ? 32 : 128
        var length = width
        if parts.count == 2 {
            let digits = parts[1].trimmingSpaces()
            guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy(\.isASCIIDigit), let value = Int(digits), value <= width else {
                throw .badPrefix
            }
            length = value
        }
        let full = length + (128 - width)
        let network = IPNetwork(address: address, prefixLength: full)
        guard network.address == address else {
            throw .hostBitsSet(suggestion: "\(network.address)/\(length)")
        }
        self = network
    }

    /// The network of `address`'s first `prefixLength` bits (the rest cleared).
    public init(address: IPAddress, prefixLength: Int) {
        let length = min(max(prefixLength, 0), 128)
        self.prefixLength = length
        let (highMask, lowMask) = Self.masks(length)
        self.address = IPAddress(high: address.high & highMask, low: address.low & lowMask)
    }

    public func contains(_ candidate: IPAddress) -> Bool {
        let (highMask, lowMask) = Self.masks(prefixLength)
        return candidate.high & highMask == address.high && candidate.low & lowMask == address.low
    }

    public var description: String {
        address.isIPv4 && prefixLength >= 96 ? "\(address)/\(prefixLength - 96)" : "\(address)/\(prefixLength)"
    }

    private static func masks(_ length: Int) -> (UInt64, UInt64) {
        let high: UInt64 = length >= 64 ? .max : length == 0 ? 0 : ~(UInt64.max >> UInt64(length))
        let low: UInt64 = length <= 64 ? 0 : length == 128 ? .max : ~(UInt64.max >> UInt64(length - 64))
        return (high, low)
    }
}

extension Array where Element == IPNetwork {
    /// Whether any of the networks holds `address`.
    public func containsAddress(_ address: IPAddress) -> Bool {
        for network in self where network.contains(address) { return true }
        return false
    }
}

/// Who the client of a request is when trusted proxies stand in front of the gateway: the peer
/// itself unless it is a trusted proxy; then the rightmost hop of `X-Forwarded-For` that is not a
/// trusted proxy (each proxy appends the address it received the request from, so hops left of the
/// first untrusted one could be forged by the client). When every hop is trusted the leftmost is
/// the client; a hop that is not an address ends the walk at the last trusted one.
public enum ForwardedClient {
    /// Hops read at most, from the right.
    public static let maximumHops = 32

    public static func address(peer: IPAddress, forwardedFor values: [Substring], trusted: [IPNetwork]) -> IPAddress {
        guard trusted.containsAddress(peer) else { return peer }
        var client = peer
        var hops = 0
        for value in values.reversed() {
            for hop in value.split(separator: ",", omittingEmptySubsequences: false).reversed() {
                hops += 1
                guard hops <= maximumHops, let address = IPAddress(forwardedHop: hop) else { return client }
                client = address
                if !trusted.containsAddress(address) { return address }
            }
        }
        return client
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
