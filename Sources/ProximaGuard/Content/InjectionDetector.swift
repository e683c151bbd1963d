import ProximaCore

/// Prompt-injection and jailbreak detection (docs/security.md): normalizes obfuscations (invisible
/// characters, tag characters, homoglyphs, spaced letters, leetspeak, encoded blobs) and scores the
/// instruction-like signals that remain with keyword rules in several languages. A hand-written
/// scanner over UTF-8 bytes: no regular expressions, a few allocations per text.
public struct InjectionDetector: Sendable {
    public init() {}

    /// Scans at most `budget` bytes of `text`. When the text is longer, the signals include
    /// `scan_truncated` (the rest was not read).
    public func scan(_ text: Substring, channel: MessageChannel, budget: Int) -> InjectionScan {
        var utf8 = text.utf8
        let truncated = utf8.count > max(0, budget)
        var result: InjectionScan
        if let fast = utf8.withContiguousStorageIfAvailable({ buffer in
            Self.scan(UnsafeBufferPointer(rebasing: buffer[0..<UTF8Scan.boundary(buffer, atMost: max(0, budget))]), channel: channel, depth: 0)
        }) {
            result = fast
        } else {
            var copy = text
            copy.makeContiguousUTF8()
            utf8 = copy.utf8
            result = utf8.withContiguousStorageIfAvailable { buffer in
                Self.scan(UnsafeBufferPointer(rebasing: buffer[0..<UTF8Scan.boundary(buffer, atMost: max(0, budget))]), channel: channel, depth: 0)
            } ?? InjectionScan()
        }
        if truncated { result.signals.append("scan_truncated") }
        return result
    }

    // MARK: - The scan

    struct Token {
        var mask: ConceptMask
        var word: Int32
        var sentence: Int32
        var start: Int32
        var end: Int32
    }

    /// One signal found: its best weight (after the channel), category and spans.
    struct Hit {
        var signal: String
        var category: GuardCategory
        var weight: Double
    }

    static func scan(_ text: UnsafeBufferPointer<UInt8>, channel: MessageChannel, depth: Int) -> InjectionScan {
        if text.isEmpty { return InjectionScan() }
        let normalized = NormalizedText(text)
        var hits: [Hit] = []
        var spans: [Range<Int>] = []
        let indirect = channel == .tool
        func weigh(_ weight: Double, indirectWeight: Double? = nil) -> Double {
            switch channel {
            case .tool: min(0.95, indirectWeight ?? weight * 1.4)
            case .system: weight * 0.5
            case .user, .assistant: weight
            }
        }
        func add(_ signal: String, _ category: GuardCategory, _ weight: Double) {
            if let index = hits.firstIndex(where: { $0.signal == signal }) {
                hits[index].weight = max(hits[index].weight, weight)
            } else {
                hits.append(Hit(signal: signal, category: category, weight: weight))
            }
        }

        // Obfuscation signals found while normalizing.
        if normalized.invisible > 0 { add("invisible_characters", .promptInjection, weigh(0.1)) }
        if normalized.tags > 0 {
            add("tag_characters", .promptInjection, weigh(normalized.tags >= 4 ? 0.45 : 0.2))
            if let span = normalized.tagSpan { spans.append(span) }
        }
        if normalized.homoglyphs > 0 { add("homoglyphs", .promptInjection, weigh(0.2)) }

        // Words to concepts, then rules over the concepts.
        normalized.bytes.withUnsafeBufferPointer { norm in
            var leet = false
            var spaced = false
            let tokens = Tokenizer.tokens(norm, original: text, normalized: normalized, leet: &leet, spaced: &spaced)
            if leet { add("leetspeak", .promptInjection, weigh(0.1)) }
            if spaced { add("spaced_letters", .promptInjection, weigh(0.1)) }
            if !tokens.isEmpty {
                RuleMatcher.match(tokens) { rule, range in
                    add(rule.signal, rule.category, weigh(rule.weight, indirectWeight: rule.indirectWeight))
                    spans.append(normalized.originalSpan(range, in: text))
                }
            }
            Structure.scan(norm) { signal, category, weight, range in
                add(signal, category, weigh(weight))
                spans.append(normalized.originalSpan(range, in: text))
            }
        }

        // Encoded blobs: what they decode to is scanned too.
        if depth < 2 {
            EncodedBlobs.scan(text) { decoded, range in
                let inner = decoded.withUnsafeBufferPointer { scan($0, channel: channel, depth: depth + 1) }
                guard inner.score > 0 else { return }
                add("encoded_instructions", .promptInjection, min(0.95, max(inner.score, weigh(0.3))))
                for signal in inner.signals where signal != "encoded_instructions" {
                    add(signal, inner.category ?? .promptInjection, 0)
                }
                spans.append(range)
            }
        }

        guard !hits.isEmpty else { return InjectionScan() }
        var remaining = 1.0
        for hit in hits { remaining *= 1 - min(max(hit.weight, 0), 1) }
        let score = min(1, max(0, 1 - remaining))
        // The category with the most weight; extraction, then jailbreak, win ties.
        var category: GuardCategory?
        if score > 0 {
            if indirect {
                category = .indirectInjection
            } else {
                var best = -1.0
                for candidate in [GuardCategory.systemPromptExtraction, .jailbreak, .promptInjection] {
                    let total = hits.filter { $0.category == candidate }.reduce(0) { $0 + $1.weight }
                    if total > best + 1e-9 { best = total; category = candidate }
                }
                if best <= 0 { category = .promptInjection }
            }
        }
        let ordered = hits.sorted { $0.weight > $1.weight }
        return InjectionScan(score: score, category: category, signals: ordered.map(\.signal), spans: merge(spans))
    }

