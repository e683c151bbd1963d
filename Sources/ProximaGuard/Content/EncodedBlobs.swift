/// Finds encoded blobs in a text (base64 and base64url, base32, hex, binary octets, percent-encoding,
/// `\uXXXX` escapes) and hands over what each decodes to when that reads as text, so the injection
/// rules see hidden instructions too. Blobs shorter than 16 characters are left alone.
enum EncodedBlobs {
    static let minimumLength = 16
    /// Decoded text longer than this is cut (the scan's budget already bounds the input).
    static let maximumDecoded = 64 * 1024

    static func scan(_ text: UnsafeBufferPointer<UInt8>, _ found: ([UInt8], Range<Int>) -> Void) {
        let count = text.count
        var index = 0
        let classes = ByteClass.table
        // A byte that may lie inside a blob: the blob alphabets, `\`, and a space after 0 or 1 (binary octets).
        @inline(__always) func mayBeInBlob(_ at: Int) -> Bool {
            let byte = text[at]
            return classes[Int(byte)] & ByteClass.blobRun != 0 || byte == 0x5C || (byte == 0x20 && (text[at - 1] == 0x30 || text[at - 1] == 0x31))
        }
        // Every blob is at least 16 bytes long (binary octets 35). `index` is always where a run starts or
        // outside any run, so when one of the 16 bytes from it cannot lie inside a blob, no blob starts at
        // or before that byte: continue after it (reading backwards from the 16th, as string searches do).
        // Prose is crossed reading about one byte in four; no byte is read twice by this test (`known`).
        var known = -1  // every byte after `index` up to `known` may lie inside a blob
        while index + minimumLength <= count {
            let top = index + minimumLength - 1
            var probe = top
            while probe > index, probe > known, mayBeInBlob(probe) { probe -= 1 }
            if probe > index, probe > known {
                index = probe + 1
                continue
            }
            known = top
            let byte = text[index]
            let bits = classes[Int(byte)]
            // Nothing starts at a byte outside the alphabets: one table read a byte.
            if bits & ByteClass.base64 == 0 && byte != 0x5C {
                index += 1
                continue
            }
            // Binary octets: 01001001 01100111 ...
            if byte == 0x30 || byte == 0x31, index == 0 || !isAlnum(text[index - 1]) {
                var cursor = index
                var groups = 0
                var decoded: [UInt8] = []
                while cursor + 8 <= count {
                    var value: UInt8 = 0
                    var ok = true
                    for offset in 0..<8 {
                        let bit = text[cursor + offset]
                        guard bit == 0x30 || bit == 0x31 else { ok = false; break }
                        value = value << 1 | (bit - 0x30)
                    }
                    guard ok, cursor + 8 == count || !isAlnum(text[cursor + 8]) else { break }
                    decoded.append(value)
                    groups += 1
                    cursor += 8
                    if cursor < count, text[cursor] == 0x20, cursor + 1 < count, text[cursor + 1] == 0x30 || text[cursor + 1] == 0x31 { cursor += 1 } else { break }
                }
                if groups >= 4 {
                    if isText(decoded) { found(decoded, index..<cursor) }
                    index = max(cursor, index + 1)
                    continue
                }
            }
            if bits & ByteClass.base64 != 0 || (byte == 0x5C && index + 1 < count && text[index + 1] == 0x75) {
                var end = index
                var hasPercent = false
                while end < count {
                    let b = text[end]
                    if classes[Int(b)] & ByteClass.blobRun != 0 {
                        if b == 0x25 { hasPercent = true }
                        end += 1
                    } else if b == 0x5C && end + 1 < count && text[end + 1] == 0x75 {
                        end += 2
                    } else {
                        break
                    }
                }
                end = min(end, count)
                if end - index >= minimumLength {
                    let run = UnsafeBufferPointer(rebasing: text[index..<end])
                    if let decoded = decode(run, percent: hasPercent), isText(decoded) { found(decoded, index..<end) }
                }
                index = max(end, index + 1)
                continue
            }
            index += 1
        }
    }

