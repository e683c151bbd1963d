import Foundation
import ProximaCore

/// Secrets and personal data (docs/security.md): provider keys and tokens by their structure,
/// private key blocks, JWTs (the header must decode to JSON with `alg`), payment cards (Luhn and
/// issuer prefixes), IBANs (country length and mod 97), emails, phone numbers (E.164 and grouped
/// national formats, never bare numbers, dates or versions), US SSNs (area, group and serial rules),
/// IPv4 and IPv6 addresses, and configured patterns. One pass over the UTF-8 bytes for the built-in
/// types; configured patterns are `NSRegularExpression`s compiled once.
public struct SensitiveDataDetector: Sendable {
    enum Entity: Int, CaseIterable {
        case email, phone, paymentCard, iban, usSSN, ipAddress, privateKey, jwt, awsAccessKey, githubToken, openAIKey, anthropicKey,
            googleKey, slackToken, stripeKey, huggingFaceToken

        var name: String {
            switch self {
            case .email: "email"
            case .phone: "phone"
            case .paymentCard: "payment_card"
            case .iban: "iban"
            case .usSSN: "us_ssn"
            case .ipAddress: "ip_address"
            case .privateKey: "private_key"
            case .jwt: "jwt"
            case .awsAccessKey: "aws_access_key"
            case .githubToken: "github_token"
            case .openAIKey: "openai_api_key"
            case .anthropicKey: "anthropic_api_key"
            case .googleKey: "google_api_key"
            case .slackToken: "slack_token"
            case .stripeKey: "stripe_key"
            case .huggingFaceToken: "huggingface_token"
            }
        }
    }

    /// A compiled configured pattern.
    final class CompiledPattern: @unchecked Sendable {
        let name: String
        let regex: NSRegularExpression
        init(name: String, regex: NSRegularExpression) {
            self.name = name
            self.regex = regex
        }
    }

    let enabled: UInt32
    let patterns: [CompiledPattern]

    /// `entities` empty: every built-in type (and every pattern). Otherwise only the named built-in
    /// types and patterns. Throws when a pattern does not compile.
    public init(entities: Set<String> = [], patterns: [GuardSettings.Pattern] = []) throws {
        var mask: UInt32 = 0
        for entity in Entity.allCases where entities.isEmpty || entities.contains(entity.name) { mask |= 1 << UInt32(entity.rawValue) }
        enabled = mask
        self.patterns = try patterns.filter { entities.isEmpty || entities.contains($0.name) }.map {
            CompiledPattern(name: $0.name, regex: try NSRegularExpression(pattern: $0.regex, options: []))
        }
    }

    public func findings(in text: Substring) -> [SensitiveFinding] {
        findings(in: text, limit: Int.max)
    }

    /// Findings in the first `limit` bytes of `text` (never splitting a character).
    public func findings(in text: Substring, limit: Int) -> [SensitiveFinding] {
        var text = text
        if let result = text.utf8.withContiguousStorageIfAvailable({ scan($0, limit: limit) }) { return result }
        text.makeContiguousUTF8()
        return text.utf8.withContiguousStorageIfAvailable { scan($0, limit: limit) } ?? []
    }

    /// `text` with every finding replaced by `[<entity>]`, and the findings (offsets in `text`).
    public func masked(_ text: Substring) -> (text: String, findings: [SensitiveFinding]) {
        let found = findings(in: text)
        guard !found.isEmpty else { return (String(text), []) }
        return (Self.apply(found, to: Array(text.utf8)), found)
    }

    static func apply(_ findings: [SensitiveFinding], to bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var cursor = 0
        for finding in findings where finding.range.lowerBound >= cursor && finding.range.upperBound <= bytes.count {
            out.append(contentsOf: bytes[cursor..<finding.range.lowerBound])
            out.append(0x5B)
            out.append(contentsOf: finding.entity.utf8)
            out.append(0x5D)
            cursor = finding.range.upperBound
        }
        out.append(contentsOf: bytes[cursor...])
        return String(decoding: out, as: UTF8.self)
    }

