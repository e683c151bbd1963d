/// Folds a text into the form the injection rules read (docs/security.md): lowercase, fullwidth forms
/// and mathematical letters to ASCII, common accents removed, invisible characters dropped, Unicode tag
/// characters decoded to the ASCII they smuggle, Cyrillic and Greek look-alikes inside Latin words
/// mapped to Latin, whitespace runs collapsed to one space. Every normalized byte remembers the offset
/// of the original character it came from, so matches map back to spans of the original text.
struct NormalizedText {
    /// Normalized UTF-8.
    var bytes: [UInt8] = []
    /// Where normalized bytes come from, kept sparse: normalized byte `k` comes from the original
    /// offset `original + (k - norm)` of the last break at or before it (an implicit break (0, 0)
    /// first). A break is recorded only where that stops holding (a collapsed space, a folded or
    /// dropped character), so plain ASCII records none and writes nothing but its bytes.
    var breaks: [Break] = []

    struct Break {
        var norm: Int32
        var original: Int32
    }
    /// Zero-width and other invisible format characters removed (outside emoji sequences).
    var invisible = 0
    /// Tag characters decoded (outside flag emoji sequences), and where they were.
    var tags = 0
    var tagSpan: Range<Int>?
    /// Cyrillic, Greek, mathematical or other look-alike letters mapped inside Latin words.
    var homoglyphs = 0

    init() {}