    static func merge(_ spans: [Range<Int>]) -> [Range<Int>] {
        let sorted = spans.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        var merged: [Range<Int>] = []
        for span in sorted {
            if let last = merged.last, span.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, span.upperBound)
            } else {
                merged.append(span)
            }
        }
        return merged
    }
}

/// The keyword trie: words to concept masks. Built once (`shared`) into buffers that live as long as
/// the process, read without bounds checks on the hot path. The first two bytes of a word index a
/// dense table (most words leave the trie there); deeper nodes keep sorted edge lists. Each node holds
/// the masks of every stem along its path, so a lookup ORs nothing on the way down.
struct Lexicon: @unchecked Sendable {
    static let shared = Lexicon(InjectionLexicon.entries)

    /// Per node: the stems along its path (itself included), and the word ending here.
    let pathMask: UnsafeBufferPointer<ConceptMask>
    let exactMask: UnsafeBufferPointer<ConceptMask>
    /// Per node: the stems ending exactly here.
    let prefixMask: UnsafeBufferPointer<ConceptMask>
    /// Per node: its first edge and how many.
    let edgeStart: UnsafeBufferPointer<Int32>
    let edgeCount: UnsafeBufferPointer<Int32>
    let edgeByteTable: UnsafeBufferPointer<UInt8>
    let edgeTargetTable: UnsafeBufferPointer<Int32>
    /// The root's children by byte (-1: none).
    let rootTable: UnsafeBufferPointer<Int32>
    /// The node after two bytes, by `first << 8 | second` (-1: none).
    let pairTable: UnsafeBufferPointer<Int32>
    /// Every node's children for the bytes 0x60-0x7F (a-z), 32 a node (-1: none); other bytes go
    /// through the edge lists. About 270 KB for the ~4,200 nodes.
    let letterTable: UnsafeBufferPointer<Int16>
    /// Per node, one byte (4 KB, stays in the first-level cache): 1 when its path holds a stem, 2 when
    /// a word ends here. Most words leave the trie where both are 0, and read no mask at all.
    let hasMask: UnsafeBufferPointer<UInt8>