    func scan(_ buffer: UnsafeBufferPointer<UInt8>, limit: Int = Int.max) -> [SensitiveFinding] {
        let cut = UTF8Scan.boundary(buffer, atMost: max(0, limit))
        let bytes = UnsafeBufferPointer(rebasing: buffer[0..<cut])
        var found: [SensitiveFinding] = []
        Scanner(bytes: bytes, enabled: enabled).scan { entity, range in found.append(SensitiveFinding(entity: entity.name, range: range)) }
        if !patterns.isEmpty {
            let string = String(decoding: bytes, as: UTF8.self)
            let utf16 = Array(string.utf16)
            // UTF-16 offset to UTF-8 offset.
            var offsets = [Int](repeating: 0, count: utf16.count + 1)
            var utf8Offset = 0
            var index = 0
            while index < utf16.count {
                offsets[index] = utf8Offset
                let unit = utf16[index]
                if unit < 0x80 { utf8Offset += 1 } else if unit < 0x800 { utf8Offset += 2 } else if unit >= 0xD800 && unit <= 0xDBFF && index + 1 < utf16.count {
                    offsets[index + 1] = utf8Offset
                    utf8Offset += 4
                    index += 1
                } else { utf8Offset += 3 }
                index += 1
            }
            offsets[utf16.count] = utf8Offset
            for pattern in patterns {
                pattern.regex.enumerateMatches(in: string, options: [], range: NSRange(location: 0, length: utf16.count)) { match, _, _ in
                    guard let range = match?.range, range.location != NSNotFound, range.length > 0 else { return }
                    found.append(SensitiveFinding(entity: pattern.name, range: offsets[range.location]..<offsets[range.location + range.length]))
                }
            }
        }
        return Self.resolve(found)
    }

    /// Sorted by start; of overlapping findings the longer (then the earlier) stays.
    static func resolve(_ findings: [SensitiveFinding]) -> [SensitiveFinding] {
        guard findings.count > 1 else { return findings }
        let sorted = findings.sorted {
            $0.range.count != $1.range.count ? $0.range.count > $1.range.count : $0.range.lowerBound < $1.range.lowerBound
        }
        var kept: [SensitiveFinding] = []
        for finding in sorted where !kept.contains(where: { $0.range.overlaps(finding.range) }) { kept.append(finding) }
        return kept.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }

    /// Where the text still held back by a stream must start: the trailing run of characters that
    /// could belong to a finding still growing (a key, an email, a grouped number, a private key block
    /// without its end line yet).
    static func growingStart(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var start = bytes.count
        while start > 0 {
            let byte = bytes[start - 1]
            if Scanner.isEntityByte(byte) {
                start -= 1
                continue
            }
            if byte == 0x20, start >= 2 {
                // A space between groups of a number or an IBAN, or after one at the end (more may come).
                let before = bytes[start - 2]
                let groupish = { (b: UInt8) in (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || b == 0x29 || b == 0x28 || b == 0x2B }
                if groupish(before) && (start == bytes.count || groupish(bytes[start])) {
                    start -= 1
                    continue
                }
                // "ext. 123", "x 12": keep a phone's extension together with it.
            }
            break
        }
        // A private key block that has not ended (no complete end line after its header yet).
        if let begin = lastIndex(of: "-----BEGIN", in: bytes), StreamRedactor.keyEnd(in: UnsafeBufferPointer(rebasing: bytes[begin...])) == nil {
            start = min(start, begin)
        }
        return start
    }

    static func lastIndex(of literal: StaticString, in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let count = literal.utf8CodeUnitCount
        guard bytes.count >= count else { return nil }
        var index = bytes.count - count
        while index >= 0 {
            if Scanner.matches(bytes, at: index, literal) { return index }
            index -= 1
        }
        return nil
    }
}

/// The byte scanner behind `SensitiveDataDetector`.
struct Scanner {
    typealias Entity = SensitiveDataDetector.Entity
    let bytes: UnsafeBufferPointer<UInt8>
    let enabled: UInt32

    @inline(__always) func on(_ entity: Entity) -> Bool { enabled & (1 << UInt32(entity.rawValue)) != 0 }

    @inline(__always) static func isAlnum(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A) }
    @inline(__always) static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    @inline(__always) static func isUpper(_ b: UInt8) -> Bool { b >= 0x41 && b <= 0x5A }
    @inline(__always) static func isTokenByte(_ b: UInt8) -> Bool { isAlnum(b) || b == 0x2D || b == 0x5F }
    @inline(__always) static func isEntityByte(_ b: UInt8) -> Bool {
        isAlnum(b) || b == 0x2E || b == 0x5F || b == 0x2D || b == 0x2B || b == 0x40 || b == 0x3A || b == 0x2F || b == 0x3D || b == 0x25 || b == 0x28
            || b == 0x29
    }

