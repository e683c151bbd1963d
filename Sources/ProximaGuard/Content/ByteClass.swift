/// What each byte is to the guards' scanners, in one 256-entry table: a table read instead of chains
/// of comparisons on every byte of every prompt (docs/security.md, "Cost"). Read through a local copy
/// of `table` (a pointer into memory that lives as long as the process).
enum ByteClass {
    /// a-z
    static let lower: UInt16 = 1 << 0
    /// A-Z
    static let upper: UInt16 = 1 << 1
    /// 0-9
    static let digit: UInt16 = 1 << 2
    /// A word byte of normalized text: a-z, 0-9, `_` and every byte of a non-ASCII character.
    static let word: UInt16 = 1 << 3
    /// Base64 and base64url alphabet with padding: alphanumerics, `+ / = - _`.
    static let base64: UInt16 = 1 << 4
    /// Extends a blob run: the base64 alphabet and `%`.
    static let blobRun: UInt16 = 1 << 5
    /// ASCII the normalizer copies as it is (after lowering A-Z): printable, no space.
    static let plain: UInt16 = 1 << 6
    /// Where the layout scan must look: newline, `<`, `[`, `!`.
    static let layout: UInt16 = 1 << 7
    /// Where a secret or personal-data entity can start or be anchored: alphanumerics, `@ - + ( :`.
    static let entityStart: UInt16 = 1 << 8
    /// First bytes of provider keys and tokens: `A g s r p x h e`.
    static let tokenStart: UInt16 = 1 << 9
    /// Hex digits.
    static let hex: UInt16 = 1 << 10
    /// Bytes of a phone number's run: digits, space, `- . ( ) +`.
    static let phoneRun: UInt16 = 1 << 11
    /// What a secret or personal-data entity needs somewhere in its first word or right after it:
    /// digits, A-Z and `_ - @ + ( :`. A run of lowercase words and other punctuation holds no entity.
    static let entityAnchor: UInt16 = 1 << 12
    static let alnum: UInt16 = lower | upper | digit

    nonisolated(unsafe) static let table: UnsafePointer<UInt16> = {
        let table = UnsafeMutablePointer<UInt16>.allocate(capacity: 256)
        for value in 0..<256 {
            let byte = UInt8(value)
            var bits: UInt16 = 0
            if byte >= 0x61 && byte <= 0x7A { bits |= lower }
            if byte >= 0x41 && byte <= 0x5A { bits |= upper }
            if byte >= 0x30 && byte <= 0x39 { bits |= digit | phoneRun }
            if bits & (lower | digit) != 0 || byte == 0x5F || byte >= 0x80 { bits |= word }
            if bits & alnum != 0 || byte == 0x2B || byte == 0x2F || byte == 0x3D || byte == 0x2D || byte == 0x5F { bits |= base64 | blobRun }
            if byte == 0x25 { bits |= blobRun }
            if byte > 0x20 && byte < 0x7F { bits |= plain }
            if byte == 0x0A || byte == 0x3C || byte == 0x5B || byte == 0x21 { bits |= layout }
            if bits & alnum != 0 || byte == 0x40 || byte == 0x2D || byte == 0x2B || byte == 0x28 || byte == 0x3A { bits |= entityStart }
            if Array("Agsrpxhe".utf8).contains(byte) { bits |= tokenStart }
            if bits & digit != 0 || ((byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x66) { bits |= hex }
            if byte == 0x20 || byte == 0x2D || byte == 0x2E || byte == 0x28 || byte == 0x29 || byte == 0x2B { bits |= phoneRun }
            if bits & (upper | digit) != 0 || Array("_-@+(:".utf8).contains(byte) { bits |= entityAnchor }
            table[value] = bits
        }
        return UnsafePointer(table)
    }()

    /// Lowercase ASCII letters, every other byte unchanged.
    nonisolated(unsafe) static let lowered: UnsafePointer<UInt8> = {
        let table = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        for value in 0..<256 { table[value] = value >= 0x41 && value <= 0x5A ? UInt8(value | 0x20) : UInt8(value) }
        return UnsafePointer(table)
    }()
}

/// Eight bytes at a time in a `UInt64` (little-endian loads: byte i is bits 8i..8i+7). Each function
/// returns 0x80 in the byte lanes that qualify. Lanes at or above 0x80 never qualify, and carries
/// cannot cross lanes for the ASCII lanes that matter.
enum SWAR {
    static let high: UInt64 = 0x8080_8080_8080_8080
    static let ones: UInt64 = 0x0101_0101_0101_0101

    /// a-z.
    @inline(__always) static func lowercaseLetters(_ x: UInt64) -> UInt64 {
        let ascii = ~x & high
        let seven = x & ~high
        // seven + (0x80 - 0x61) has its high bit set from 0x61 on; seven + (0x80 - 0x7B) from 0x7B on.
        return ascii & (seven &+ ones &* 0x1F) & ~(seven &+ ones &* 0x05)
    }

    /// A-Z.
    @inline(__always) static func uppercaseLetters(_ x: UInt64) -> UInt64 {
        let ascii = ~x & high
        let seven = x & ~high
        return ascii & (seven &+ ones &* 0x3F) & ~(seven &+ ones &* 0x25)
    }

    /// Printable ASCII and space (0x20-0x7E).
    @inline(__always) static func printable(_ x: UInt64) -> UInt64 {
        let ascii = ~x & high
        let seven = x & ~high
        return ascii & (seven &+ ones &* 0x60) & ~(seven &+ ones)
    }

    /// The entity anchors of `ByteClass.entityAnchor`: 0-9, A-Z, `_ - @ + ( :`.
    @inline(__always) static func entityAnchors(_ x: UInt64) -> UInt64 {
        let ascii = ~x & high
        let seven = x & ~high
        let digits = (seven &+ ones &* 0x50) & ~(seven &+ ones &* 0x46)
        let upper = (seven &+ ones &* 0x3F) & ~(seven &+ ones &* 0x25)
        let marks = equal(x, 0x5F) | equal(x, 0x2D) | equal(x, 0x40) | equal(x, 0x2B) | equal(x, 0x28) | equal(x, 0x3A)
        // A capital that starts a word and is followed by a lowercase letter ("How", "The") anchors
        // nothing: no entity starts that way, and one in a word with other anchors is reached from
        // them. Lanes 0 and 7 (whose neighbours are outside the chunk) always count.
        let capitals = upper & ascii & high
        let alnum = (capitals | (digits & ascii & high) | lowercaseLetters(x))
        let quietCapitals = capitals & (lowercaseLetters(x) >> 8) & ~(alnum << 8) & 0x0080_8080_8080_8000
        return ((digits | upper) & ascii & high & ~quietCapitals) | marks
    }

    /// Bytes equal to `byte` (ASCII).
    @inline(__always) static func equal(_ x: UInt64, _ byte: UInt8) -> UInt64 {
        let diff = x ^ (ones &* UInt64(byte))
        // Zero lanes: (diff - 1) borrows into the high bit only where diff is 0 (exact per lane form).
        let seven = diff & ~high
        return ~(seven &+ ~high) & ~diff & high
    }
}