    init(_ entries: [(String, UInt64, UInt64)]) {
        // Build with dictionaries, then flatten.
        var children: [[UInt8: Int]] = [[:]]
        var exact = [ConceptMask()]
        var prefix = [ConceptMask()]
        for (words, a, b) in entries {
            let mask = ConceptMask(a: a, b: b)
            for word in words.split(separator: " ") {
                var bytes = Array(word.utf8)
                let isPrefix = bytes.last == UInt8(ascii: "*")
                if isPrefix { bytes.removeLast() }
                var node = 0
                for byte in bytes {
                    if let next = children[node][byte] {
                        node = next
                    } else {
                        children.append([:]); exact.append(ConceptMask()); prefix.append(ConceptMask())
                        children[node][byte] = children.count - 1
                        node = children.count - 1
                    }
                }
                if isPrefix { prefix[node] = prefix[node] | mask } else { exact[node] = exact[node] | mask }
            }
        }
        // Number the nodes breadth first: the shallow nodes every word visits sit together in memory.
        var order = [0]
        var cursor = 0
        while cursor < order.count {
            for (_, target) in children[order[cursor]].sorted(by: { $0.key < $1.key }) { order.append(target) }
            cursor += 1
        }
        var renumbered = [Int](repeating: 0, count: order.count)
        for (new, old) in order.enumerated() { renumbered[old] = new }
        children = order.map { children[$0].mapValues { renumbered[$0] } }
        exact = order.map { exact[$0] }
        prefix = order.map { prefix[$0] }
        var path = prefix
        var starts: [Int32] = [], counts: [Int32] = [], edgeBytes: [UInt8] = [], edgeTargets: [Int32] = []
        for index in 0..<children.count {
            starts.append(Int32(edgeBytes.count))
            counts.append(Int32(children[index].count))
            for (byte, target) in children[index].sorted(by: { $0.key < $1.key }) {
                edgeBytes.append(byte)
                edgeTargets.append(Int32(target))
            }
        }
        // Children are created after their parents: one pass in creation order accumulates the stems.
        for index in 0..<children.count {
            for (_, target) in children[index] { path[target] = path[target] | path[index] }
        }
        var root = [Int32](repeating: -1, count: 256)
        var pairs = [Int32](repeating: -1, count: 65_536)
        for (first, node) in children[0] {
            root[Int(first)] = Int32(node)
            for (second, next) in children[node] { pairs[Int(first) << 8 | Int(second)] = Int32(next) }
        }
        pathMask = Self.freeze(path)
        exactMask = Self.freeze(exact)
        prefixMask = Self.freeze(prefix)
        edgeStart = Self.freeze(starts)
        edgeCount = Self.freeze(counts)
        edgeByteTable = Self.freeze(edgeBytes)
        edgeTargetTable = Self.freeze(edgeTargets)
        rootTable = Self.freeze(root)
        pairTable = Self.freeze(pairs)
        precondition(children.count < Int(Int16.max), "the keyword trie outgrew its 16-bit letter table")
        var letters = [Int16](repeating: -1, count: children.count * 32)
        for (node, edges) in children.enumerated() {
            for (byte, target) in edges where byte & 0xE0 == 0x60 { letters[node << 5 | Int(byte & 0x1F)] = Int16(target) }
        }
        letterTable = Self.freeze(letters)
        hasMask = Self.freeze((0..<children.count).map { (path[$0].isEmpty ? 0 : 1) | (exact[$0].isEmpty ? 0 : 2) })
    }

    static func freeze<T>(_ array: [T]) -> UnsafeBufferPointer<T> {
        let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, array.count))
        _ = buffer.initialize(from: array)
        return UnsafeBufferPointer(buffer)
    }

    @inline(__always)
    func child(_ node: Int, _ byte: UInt8) -> Int {
        if node == 0 { return Int(rootTable[Int(byte)]) }
        return edge(node, byte)
    }

    /// The child of a node other than the root.
    @inline(__always)
    func edge(_ node: Int, _ byte: UInt8) -> Int {
        if byte & 0xE0 == 0x60 { return Int(letterTable[node << 5 | Int(byte & 0x1F)]) }
        var index = Int(edgeStart[node])
        let end = index + Int(edgeCount[node])
        while index < end {
            let candidate = edgeByteTable[index]
            if candidate == byte { return Int(edgeTargetTable[index]) }
            if candidate > byte { return -1 }
            index += 1
        }
        return -1
    }

    /// The concepts of a whole word: every stem it starts with, and the word itself.
    @inline(__always)
    func lookup(_ word: UnsafeBufferPointer<UInt8>) -> ConceptMask {
        let count = word.count
        if count == 0 { return exactMask[0] }
        let first = Int(rootTable[Int(word[0])])
        if first < 0 { return ConceptMask() }
        if count == 1 { return pathMask[first] | exactMask[first] }
        var node = Int(pairTable[Int(word[0]) << 8 | Int(word[1])])
        if node < 0 { return hasMask[first] & 1 == 0 ? ConceptMask() : pathMask[first] }
        var index = 2
        while index < count {
            let next = edge(node, word[index])
            if next < 0 { return hasMask[node] & 1 == 0 ? ConceptMask() : pathMask[node] }
            node = next
            index += 1
        }
        return hasMask[node] == 0 ? ConceptMask() : pathMask[node] | exactMask[node]
    }

    /// Entries found starting at `start` of a CJK run (every terminal along the way), as (end, mask).
    func matches(in text: UnsafeBufferPointer<UInt8>, from start: Int, upTo limit: Int, _ found: (Int, ConceptMask) -> Void) {
        var node = 0
        var index = start
        while index < limit {
            node = child(node, text[index])
            if node < 0 { return }
            index += 1
            let mask = prefixMask[node] | exactMask[node]
            if !mask.isEmpty, index == limit || text[index] & 0xC0 != 0x80 { found(index, mask) }
        }
    }
}