    static func matches(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int, _ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard index >= 0, index + count <= bytes.count else { return false }
        let pointer = literal.utf8Start
        for offset in 0..<count where bytes[index + offset] != pointer[offset] { return false }
        return true
    }

    func scan(_ found: (Entity, Range<Int>) -> Void) {
        let count = bytes.count
        var index = 0
        let classes = ByteClass.table
        while index < count {
            // Every entity holds an anchor byte (a digit, A-Z, `_ - @ + ( :`) in its first word or right
            // after it. Lowercase words and other punctuation are crossed one table read a byte; at an
            // anchor, the scan resumes at the start of the word before it, as if it had read every byte
            // (nothing in between can start an entity: lowercase words followed by no anchor never do).
            let from = index
            while index + 8 <= count {
                let chunk = UnsafeRawPointer(bytes.baseAddress! + index).loadUnaligned(as: UInt64.self)
                let anchors = SWAR.entityAnchors(chunk)
                if anchors != 0 {
                    index += anchors.trailingZeroBitCount >> 3
                    break
                }
                index += 8
            }
            while index < count, classes[Int(bytes[index])] & ByteClass.entityAnchor == 0 { index += 1 }
            if index == count { break }
            while index > from, Self.isAlnum(bytes[index - 1]) { index -= 1 }
            let byte = bytes[index]
            let bits = classes[Int(byte)]
            if bits & ByteClass.entityStart == 0 {
                index += 1
                continue
            }
            let boundary = index == 0 || !(Self.isAlnum(bytes[index - 1]) || bytes[index - 1] == 0x5F)
            if byte == 0x40 {
                if on(.email), let range = email(at: index) { found(.email, range) }
                index += 1
                continue
            }
            if byte == 0x2D, on(.privateKey), Self.matches(bytes, at: index, "-----BEGIN "), let range = privateKey(at: index) {
                found(.privateKey, range)
                index = range.upperBound
                continue
            }
            guard boundary else {
                index += 1
                continue
            }
            if bits & ByteClass.tokenStart != 0, let (entity, end) = token(at: index) {
                found(entity, index..<end)
                index = end
                continue
            }
            if Self.isUpper(byte), on(.iban), let end = iban(at: index) {
                found(.iban, index..<end)
                index = end
                continue
            }
            if Self.isDigit(byte) || byte == 0x2B || byte == 0x28 || ((byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x66) || byte == 0x3A {
                let previous = index > 0 ? bytes[index - 1] : 0x20
                let cleanStart = previous != 0x2E && previous != 0x2D && previous != 0x2F && previous != 0x2B && previous != 0x3A
                if cleanStart {
                    if on(.ipAddress), let end = (bits & ByteClass.digit != 0 ? ipv4(at: index) : nil) ?? (mayBeIPv6(at: index) ? ipv6(at: index) : nil) {
                        found(.ipAddress, index..<end)
                        index = end
                        continue
                    }
                    if Self.isDigit(byte), on(.usSSN), let end = ssn(at: index) {
                        found(.usSSN, index..<end)
                        index = end
                        continue
                    }
                    if Self.isDigit(byte), on(.paymentCard), digits(at: index, atLeast: 12, in: 0x2D), let end = card(at: index) {
                        found(.paymentCard, index..<end)
                        index = end
                        continue
                    }
                    if Self.isDigit(byte) || byte == 0x2B || byte == 0x28, on(.phone), phoneDigits(at: index), let end = phone(at: index) {
                        found(.phone, index..<end)
                        index = end
                        continue
                    }
                }
            }
            // A number that is no entity: skip all its groups (no finding starts inside it).
            if Self.isDigit(byte) {
                index = numberEnd(at: index)
                continue
            }
            // Skip the rest of this word: nothing starts inside it.
            index += 1
            if bits & ByteClass.alnum != 0 {
                while index < count, classes[Int(bytes[index])] & ByteClass.alnum != 0 { index += 1 }
            }
        }
    }

    // MARK: Prefilters (cheap necessary conditions, so the full parsers run only where they can match)

    /// A hex group of at most four and a colon, or a colon: where an IPv6 address can start.
    @inline(__always)
    func mayBeIPv6(at index: Int) -> Bool {
        let classes = ByteClass.table
        var cursor = index
        while cursor < bytes.count, cursor - index < 5, classes[Int(bytes[cursor])] & ByteClass.hex != 0 { cursor += 1 }
        return cursor < bytes.count && bytes[cursor] == 0x3A
    }

    /// At least `minimum` digits in the run of digits and single `separator`s or spaces from `index`
    /// (what `groups` would read, without building its arrays).
    @inline(__always)
    func digits(at index: Int, atLeast minimum: Int, in separator: UInt8) -> Bool {
        var cursor = index
        var digits = 0
        while cursor < bytes.count {
            let b = bytes[cursor]
            if Self.isDigit(b) {
                digits += 1
                if digits >= minimum { return true }
            } else if b != 0x20 && b != separator {
                return false
            }
            cursor += 1
        }
        return false
    }

    /// At least 8 digits among the next 80 bytes of a phone-shaped run: `phone` needs 8 (with `+`) or 10.
    @inline(__always)
    func phoneDigits(at index: Int) -> Bool {
        let classes = ByteClass.table
        var cursor = index
        var digits = 0
        while cursor < bytes.count, cursor - index < 80 {
            let bits = classes[Int(bytes[cursor])]
            if bits & ByteClass.phoneRun == 0 { return false }
            if bits & ByteClass.digit != 0 {
                digits += 1
                if digits >= 8 { return true }
            }
            cursor += 1
        }
        return false
    }

    /// Where `groups(at:separators: space - . /)` ends, without building its arrays.
    func numberEnd(at index: Int) -> Int {
        var cursor = index
        var digits = 0
        var current = 0
        while cursor < bytes.count, digits <= 20 {
            let b = bytes[cursor]
            if Self.isDigit(b) {
                digits += 1
                current += 1
                cursor += 1
            } else if b == 0x20 || b == 0x2D || b == 0x2E || b == 0x2F, current > 0, cursor + 1 < bytes.count, Self.isDigit(bytes[cursor + 1]) {
                current = 0
                cursor += 1
            } else {
                break
            }
        }
        return cursor
    }

    // MARK: Keys and tokens

    /// The end of a run of `allowed` bytes from `start`, at most `maximum` long.
    @inline(__always)
    func run(from start: Int, maximum: Int = 512, _ allowed: (UInt8) -> Bool) -> Int {
        var end = start
        while end < bytes.count, end - start < maximum, allowed(bytes[end]) { end += 1 }
        return end
    }

    func token(at index: Int) -> (Entity, Int)? {
        let byte = bytes[index]
        let alnum = Self.isAlnum
        switch byte {
        case 0x41:  // A
            if on(.awsAccessKey), Self.matches(bytes, at: index, "AKIA") || Self.matches(bytes, at: index, "ASIA") {
                let end = run(from: index + 4, maximum: 17) { Self.isUpper($0) || Self.isDigit($0) }
                if end - index == 20, end == bytes.count || !alnum(bytes[end]) { return (.awsAccessKey, end) }
            }
            if on(.googleKey), Self.matches(bytes, at: index, "AIza") {
                let end = run(from: index + 4, maximum: 36, Self.isTokenByte)
                if end - index == 39, end == bytes.count || !Self.isTokenByte(bytes[end]) { return (.googleKey, end) }
            }
        case 0x67:  // g
            if on(.githubToken), index + 4 <= bytes.count, bytes[index + 1] == 0x68, bytes[index + 3] == 0x5F, [0x70, 0x6F, 0x75, 0x73, 0x72].contains(bytes[index + 2]) {
                let end = run(from: index + 4, maximum: 256, alnum)
                if end - index - 4 >= 36, end == bytes.count || !Self.isTokenByte(bytes[end]) { return (.githubToken, end) }
            }
            if on(.githubToken), Self.matches(bytes, at: index, "github_pat_") {
                let end = run(from: index + 11, maximum: 256) { alnum($0) || $0 == 0x5F }
                if end - index - 11 >= 22 { return (.githubToken, end) }
            }
        case 0x73:  // s
            if Self.matches(bytes, at: index, "sk-ant-") {
                guard on(.anthropicKey) else { return nil }
                let end = run(from: index + 7, maximum: 256, Self.isTokenByte)
                if end - index - 7 >= 32 { return (.anthropicKey, end) }
                return nil
            }
            if on(.openAIKey), Self.matches(bytes, at: index, "sk-") {
                let end = run(from: index + 3, maximum: 256, Self.isTokenByte)
                let body = UnsafeBufferPointer(rebasing: bytes[(index + 3)..<end])
                let named = Self.matches(bytes, at: index, "sk-proj-") || Self.matches(bytes, at: index, "sk-svcacct-") || Self.matches(bytes, at: index, "sk-admin-")
                let mixed = body.contains(where: Self.isDigit) && body.contains(where: Self.isUpper) && body.contains(where: { $0 >= 0x61 && $0 <= 0x7A })
                if body.count >= 20, named || mixed { return (.openAIKey, end) }
            }
            if let end = stripe(at: index) { return (.stripeKey, end) }
        case 0x72, 0x70:  // r, p
            if let end = stripe(at: index) { return (.stripeKey, end) }
        case 0x78:  // x
            if on(.slackToken), Self.matches(bytes, at: index, "xox"), index + 4 < bytes.count, [0x62, 0x61, 0x70, 0x72, 0x73].contains(bytes[index + 3]),
                bytes[index + 4] == 0x2D
            {
                let end = run(from: index + 5, maximum: 256) { alnum($0) || $0 == 0x2D }
                if end - index - 5 >= 10 { return (.slackToken, end) }
            }
        case 0x68:  // h
            if on(.huggingFaceToken), Self.matches(bytes, at: index, "hf_") {
                let end = run(from: index + 3, maximum: 128, alnum)
                if end - index - 3 >= 30, end == bytes.count || !Self.isTokenByte(bytes[end]) { return (.huggingFaceToken, end) }
            }
        case 0x65:  // e
            if on(.jwt), Self.matches(bytes, at: index, "eyJ"), let end = jwt(at: index) { return (.jwt, end) }
        default:
            break
        }
        return nil
    }

    func stripe(at index: Int) -> Int? {
        guard on(.stripeKey), index + 8 <= bytes.count, bytes[index + 1] == 0x6B, bytes[index + 2] == 0x5F,
            [0x73, 0x72, 0x70].contains(bytes[index])
        else { return nil }
        let mode = index + 3
        guard Self.matches(bytes, at: mode, "live_") || Self.matches(bytes, at: mode, "test_") else { return nil }
        let end = run(from: mode + 5, maximum: 256, Self.isAlnum)
        return end - mode - 5 >= 16 ? end : nil
    }

    func jwt(at index: Int) -> Int? {
        let isURL = { (b: UInt8) in Self.isAlnum(b) || b == 0x2D || b == 0x5F }
        let headerEnd = run(from: index, maximum: 2_048, isURL)
        guard headerEnd - index >= 10, headerEnd < bytes.count, bytes[headerEnd] == 0x2E else { return nil }
        let payloadEnd = run(from: headerEnd + 1, maximum: 16_384, isURL)
        guard payloadEnd - headerEnd - 1 >= 10, payloadEnd < bytes.count, bytes[payloadEnd] == 0x2E else { return nil }
        let signatureEnd = run(from: payloadEnd + 1, maximum: 2_048, isURL)
        guard let header = EncodedBlobs.decodeBase64(UnsafeBufferPointer(rebasing: bytes[index..<headerEnd])) else { return nil }
        // {"alg": ...} in any order of keys.
        let needle = Array("\"alg\"".utf8)
        guard header.first == 0x7B, header.count >= needle.count else { return nil }
        for start in 0...(header.count - needle.count) where header[start..<(start + needle.count)].elementsEqual(needle) { return signatureEnd }
        return nil
    }

    func privateKey(at index: Int) -> Range<Int>? {
        // -----BEGIN [A-Z ]* PRIVATE KEY-----
        var cursor = index + 11
        while cursor < bytes.count, cursor - index < 64, Self.isUpper(bytes[cursor]) || bytes[cursor] == 0x20 { cursor += 1 }
        guard Self.matches(bytes, at: cursor, "-----") else { return nil }
        var named = false
        var probe = index + 11
        while probe + 11 <= cursor, !named {
            named = Self.matches(bytes, at: probe, "PRIVATE KEY")
            probe += 1
        }
        guard named else { return nil }
        var search = cursor + 5
        while search + 8 <= bytes.count {
            if bytes[search] == 0x2D, Self.matches(bytes, at: search, "-----END ") {
                var end = search + 9
                while end < bytes.count, end - search < 64, bytes[end] != 0x0A {
                    if Self.matches(bytes, at: end, "KEY-----") { return index..<(end + 8) }
                    end += 1
                }
            }
            search += 1
        }
        // No end line (yet): everything after the header is key material.
        return index..<bytes.count
    }

    // MARK: Email

    func email(at: Int) -> Range<Int>? {
        var start = at
        while start > 0 {
            let b = bytes[start - 1]
            guard Self.isAlnum(b) || b == 0x2E || b == 0x5F || b == 0x25 || b == 0x2B || b == 0x2D else { break }
            start -= 1
        }
        while start < at, bytes[start] == 0x2E { start += 1 }
        guard start < at, at - start <= 64 else { return nil }
        var end = at + 1
        var labels = 0
        var lastLabelStart = end
        var lastLabelLetters = true
        while end < bytes.count {
            let labelStart = end
            var letters = true
            while end < bytes.count, Self.isAlnum(bytes[end]) || bytes[end] == 0x2D {
                if !((bytes[end] | 0x20) >= 0x61 && (bytes[end] | 0x20) <= 0x7A) { letters = false }
                end += 1
            }
            guard end > labelStart, bytes[labelStart] != 0x2D, bytes[end - 1] != 0x2D else {
                end = labelStart
                break
            }
            labels += 1
            lastLabelStart = labelStart
            lastLabelLetters = letters
            if end + 1 < bytes.count, bytes[end] == 0x2E, Self.isAlnum(bytes[end + 1]) { end += 1 } else { break }
        }
        guard labels >= 2, lastLabelLetters, end - lastLabelStart >= 2, end - at <= 255 else { return nil }
        return start..<end
    }

    // MARK: Numbers

    func ipv4(at index: Int) -> Int? {
        var cursor = index
        for part in 0..<4 {
            var value = 0
            let start = cursor
            while cursor < bytes.count, Self.isDigit(bytes[cursor]), cursor - start < 4 {
                value = value * 10 + Int(bytes[cursor] - 0x30)
                cursor += 1
            }
            let length = cursor - start
            guard length >= 1, length <= 3, value <= 255, !(length > 1 && bytes[start] == 0x30) else { return nil }
            if part < 3 {
                guard cursor < bytes.count, bytes[cursor] == 0x2E else { return nil }
                cursor += 1
            }
        }
        if cursor < bytes.count, Self.isAlnum(bytes[cursor]) || (bytes[cursor] == 0x2E && cursor + 1 < bytes.count && Self.isDigit(bytes[cursor + 1])) { return nil }
        return cursor
    }

    func ipv6(at index: Int) -> Int? {
        let isHex = { (b: UInt8) in Self.isDigit(b) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x66) }
        var cursor = index
        var groups = 0
        var compressed = false
        var groupLength = 0
        var colonRun = 0
        while cursor < bytes.count, cursor - index < 45 {
            let b = bytes[cursor]
            if isHex(b) {
                groupLength += 1
                if groupLength > 4 { return nil }
                if groupLength == 1 { groups += 1 }
                colonRun = 0
            } else if b == 0x3A {
                colonRun += 1
                if colonRun == 2 {
                    if compressed { return nil }
                    compressed = true
                } else if colonRun > 2 { return nil }
                groupLength = 0
            } else { break }
            cursor += 1
        }
        if cursor < bytes.count, Self.isAlnum(bytes[cursor]) || bytes[cursor] == 0x5F { return nil }
        // A trailing single colon is punctuation ("at fe80::1:").
        if colonRun == 1 { cursor -= 1 }
        guard cursor - index >= 6 else { return nil }
        if compressed { return groups >= 2 && groups <= 7 ? cursor : nil }
        return groups == 8 ? cursor : nil
    }