    init(_ text: UnsafeBufferPointer<UInt8>) {
        // Never longer than the input (every fold is at most as long as what it replaces): written in
        // place into buffers of that size, not appended.
        let capacity = text.count + 8
        var breaks: [Break] = []
        var n = 0
        var invisible = 0, tags = 0, homoglyphs = 0
        var tagSpan: Range<Int>?
        // Original offset minus normalized offset since the last break.
        var delta = 0
        let outBytes = [UInt8](unsafeUninitializedCapacity: capacity) { out, initialized in
            do {
                var index = 0
                var lastWasSpace = true
                var inFlag = false
                let count = text.count
                @inline(__always) func emit(_ byte: UInt8, _ at: Int) {
                    guard n < capacity else { return }
                    out[n] = byte
                    if at - n != delta {
                        delta = at - n
                        breaks.append(Break(norm: Int32(truncatingIfNeeded: n), original: Int32(truncatingIfNeeded: at)))
                    }
                    n += 1
                }
                let classes = ByteClass.table
                let lowered = ByteClass.lowered
                while index < count {
                    let start = index
                    let lead = text[index]
                    // Fast path: printable ASCII is copied (A-Z lowered) and a single space kept, one table
                    // read per byte; everything else goes the long way below.
                    // (Locals in the loop: `n` is shared with `emit` and would be read from memory.)
                    if classes[Int(lead)] & ByteClass.plain != 0 || lead == 0x20 {
                        var m = n
                        var at = index
                        var space = lastWasSpace
                        var shift = delta
                        var byteUntil = 0
                        let base = text.baseAddress!
                        let outBase = out.baseAddress!
                        while at < count {
                            // Eight printable bytes with no two spaces in a row: lowered and copied at once.
                            // After a chunk that could not be copied whole, its bytes go one by one (no retry
                            // at every byte up to the one that stopped it).
                            if at >= byteUntil && at + 8 <= count {
                                byteUntil = at + 8
                                let chunk = UnsafeRawPointer(base + at).loadUnaligned(as: UInt64.self)
                                if SWAR.printable(chunk) == SWAR.high {
                                    let spaces = SWAR.equal(chunk, 0x20)
                                    if spaces & (spaces << 8) == 0 && !(space && spaces & 0x80 != 0) {
                                        UnsafeMutableRawPointer(outBase + m).storeBytes(of: chunk | (SWAR.uppercaseLetters(chunk) >> 2), as: UInt64.self)
                                        if at - m != shift {
                                            shift = at - m
                                            breaks.append(Break(norm: Int32(truncatingIfNeeded: m), original: Int32(truncatingIfNeeded: at)))
                                        }
                                        m += 8
                                        at += 8
                                        space = spaces >> 56 != 0
                                        continue
                                    }
                                }
                            }
                            let byte = text[at]
                            if classes[Int(byte)] & ByteClass.plain != 0 {
                                out[m] = lowered[Int(byte)]
                                if at - m != shift {
                                    shift = at - m
                                    breaks.append(Break(norm: Int32(truncatingIfNeeded: m), original: Int32(truncatingIfNeeded: at)))
                                }
                                m += 1
                                space = false
                            } else if byte == 0x20 {
                                if !space {
                                    out[m] = 0x20
                                    if at - m != shift {
                                        shift = at - m
                                        breaks.append(Break(norm: Int32(truncatingIfNeeded: m), original: Int32(truncatingIfNeeded: at)))
                                    }
                                    m += 1
                                }
                                space = true
                            } else {
                                break
                            }
                            at += 1
                        }
                        n = m
                        index = at
                        lastWasSpace = space
                        delta = shift
                        inFlag = false
                        continue
                    }
                    if lead < 0x80 {
                        index += 1
                        inFlag = false
                        switch lead {
                        case 0x41...0x5A:
                            emit(lead | 0x20, start); lastWasSpace = false
                        case 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20:
                            // Newlines are kept (role lines start after one); other runs become one space.
                            if lead == 0x0A {
                                if lastWasSpace, n > 0, out[n - 1] == 0x20 { out[n - 1] = 0x0A } else if n == 0 || out[n - 1] != 0x0A { emit(0x0A, start) }
                            } else if !lastWasSpace {
                                emit(0x20, start)
                            }
                            lastWasSpace = true
                        case 0x00...0x1F, 0x7F:
                            if !lastWasSpace { emit(0x20, start) }
                            lastWasSpace = true
                        default:
                            emit(lead, start); lastWasSpace = false
                        }
                        continue
                    }
                    let (scalar, length) = UTF8Scan.decode(text, at: index)
                    index += length
                    guard let scalar else {
                        if !lastWasSpace { emit(0x20, start) }
                        lastWasSpace = true
                        continue
                    }
                    if scalar == 0x1F3F4 { inFlag = true }
                    // Tag characters: the ASCII they stand for joins the text (the model reads it too).
                    if scalar >= 0xE0000 && scalar <= 0xE007F {
                        if inFlag { continue }
                        let ascii = UInt8(scalar - 0xE0000)
                        tags += 1
                        tagSpan = (tagSpan?.lowerBound ?? start)..<index
                        if ascii >= 0x41 && ascii <= 0x5A {
                            emit(ascii | 0x20, start); lastWasSpace = false
                        } else if ascii == 0x20 {
                            if !lastWasSpace { emit(0x20, start) }
                            lastWasSpace = true
                        } else if ascii > 0x20 && ascii < 0x7F {
                            emit(ascii, start); lastWasSpace = false
                        }
                        continue
                    }
                    if scalar != 0xFE0F && scalar != 0x200D && scalar != 0x1F3F4 { inFlag = false }
                    switch scalar {
                    case 0x200B, 0x200C, 0x200E, 0x200F, 0x2060...0x2064, 0xFEFF, 0x00AD, 0x180E, 0x202A...0x202E, 0x2066...0x2069:
                        invisible += 1
                        continue
                    case 0x200D, 0xFE00...0xFE0F, 0x0300...0x036F:
                        // Joiners and variation selectors belong to emoji; combining marks fold away.
                        continue
                    case 0x00A0, 0x2000...0x200A, 0x202F, 0x205F, 0x3000, 0x2028, 0x2029, 0x0085:
                        if !lastWasSpace { emit(0x20, start) }
                        lastWasSpace = true
                        continue
                    default:
                        break
                    }
                    if let folded = Self.fold(scalar) {
                        for byte in folded.utf8 { emit(byte, start) }
                        lastWasSpace = false
                        continue
                    }
                    if let latin = Self.confusable(scalar) {
                        // A look-alike counts as Latin only next to a Latin letter (mixed-script word).
                        let previousLatin = n > 0 && out[n - 1] >= 0x61 && out[n - 1] <= 0x7A
                        var nextLatin = false
                        if index < count {
                            let next = text[index]
                            nextLatin = (next | 0x20) >= 0x61 && (next | 0x20) <= 0x7A
                        }
                        let mixedScript = scalar >= 0x0370 && scalar < 0x0530
                        if !mixedScript || previousLatin || nextLatin {
                            homoglyphs += 1
                            emit(latin, start)
                            lastWasSpace = false
                            continue
                        }
                    }
                    var lowered = scalar
                    switch scalar {
                    case 0x0410...0x042F: lowered = scalar + 0x20
                    case 0x0400...0x040F: lowered = scalar + 0x50
                    case 0x0391...0x03A9: lowered = scalar + 0x20
                    default: break
                    }
                    if lowered == scalar {
                        for offset in start..<index { emit(text[offset], start) }
                    } else {
                        UTF8Scan.encode(lowered) { emit($0, start) }
                    }
                    lastWasSpace = false
                }
            }
            initialized = n
        }
        bytes = outBytes
        self.breaks = breaks
        self.invisible = invisible
        self.tags = tags
        self.tagSpan = tagSpan
        self.homoglyphs = homoglyphs
    }