/// Splits normalized text into words and maps them to concepts.
enum Tokenizer {
    @inline(__always) static func isWordByte(_ byte: UInt8) -> Bool {
        ByteClass.table[Int(byte)] & ByteClass.word != 0
    }

    /// CJK scripts (no spaces between words): matched per position.
    @inline(__always) static func isCJK(_ scalar: UInt32) -> Bool {
        (scalar >= 0x3040 && scalar <= 0x30FF) || (scalar >= 0x3400 && scalar <= 0x4DBF) || (scalar >= 0x4E00 && scalar <= 0x9FFF)
            || (scalar >= 0xAC00 && scalar <= 0xD7AF)
    }

    static func tokens(
        _ norm: UnsafeBufferPointer<UInt8>, original: UnsafeBufferPointer<UInt8>, normalized: NormalizedText, leet: inout Bool, spaced: inout Bool
    ) -> [InjectionDetector.Token] {
        typealias Token = InjectionDetector.Token
        let lexicon = Lexicon.shared
        var tokens: [Token] = []
        tokens.reserveCapacity(norm.count / 12 + 8)
        var word: Int32 = 0
        var sentence: Int32 = 0
        var index = 0
        let count = norm.count
        // A run of single letters separated by single spaces ("i g n o r e").
        var letters = SpacedLetters()
        let classes = ByteClass.table
        while index < count {
            let byte = norm[index]
            if byte == 0x20 {
                index += 1
                continue
            }
            if classes[Int(byte)] & ByteClass.word != 0 {
                if byte >= 0x80 {
                    let (scalar, length) = UTF8Scan.decode(norm, at: index)
                    if let scalar, isCJK(scalar) {
                        if letters.count > 0 { letters.flush(into: &tokens, sentence: sentence, lexicon: lexicon, spaced: &spaced) }
                        var runEnd = index
                        while runEnd < count, norm[runEnd] >= 0x80 {
                            let (s, l) = UTF8Scan.decode(norm, at: runEnd)
                            guard let s, isCJK(s) else { break }
                            runEnd += l
                        }
                        // Every position may start an entry; characters inside a matched entry do not
                        // count as words of their own (gaps stay comparable with spaced languages).
                        var position = index
                        var coveredEnd = index
                        while position < runEnd {
                            if position >= coveredEnd { word += 1 }
                            let current = word - 1
                            lexicon.matches(in: norm, from: position, upTo: runEnd) { end, mask in
                                tokens.append(Token(mask: mask, word: current, sentence: sentence, start: Int32(position), end: Int32(end)))
                                coveredEnd = max(coveredEnd, end)
                            }
                            position += UTF8Scan.length(of: norm[position])
                        }
                        index = runEnd
                        continue
                    }
                    if let scalar, (scalar >= 0x3000 && scalar <= 0x303F) || (scalar >= 0x2000 && scalar <= 0x206F) {
                        // CJK and general punctuation: a separator; the full stops end sentences.
                        if scalar == 0x3002 || scalar == 0x2026 { sentence += 1 }
                        index += length
                        continue
                    }
                }
                let start = index
                var seen: UInt16 = 0
                var nonASCII = false
                var underscore = -1
                var lastUnderscore = -1
                // Eight bytes at a time: where the leading run of a-z ends. A word of letters followed by
                // a space or punctuation (most words) ends there; otherwise the byte loop goes on from it.
                if index + 8 <= count {
                    let chunk = UnsafeRawPointer(norm.baseAddress! + index).loadUnaligned(as: UInt64.self)
                    let letters = SWAR.lowercaseLetters(chunk)
                    let run = (~letters & SWAR.high).trailingZeroBitCount >> 3
                    if run > 0 {
                        seen = ByteClass.lower
                        index += run
                    }
                }
                while index < count {
                    let b = norm[index]
                    let bits = classes[Int(b)]
                    if bits & ByteClass.word == 0 { break }
                    if b >= 0x80 {
                        let (scalar, length) = UTF8Scan.decode(norm, at: index)
                        if let scalar, isCJK(scalar) || (scalar >= 0x3000 && scalar <= 0x303F) || (scalar >= 0x2000 && scalar <= 0x206F) { break }
                        index += length
                        nonASCII = true
                        continue
                    }
                    seen |= bits
                    if b == 0x5F {
                        if underscore < 0 { underscore = index }
                        lastUnderscore = index
                    }
                    index += 1
                }
                let hasDigit = seen & ByteClass.digit != 0
                let hasLetter = nonASCII || seen & ByteClass.lower != 0
                let end = index
                if end == start { index += 1; continue }
                let bytes = UnsafeBufferPointer(rebasing: norm[start..<end])
                var mask = lexicon.lookup(bytes)
                if underscore > start {
                    let first = lexicon.lookup(UnsafeBufferPointer(rebasing: norm[start..<underscore]))
                    if first.a & Concept.toolVerb != 0, underscore + 1 < end { mask.a |= Concept.toolCall }
                    if lastUnderscore + 1 < end {
                        let last = lexicon.lookup(UnsafeBufferPointer(rebasing: norm[(lastUnderscore + 1)..<end]))
                        mask.a |= last.a & Concept.reference
                    }
                }
                if hasDigit && hasLetter && end - start >= 3 && end - start <= 32 && mask.isEmpty {
                    mask = leetLookup(bytes, lexicon)
                    if !mask.isEmpty { leet = true }
                }
                // A made-up model name: "RedustGPT", "4ChanGPT" (not ChatGPT itself).
                if end - start >= 5, bytes[end - start - 1] == 0x74, bytes[end - start - 2] == 0x70, bytes[end - start - 3] == 0x67,
                    !(end - start == 7 && bytes[0] == 0x63 && bytes[1] == 0x68 && bytes[2] == 0x61 && bytes[3] == 0x74)
                {
                    mask.b |= Concept2.gptName
                }
                if end - start == 3, bytes[0] == 0x64, bytes[1] == 0x61, bytes[2] == 0x6E {
                    // "DAN" in capitals, not the name Dan.
                    let at = normalized.origin(start)
                    if at + 3 <= original.count, original[at] == 0x44, original[at + 1] == 0x41, original[at + 2] == 0x4E {
                        mask.b |= Concept2.dan
                    }
                }
                if !mask.isEmpty {
                    tokens.append(Token(mask: mask, word: word, sentence: sentence, start: Int32(start), end: Int32(end)))
                }
                // Spaced letters.
                if end - start == 1, hasLetter, !hasDigit, norm[start] < 0x80 {
                    letters.add(norm[start], start: start, end: end, word: word)
                    if !(index + 1 < count && norm[index] == 0x20 && isWordByte(norm[index + 1])) {
                        letters.flush(into: &tokens, sentence: sentence, lexicon: lexicon, spaced: &spaced)
                    }
                } else if letters.count > 0 {
                    letters.flush(into: &tokens, sentence: sentence, lexicon: lexicon, spaced: &spaced)
                }
                word += 1
                continue
            }
            switch byte {
            case 0x2E, 0x21, 0x3F, 0x3B:
                // . ! ? ; end a sentence when followed by a space or the end ("evil.example" does not).
                if index + 1 >= count || norm[index + 1] == 0x20 || norm[index + 1] == 0x0A { sentence += 1 }
            case 0x0A:
                // A blank line or a line that ended a sentence; a single newline inside prose does not.
                if index + 1 < count, norm[index + 1] == 0x0A { sentence += 1 }
                sentence += index > 0 && (norm[index - 1] == 0x3A) ? 0 : 1
            case 0x3A:
                if index + 2 < count, norm[index + 1] == 0x2F, norm[index + 2] == 0x2F {
                    tokens.append(Token(mask: ConceptMask(a: Concept.address, b: 0), word: word, sentence: sentence, start: Int32(index), end: Int32(index + 3)))
                } else {
                    tokens.append(Token(mask: ConceptMask(a: Concept.colon, b: 0), word: word, sentence: sentence, start: Int32(index), end: Int32(index + 1)))
                }
            case 0x40:
                if index > 0, index + 1 < count, isWordByte(norm[index - 1]), isWordByte(norm[index + 1]) {
                    tokens.append(Token(mask: ConceptMask(a: Concept.address, b: 0), word: word, sentence: sentence, start: Int32(index), end: Int32(index + 1)))
                }
            default:
                break
            }
            index += 1
        }
        if letters.count > 0 { letters.flush(into: &tokens, sentence: sentence, lexicon: lexicon, spaced: &spaced) }
        return tokens
    }