    func ssn(at index: Int) -> Int? {
        guard index + 11 <= bytes.count, bytes[index + 3] == 0x2D, bytes[index + 6] == 0x2D else { return nil }
        var digits = [Int](repeating: 0, count: 9)
        var d = 0
        for offset in 0..<11 where offset != 3 && offset != 6 {
            let b = bytes[index + offset]
            guard Self.isDigit(b) else { return nil }
            digits[d] = Int(b - 0x30)
            d += 1
        }
        if index + 11 < bytes.count, Self.isAlnum(bytes[index + 11]) || (bytes[index + 11] == 0x2D && index + 12 < bytes.count && Self.isDigit(bytes[index + 12])) {
            return nil
        }
        let area = digits[0] * 100 + digits[1] * 10 + digits[2]
        let group = digits[3] * 10 + digits[4]
        let serial = digits[5] * 1000 + digits[6] * 100 + digits[7] * 10 + digits[8]
        guard area != 0, area != 666, area < 900, group != 0, serial != 0 else { return nil }
        return index + 11
    }

    /// Digit groups separated by one separator each: (digits, group lengths, separators, end).
    func groups(at index: Int, separators allowed: (UInt8) -> Bool, maxDigits: Int = 19) -> (digits: [UInt8], lengths: [Int], separators: [UInt8], end: Int) {
        var digits: [UInt8] = []
        var lengths: [Int] = []
        var separators: [UInt8] = []
        var cursor = index
        var current = 0
        while cursor < bytes.count, digits.count <= maxDigits + 1 {
            let b = bytes[cursor]
            if Self.isDigit(b) {
                digits.append(b - 0x30)
                current += 1
                cursor += 1
            } else if allowed(b), current > 0, cursor + 1 < bytes.count, Self.isDigit(bytes[cursor + 1]) {
                lengths.append(current)
                separators.append(b)
                current = 0
                cursor += 1
            } else {
                break
            }
        }
        if current > 0 { lengths.append(current) }
        return (digits, lengths, separators, cursor)
    }