    /// The original offset of the character normalized byte `index` came from.
    func origin(_ index: Int) -> Int {
        // The last break at or before `index` (binary search; none: the implicit (0, 0)).
        var low = 0, high = breaks.count
        while low < high {
            let middle = (low + high) / 2
            if Int(breaks[middle].norm) <= index { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return index }
        let last = breaks[low - 1]
        return Int(last.original) + index - Int(last.norm)
    }

    /// The original span of normalized bytes `range`.
    func originalSpan(_ range: Range<Int>, in text: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        guard !range.isEmpty, range.upperBound <= bytes.count else { return 0..<0 }
        let lower = origin(range.lowerBound)
        let lastStart = origin(range.upperBound - 1)
        let upper = min(text.count, lastStart + UTF8Scan.length(of: text[lastStart]))
        return lower..<max(lower, upper)
    }

    /// Latin letters with accents, ligatures, fullwidth forms: their plain ASCII.
    static func fold(_ scalar: UInt32) -> String? {
        switch scalar {
        case 0xFF01...0xFF5E:
            let ascii = UInt8(scalar - 0xFEE0)
            return String(UnicodeScalar(ascii >= 0x41 && ascii <= 0x5A ? ascii | 0x20 : ascii))
        case 0x00C0...0x00C5, 0x00E0...0x00E5, 0x0100...0x0105: return "a"
        case 0x00C6, 0x00E6: return "ae"
        case 0x00C7, 0x00E7, 0x0106...0x010D: return "c"
        case 0x00C8...0x00CB, 0x00E8...0x00EB, 0x0112...0x011B: return "e"
        case 0x00CC...0x00CF, 0x00EC...0x00EF, 0x0128...0x0130: return "i"
        case 0x00D1, 0x00F1, 0x0143...0x0148: return "n"
        case 0x00D2...0x00D6, 0x00D8, 0x00F2...0x00F6, 0x00F8, 0x014C...0x0151: return "o"
        case 0x0152, 0x0153: return "oe"
        case 0x00D9...0x00DC, 0x00F9...0x00FC, 0x0168...0x0173: return "u"
        case 0x00DD, 0x00FD, 0x00FF: return "y"
        case 0x00DF: return "ss"
        case 0x015A...0x0161: return "s"
        case 0x0179...0x017E: return "z"
        case 0x2018, 0x2019, 0x02BC: return "'"
        case 0x201C, 0x201D: return "\""
        case 0x2010...0x2015: return "-"
        default: return nil
        }
    }

    /// Letters that look like a Latin letter: Cyrillic, Greek, IPA, mathematical alphanumerics,
    /// enclosed letters.
    static func confusable(_ scalar: UInt32) -> UInt8? {
        switch scalar {
        case 0x1D400...0x1D6A3:
            let offset = (scalar - 0x1D400) % 52
            return offset < 26 ? UInt8(0x61 + offset) : UInt8(0x61 + offset - 26)
        case 0x1D7CE...0x1D7FF: return UInt8(0x30 + (scalar - 0x1D7CE) % 10)
        case 0x24B6...0x24CF: return UInt8(0x61 + scalar - 0x24B6)
        case 0x24D0...0x24E9: return UInt8(0x61 + scalar - 0x24D0)
        case 0x0131: return 0x69  // dotless i
        case 0x0251: return 0x61  // Latin alpha
        case 0x0261: return 0x67  // script g
        default: break
        }
        switch scalar {
        case 0x0430, 0x0410, 0x03B1, 0x0391: return 0x61  // а А α Α
        case 0x0412, 0x0392, 0x0432: return 0x62  // В Β в
        case 0x0441, 0x0421, 0x03F2: return 0x63  // с С ϲ
        case 0x0501: return 0x64  // ԁ
        case 0x0435, 0x0415, 0x0395, 0x03B5: return 0x65  // е Е Ε ε
        case 0x04BB: return 0x68  // һ
        case 0x041D, 0x0397: return 0x68  // Н Η
        case 0x0456, 0x0406, 0x03B9, 0x0399: return 0x69  // і І ι Ι
        case 0x0458, 0x0408: return 0x6A  // ј Ј
        case 0x041A, 0x039A, 0x03BA: return 0x6B  // К Κ κ
        case 0x041C, 0x039C: return 0x6D  // М Μ
        case 0x039D: return 0x6E  // Ν
        case 0x043E, 0x041E, 0x03BF, 0x039F: return 0x6F  // о О ο Ο
        case 0x0440, 0x0420, 0x03C1, 0x03A1: return 0x70  // р Р ρ Ρ
        case 0x051B: return 0x71  // ԛ
        case 0x0455, 0x0405: return 0x73  // ѕ Ѕ
        case 0x0422, 0x03A4, 0x03C4: return 0x74  // Т Τ τ
        case 0x03C5: return 0x75  // υ
        case 0x03BD: return 0x76  // ν
        case 0x051D: return 0x77  // ԝ
        case 0x0445, 0x0425, 0x03C7, 0x03A7: return 0x78  // х Х χ Χ
        case 0x0443, 0x0423, 0x03A5: return 0x79  // у У Υ
        case 0x0396: return 0x7A  // Ζ
        default: return nil
        }
    }
}

/// UTF-8 decoding and encoding over raw bytes, never trapping on invalid input.
enum UTF8Scan {
    /// The scalar at `index` and the bytes it takes; nil (and 1) for an invalid sequence.
    @inline(__always)
    static func decode(_ text: UnsafeBufferPointer<UInt8>, at index: Int) -> (UInt32?, Int) {
        let lead = text[index]
        if lead < 0x80 { return (UInt32(lead), 1) }
        let count = text.count
        @inline(__always) func continuation(_ offset: Int) -> UInt32? {
            guard index + offset < count else { return nil }
            let byte = text[index + offset]
            return byte & 0xC0 == 0x80 ? UInt32(byte & 0x3F) : nil
        }
        switch lead {
        case 0xC2...0xDF:
            guard let b1 = continuation(1) else { return (nil, 1) }
            return (UInt32(lead & 0x1F) << 6 | b1, 2)
        case 0xE0...0xEF:
            guard let b1 = continuation(1), let b2 = continuation(2) else { return (nil, 1) }
            let value = UInt32(lead & 0x0F) << 12 | b1 << 6 | b2
            if value < 0x800 || (value >= 0xD800 && value <= 0xDFFF) { return (nil, 1) }
            return (value, 3)
        case 0xF0...0xF4:
            guard let b1 = continuation(1), let b2 = continuation(2), let b3 = continuation(3) else { return (nil, 1) }
            let value = UInt32(lead & 0x07) << 18 | b1 << 12 | b2 << 6 | b3
            if value < 0x10000 || value > 0x10FFFF { return (nil, 1) }
            return (value, 4)
        default:
            return (nil, 1)
        }
    }