    /// Single letters separated by single spaces, looked up as one word when the run ends.
    struct SpacedLetters {
        var letters: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var count = 0
        var start = 0
        var end = 0
        var lastWord: Int32 = 0

        @inline(__always)
        mutating func add(_ letter: UInt8, start: Int, end: Int, word: Int32) {
            if count == 0 { self.start = start }
            lastWord = word
            if count < 32 { withUnsafeMutableBytes(of: &letters) { $0[count] = letter } }
            count += 1
            self.end = end
        }

        mutating func flush(into tokens: inout [InjectionDetector.Token], sentence: Int32, lexicon: Lexicon, spaced: inout Bool) {
            if count >= 4 {
                let length = min(count, 32)
                let mask = withUnsafeBytes(of: &letters) { raw in
                    lexicon.lookup(UnsafeBufferPointer(rebasing: raw.bindMemory(to: UInt8.self)[0..<length]))
                }
                if !mask.isEmpty {
                    tokens.append(InjectionDetector.Token(mask: mask, word: lastWord, sentence: sentence, start: Int32(start), end: Int32(end)))
                    spaced = true
                }
            }
            count = 0
        }
    }

    static func leetLookup(_ word: UnsafeBufferPointer<UInt8>, _ lexicon: Lexicon) -> ConceptMask {
        var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &buffer) { raw in
            for (offset, byte) in word.enumerated() {
                raw[offset] = switch byte {
                case 0x30: 0x6F  // 0 o
                case 0x31: 0x69  // 1 i
                case 0x33: 0x65  // 3 e
                case 0x34: 0x61  // 4 a
                case 0x35: 0x73  // 5 s
                case 0x37: 0x74  // 7 t
                case 0x38: 0x62  // 8 b
                default: byte
                }
            }
            return lexicon.lookup(UnsafeBufferPointer(rebasing: raw.bindMemory(to: UInt8.self)[0..<word.count]))
        }
    }
}