    func card(at index: Int) -> Int? {
        let parsed = groups(at: index) { $0 == 0x20 || $0 == 0x2D }
        let digits = parsed.digits
        guard digits.count >= 12, digits.count <= 19 else { return nil }
        if parsed.end < bytes.count, Self.isAlnum(bytes[parsed.end]) { return nil }
        if let first = parsed.separators.first, parsed.separators.contains(where: { $0 != first }) { return nil }
        // Groups as printed on cards (4-4-4-4, 4-6-5, the short last group of 13, 14 and 19 digit numbers).
        if parsed.lengths.count > 1, parsed.lengths.dropLast().contains(where: { $0 < 4 || $0 > 6 }) { return nil }
        guard Self.knownIssuer(digits), Self.luhn(digits) else { return nil }
        return parsed.end
    }

    static func knownIssuer(_ d: [UInt8]) -> Bool {
        func prefix(_ n: Int) -> Int { d.prefix(n).reduce(0) { $0 * 10 + Int($1) } }
        let two = prefix(2), three = prefix(3), four = prefix(4), six = prefix(6)
        let length = d.count
        guard length >= 13 || (56...58).contains(two) || [5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763].contains(four) else { return false }
        if d[0] == 4 { return [13, 16, 19].contains(length) }  // Visa
        if (51...55).contains(two) || (222_100...272_099).contains(six) { return length == 16 }  // Mastercard
        if two == 34 || two == 37 { return length == 15 }  // American Express
        if four == 6011 || (644...649).contains(three) || two == 65 || (622_126...622_925).contains(six) { return length >= 16 }  // Discover
        if (3500...3599).contains(four) { return length >= 16 }  // JCB (assigned 3528-3589; test generators use all of 35)
        if four == 1800 || four == 2131 { return length == 15 }  // JCB, 15 digits
        if (300...305).contains(three) || two == 36 || two == 38 || two == 39 { return length >= 14 }  // Diners Club
        if two == 62 || two == 81 { return length >= 16 }  // UnionPay
        if [5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763].contains(four) || (56...58).contains(two) { return length >= 12 }  // Maestro
        if two == 22 && (2200...2204).contains(four) { return length == 16 }  // Mir
        return false
    }