    @inline(__always)
    static func encode(_ scalar: UInt32, _ emit: (UInt8) -> Void) {
        switch scalar {
        case 0..<0x80: emit(UInt8(scalar))
        case 0x80..<0x800:
            emit(UInt8(0xC0 | scalar >> 6)); emit(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            emit(UInt8(0xE0 | scalar >> 12)); emit(UInt8(0x80 | scalar >> 6 & 0x3F)); emit(UInt8(0x80 | scalar & 0x3F))
        default:
            emit(UInt8(0xF0 | scalar >> 18)); emit(UInt8(0x80 | scalar >> 12 & 0x3F))
            emit(UInt8(0x80 | scalar >> 6 & 0x3F)); emit(UInt8(0x80 | scalar & 0x3F))
        }
    }

    /// Bytes of the character whose lead byte is `lead` (1 for a stray continuation byte).
    @inline(__always)
    static func length(of lead: UInt8) -> Int {
        switch lead {
        case 0xC0...0xDF: 2
        case 0xE0...0xEF: 3
        case 0xF0...0xF7: 4
        default: 1
        }
    }

    /// The largest index <= `limit` that starts a character (never splits one).
    static func boundary(_ text: UnsafeBufferPointer<UInt8>, atMost limit: Int) -> Int {
        var cut = min(limit, text.count)
        var steps = 0
        while cut > 0, cut < text.count, text[cut] & 0xC0 == 0x80, steps < 3 {
            cut -= 1
            steps += 1
        }
        return cut
    }
}