/// Applies the rules to a text's tokens.
enum RuleMatcher {
    /// The rules flattened into buffers of plain values: reading them costs no reference counting.
    struct Flat: @unchecked Sendable {
        /// Per rule: first slot, slot count, window (-1: ordered).
        let firstSlot: UnsafeBufferPointer<Int32>
        let slotCount: UnsafeBufferPointer<Int32>
        let window: UnsafeBufferPointer<Int32>
        /// Slots of every rule one after the other, and the gap after each slot (ordered rules).
        let slots: UnsafeBufferPointer<ConceptMask>
        let gaps: UnsafeBufferPointer<Int32>

        init(_ rules: [InjectionRule]) {
            var first: [Int32] = [], counts: [Int32] = [], windows: [Int32] = [], slots: [ConceptMask] = [], gaps: [Int32] = []
            for rule in rules {
                first.append(Int32(slots.count))
                counts.append(Int32(rule.slots.count))
                switch rule.shape {
                case .ordered: windows.append(-1)
                case .unordered(let window): windows.append(Int32(window))
                }
                for (index, slot) in rule.slots.enumerated() {
                    slots.append(slot)
                    gaps.append(index < rule.gaps.count ? Int32(rule.gaps[index]) : 0)
                }
            }
            firstSlot = Lexicon.freeze(first)
            slotCount = Lexicon.freeze(counts)
            window = Lexicon.freeze(windows)
            self.slots = Lexicon.freeze(slots)
            self.gaps = Lexicon.freeze(gaps)
        }
    }