    static func luhn(_ digits: [UInt8]) -> Bool {
        var sum = 0
        for (offset, digit) in digits.reversed().enumerated() {
            var value = Int(digit)
            if offset % 2 == 1 {
                value *= 2
                if value > 9 { value -= 9 }
            }
            sum += value
        }
        return sum % 10 == 0
    }

    func phone(at index: Int) -> Int? {
        var cursor = index
        let plus = bytes[cursor] == 0x2B
        if plus { cursor += 1 }
        var digitCount = 0
        var groupLengths: [Int] = []
        var separators: [UInt8] = []
        var current = 0
        var parenthesized = false
        while cursor < bytes.count, digitCount <= 16 {
            let b = bytes[cursor]
            if Self.isDigit(b) {
                digitCount += 1
                current += 1
                cursor += 1
                continue
            }
            // One separator, or ") " / "(" around an area code.
            var next = cursor
            if b == 0x28 { parenthesized = true; next += 1 } else if b == 0x29 {
                guard parenthesized else { break }
                next += 1
                if next < bytes.count, bytes[next] == 0x20 || bytes[next] == 0x2D { next += 1 }
            } else if b == 0x20 || b == 0x2D || b == 0x2E {
                next += 1
                if next < bytes.count, bytes[next] == 0x28 { parenthesized = true; next += 1 }
            } else { break }
            guard next < bytes.count, Self.isDigit(bytes[next]) else { break }
            if current > 0 { groupLengths.append(current) }
            separators.append(b)
            current = 0
            cursor = next
        }
        if current > 0 { groupLengths.append(current) }
        var end = cursor
        guard end == bytes.count || !Self.isAlnum(bytes[end]) || bytes[end] == 0x78 else { return nil }
        // Extension: x123, ext. 123
        if end < bytes.count, bytes[end] == 0x78 || (Self.matches(bytes, at: end, " ext") || Self.matches(bytes, at: end, " x")) {
            var ext = end
            if bytes[ext] == 0x20 { ext += 1 }
            ext += bytes[ext] == 0x78 ? 1 : 3
            if ext < bytes.count, bytes[ext] == 0x2E { ext += 1 }
            if ext < bytes.count, bytes[ext] == 0x20 { ext += 1 }
            let digitsEnd = run(from: ext, maximum: 6, Self.isDigit)
            if digitsEnd > ext, digitsEnd == bytes.count || !Self.isAlnum(bytes[digitsEnd]) { end = digitsEnd } else if bytes[end] == 0x78 { return nil }
        }
        guard let last = groupLengths.last else { return nil }
        if plus {
            return digitCount >= 8 && digitCount <= 15 ? end : nil
        }
        // National formats: 10 to 13 digits, grouped (or a bare number with a trunk prefix 0, not 00),
        // never dates (2024-01-15-...) or versions.
        guard digitCount >= 10, digitCount <= 13 else { return nil }
        if groupLengths.count == 1 {
            return bytes[index] == 0x30 && bytes[index + 1] != 0x30 && digitCount <= 11 ? end : nil
        }
        guard last >= 3, groupLengths.dropFirst().allSatisfy({ $0 >= 2 }), groupLengths.allSatisfy({ $0 <= 8 }) else { return nil }
        if groupLengths[0] == 4, groupLengths[1] == 2 { return nil }
        // Card-like blocks of four (an invalid card, an account number) are not phone numbers.
        if groupLengths.count >= 3, groupLengths.allSatisfy({ $0 == 4 }) { return nil }
        if separators.allSatisfy({ $0 == 0x2E }), groupLengths != [3, 3, 4] { return nil }
        return end
    }