    @inline(__always) static func isAlnum(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || ((byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A)
    }

    @inline(__always) static func isBase64(_ byte: UInt8) -> Bool {
        isAlnum(byte) || byte == 0x2B || byte == 0x2F || byte == 0x3D || byte == 0x2D || byte == 0x5F
    }

    static func decode(_ run: UnsafeBufferPointer<UInt8>, percent: Bool) -> [UInt8]? {
        if percent || run.contains(0x5C) { return decodeEscapes(run) }
        var hex = true, base32 = true
        var letters = 0, digits = 0
        for byte in run {
            let lower = byte | 0x20
            if !((byte >= 0x30 && byte <= 0x39) || (lower >= 0x61 && lower <= 0x66)) { hex = false }
            if !((byte >= 0x41 && byte <= 0x5A) || (byte >= 0x32 && byte <= 0x37) || byte == 0x3D) { base32 = false }
            if isAlnum(byte) { if byte <= 0x39 { digits += 1 } else { letters += 1 } }
        }
        // Plain words and numbers are not blobs.
        if digits == 0 && !run.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) { return nil }
        if hex && run.count % 2 == 0 && digits > 0 { return decodeHex(run) }
        if base32, let decoded = decodeBase32(run), isText(decoded) { return decoded }
        return decodeBase64(run)
    }

    static func decodeHex(_ run: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(min(run.count / 2, maximumDecoded))
        var index = 0
        while index + 1 < run.count, out.count < maximumDecoded {
            guard let high = hexValue(run[index]), let low = hexValue(run[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    @inline(__always) static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x61...0x66: byte - 0x61 + 10
        case 0x41...0x46: byte - 0x41 + 10
        default: nil
        }
    }

    static func decodeBase64(_ run: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(min(run.count * 3 / 4, maximumDecoded))
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in run {
            let value: UInt32
            switch byte {
            case 0x41...0x5A: value = UInt32(byte - 0x41)
            case 0x61...0x7A: value = UInt32(byte - 0x61 + 26)
            case 0x30...0x39: value = UInt32(byte - 0x30 + 52)
            case 0x2B, 0x2D: value = 62
            case 0x2F, 0x5F: value = 63
            case 0x3D: continue
            default: return nil
            }
            accumulator = accumulator << 6 | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                if out.count >= maximumDecoded { break }
            }
        }
        return out
    }

    static func decodeBase32(_ run: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var accumulator: UInt64 = 0
        var bits = 0
        for byte in run {
            let value: UInt64
            switch byte {
            case 0x41...0x5A: value = UInt64(byte - 0x41)
            case 0x32...0x37: value = UInt64(byte - 0x32 + 26)
            case 0x3D: continue
            default: return nil
            }
            accumulator = accumulator << 5 | value
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt64(bits)))
                if out.count >= maximumDecoded { break }
            }
        }
        return out
    }

    /// %XX and \uXXXX escapes; other bytes pass through.
    static func decodeEscapes(_ run: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var escapes = 0
        var index = 0
        while index < run.count, out.count < maximumDecoded {
            let byte = run[index]
            if byte == 0x25, index + 2 < run.count, let high = hexValue(run[index + 1]), let low = hexValue(run[index + 2]) {
                out.append(high << 4 | low)
                escapes += 1
                index += 3
            } else if byte == 0x5C, index + 5 < run.count, run[index + 1] == 0x75,
                let a = hexValue(run[index + 2]), let b = hexValue(run[index + 3]), let c = hexValue(run[index + 4]), let d = hexValue(run[index + 5])
            {
                let scalar = UInt32(a) << 12 | UInt32(b) << 8 | UInt32(c) << 4 | UInt32(d)
                UTF8Scan.encode(scalar >= 0xD800 && scalar <= 0xDFFF ? 0xFFFD : scalar) { out.append($0) }
                escapes += 1
                index += 6
            } else {
                out.append(byte)
                index += 1
            }
        }
        return escapes >= 3 ? out : nil
    }

    /// Mostly printable text with some spaces: worth scanning.
    static func isText(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 8 else { return false }
        var printable = 0
        var spaces = 0
        for byte in bytes {
            if byte == 0x20 { spaces += 1 }
            if (byte >= 0x20 && byte < 0x7F) || byte == 0x0A || byte == 0x09 || byte >= 0xC2 { printable += 1 }
        }
        return printable * 100 >= bytes.count * 90 && spaces >= 1
    }
}