    static let flat = Flat(InjectionLexicon.rules)

    static func match(_ tokens: [InjectionDetector.Token], _ found: (InjectionRule, Range<Int>) -> Void) {
        let flat = Self.flat
        // Rules whose concepts do not all occur in the text are skipped without a look at the tokens.
        var present = ConceptMask()
        for token in tokens { present = present | token.mask }
        tokens.withUnsafeBufferPointer { tokens in
            for ruleIndex in 0..<flat.firstSlot.count {
                let base = Int(flat.firstSlot[ruleIndex])
                let slotCount = Int(flat.slotCount[ruleIndex])
                var all = true
                for slot in base..<(base + slotCount) where !present.intersects(flat.slots[slot]) { all = false; break }
                guard all else { continue }
                let first = flat.slots[base]
                let window = Int(flat.window[ruleIndex])
                if window < 0 {
                    var from = 0
                    while from < tokens.count {
                        defer { from += 1 }
                        guard tokens[from].mask.intersects(first) else { continue }
                        var current = from
                        var matched = true
                        for slot in 1..<max(1, slotCount) {
                            let gap = flat.gaps[base + slot - 1]
                            let wanted = flat.slots[base + slot]
                            var next = current + 1
                            var hit = -1
                            while next < tokens.count {
                                let t = tokens[next]
                                if t.sentence != tokens[current].sentence || t.word - tokens[current].word - 1 > gap { break }
                                if t.word > tokens[current].word || (t.mask.a & Concept.colon != 0), t.mask.intersects(wanted) { hit = next; break }
                                next += 1
                            }
                            if hit < 0 { matched = false; break }
                            current = hit
                        }
                        if matched {
                            found(InjectionLexicon.rules[ruleIndex], Int(tokens[from].start)..<Int(tokens[current].end))
                            from = current
                        }
                    }
                } else {
                    let complete = (1 << slotCount) - 1
                    var from = 0
                    while from < tokens.count {
                        defer { from += 1 }
                        var any = false
                        for slot in base..<(base + slotCount) where tokens[from].mask.intersects(flat.slots[slot]) { any = true; break }
                        guard any else { continue }
                        var seen = 0
                        var last = from
                        var next = from
                        while next < tokens.count, tokens[next].sentence == tokens[from].sentence, tokens[next].word - tokens[from].word <= Int32(window) {
                            for slot in 0..<slotCount where seen & (1 << slot) == 0 && tokens[next].mask.intersects(flat.slots[base + slot]) {
                                seen |= 1 << slot
                                last = next
                                break
                            }
                            if seen == complete { break }
                            next += 1
                        }
                        if seen == complete {
                            found(InjectionLexicon.rules[ruleIndex], Int(tokens[from].start)..<Int(tokens[last].end))
                            from = last
                        }
                    }
                }
            }
        }
    }
}

/// Signals from the text's layout rather than its words: chat-template tokens, role lines
/// (`system:` at the start of a line), reasoning tags, markdown images that carry data in their URL.
enum Structure {
    static let templateTokens: [[UInt8]] = [
        "<|im_start|>", "<|im_end|>", "<|system|>", "<|endoftext|>", "<|start_header_id|>", "<|eot_id|>", "[inst]", "[/inst]", "<<sys>>",
        "<</sys>>", "<|assistant|>", "<|user|>",
    ].map { Array($0.utf8) }
    static let roleWords: [([UInt8], Double)] = [
        (Array("system".utf8), 0.6), (Array("sys".utf8), 0.5), (Array("assistant".utf8), 0.45), (Array("developer".utf8), 0.5),
        (Array("instruction".utf8), 0.45), (Array("instructions".utf8), 0.45), (Array("admin".utf8), 0.4),
    ]