    // MARK: IBAN

    static let ibanLengths: [UInt16: Int] = {
        let table = "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DK18 DO28 EE20 EG29 ES24 FI18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 MC27 MD24 ME22 MK19 MR27 MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 QA29 RO24 RS22 SA24 SC31 SE24 SI19 SK24 SM27 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20"
        var lengths: [UInt16: Int] = [:]
        for entry in table.split(separator: " ") {
            let bytes = Array(entry.utf8)
            lengths[UInt16(bytes[0]) << 8 | UInt16(bytes[1])] = Int(bytes[2] - 0x30) * 10 + Int(bytes[3] - 0x30)
        }
        return lengths
    }()

    func iban(at index: Int) -> Int? {
        guard index + 15 <= bytes.count, Self.isUpper(bytes[index + 1]), Self.isDigit(bytes[index + 2]), Self.isDigit(bytes[index + 3]),
            let length = Self.ibanLengths[UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1])]
        else { return nil }
        var chars: [UInt8] = []
        chars.reserveCapacity(34)
        var cursor = index
        while cursor < bytes.count, chars.count < length {
            let b = bytes[cursor]
            if Self.isDigit(b) || Self.isUpper(b) {
                chars.append(b)
                cursor += 1
            } else if b == 0x20, cursor + 1 < bytes.count, Self.isDigit(bytes[cursor + 1]) || Self.isUpper(bytes[cursor + 1]), chars.count % 4 == 0 {
                cursor += 1
            } else {
                break
            }
        }
        guard chars.count == length, cursor == bytes.count || !Self.isAlnum(bytes[cursor]) else { return nil }
        // Move the first four to the end, letters to numbers, mod 97 must be 1.
        var remainder = 0
        for b in chars[4...] + chars[0..<4] {
            if Self.isDigit(b) {
                remainder = (remainder * 10 + Int(b - 0x30)) % 97
            } else {
                remainder = (remainder * 100 + Int(b - 0x41 + 10)) % 97
            }
        }
        return remainder == 1 ? cursor : nil
    }
}