    static func scan(_ norm: UnsafeBufferPointer<UInt8>, _ found: (String, GuardCategory, Double, Range<Int>) -> Void) {
        let count = norm.count
        var index = 0
        var lineStart = true
        let classes = ByteClass.table
        while index < count {
            // Only line starts and `\n < [ !` matter: skip everything else with one table read a byte.
            if !lineStart {
                while index + 8 <= count {
                    let chunk = UnsafeRawPointer(norm.baseAddress! + index).loadUnaligned(as: UInt64.self)
                    let marks = SWAR.equal(chunk, 0x0A) | SWAR.equal(chunk, 0x3C) | SWAR.equal(chunk, 0x5B) | SWAR.equal(chunk, 0x21)
                    if marks != 0 {
                        index += marks.trailingZeroBitCount >> 3
                        break
                    }
                    index += 8
                }
                while index < count, classes[Int(norm[index])] & ByteClass.layout == 0 { index += 1 }
                if index == count { break }
            }
            let byte = norm[index]
            if lineStart {
                lineStart = false
                // Skip markup before a role word: spaces, #, [, (, *, -, >, |.
                var cursor = index
                var skipped = 0
                while cursor < count, skipped < 8, isMarkup(norm[cursor]) {
                    cursor += 1
                    skipped += 1
                }
                let first: UInt8 = cursor < count ? norm[cursor] : 0
                // Role words start with s, a, d or i.
                let roleInitial = first == 0x73 || first == 0x61 || first == 0x64 || first == 0x69
                if roleInitial {
                for (word, weight) in roleWords where word[0] == first && cursor + word.count <= count {
                    var same = true
                    for (offset, expected) in word.enumerated() where norm[cursor + offset] != expected { same = false; break }
                    guard same else { continue }
                    var after = cursor + word.count
                    if after < count, Tokenizer.isWordByte(norm[after]) { continue }
                    while after < count, norm[after] == 0x20 { after += 1 }
                    let hashes = skipped > 0 && norm[index..<cursor].contains(0x23)
                    if after >= count || isRoleEnd(norm[after]) || (hashes && norm[after] == 0x0A) {
                        found("role_injection", .promptInjection, weight, index..<min(count, after + 1))
                        break
                    }
                }
                }
            }
            switch byte {
            case 0x0A:
                lineStart = true
            case 0x3C, 0x5B:
                // < or [: a chat-template token or a reasoning tag.
                for token in templateTokens where index + token.count <= count && token[0] == byte {
                    var same = true
                    for (offset, expected) in token.enumerated() where norm[index + offset] != expected { same = false; break }
                    if same {
                        found("chat_template_token", .promptInjection, 0.8, index..<(index + token.count))
                        break
                    }
                }
                if byte == 0x3C, matches(norm, at: index, "<thinking>") || matches(norm, at: index, "<think>") {
                    found("forged_reasoning", .jailbreak, 0.3, index..<(index + 7))
                }
            case 0x21:
                // ![alt](http...?a=b): an image whose URL carries data.
                if index + 1 < count, norm[index + 1] == 0x5B {
                    var cursor = index + 2
                    while cursor < count, cursor - index < 300, norm[cursor] != 0x5D { cursor += 1 }
                    if cursor + 5 < count, norm[cursor + 1] == 0x28, matches(norm, at: cursor + 2, "http") {
                        var end = cursor + 2
                        var query = false
                        while end < count, end - cursor < 2_048, norm[end] != 0x29, norm[end] != 0x20 {
                            if norm[end] == 0x3F || norm[end] == 0x3D { query = true }
                            end += 1
                        }
                        if query { found("markdown_image_exfiltration", .promptInjection, 0.6, index..<min(count, end + 1)) }
                    }
                }
            default:
                break
            }
            index += 1
        }
    }

    /// Spaces, #, [, (, *, -, >, |, < before a role word.
    @inline(__always) static func isMarkup(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x20, 0x23, 0x5B, 0x28, 0x2A, 0x2D, 0x3E, 0x7C, 0x3C: true
        default: false
        }
    }

    /// :, ], ), >, | after a role word.
    @inline(__always) static func isRoleEnd(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x3A, 0x5D, 0x29, 0x3E, 0x7C: true
        default: false
        }
    }

    @inline(__always)
    static func matches(_ norm: UnsafeBufferPointer<UInt8>, at index: Int, _ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard index + count <= norm.count else { return false }
        let pointer = literal.utf8Start
        for offset in 0..<count where norm[index + offset] != pointer[offset] { return false }
        return true
    }
}
