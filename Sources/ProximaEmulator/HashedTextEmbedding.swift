/// The emulated embeddings model: a vector computed from the text alone by feature hashing, so that
/// the same text always gets the same vector, texts sharing words and word pairs are close, and
/// unrelated texts are nearly orthogonal. It is not a semantic model: "enable" and "turn on" share
/// nothing, while a question and its negation share almost everything.
///
/// Features of the lower-cased text: each word (a maximal run of letters, digits and apostrophes),
/// each pair of adjacent words, and each character trigram of the words joined by single spaces
/// with a space at both ends. Each feature is hashed (64-bit FNV-1a over a kind tag and its bytes)
/// to one of `dimensions` slots, adding +weight or -weight by the hash's top bit; word features
/// weigh 1, word pairs 1, trigrams 0.5. The sum is scaled to unit length.
public enum HashedTextEmbedding {
    public static let dimensions = 384

    /// The unit vector of `text` (any text, including one without words: its trigrams still count).
    public static func vector(for text: String, dimensions: Int = HashedTextEmbedding.dimensions) -> [Float] {
        var sums = [Double](repeating: 0, count: dimensions)
        let words = Self.words(of: text)
        func add(_ tag: UInt8, _ bytes: some Sequence<UInt8>, weight: Double) {
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325
            hash = (hash ^ UInt64(tag)) &* 0x0000_0100_0000_01B3
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
            // One more mixing round so that the slot and the sign do not come from correlated bits.
            hash ^= hash >> 33
            hash = hash &* 0xFF51_AFD7_ED55_8CCD
            hash ^= hash >> 33
            let slot = Int(hash % UInt64(dimensions))
            sums[slot] += (hash >> 63) == 0 ? weight : -weight
        }
        for word in words { add(1, word, weight: 1) }
        if words.count > 1 {
            for index in 1..<words.count { add(2, words[index - 1] + [0x20] + words[index], weight: 1) }
        }
        var joined: [UInt8] = [0x20]
        if words.isEmpty {
            joined += Array(text.lowercased().utf8)
        } else {
            for (index, word) in words.enumerated() {
                if index > 0 { joined.append(0x20) }
                joined += word
            }
        }
        joined.append(0x20)
        if joined.count >= 3 {
            for start in 0...(joined.count - 3) { add(3, joined[start..<(start + 3)], weight: 0.5) }
        }
        let norm = sums.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm > 0 else {
            // Only possible for features that cancel exactly; any fixed unit vector keeps it valid.
            var unit = [Float](repeating: 0, count: dimensions)
            unit[0] = 1
            return unit
        }
        return sums.map { Float($0 / norm) }
    }

    /// Lower-cased words as UTF-8 bytes: maximal runs of letters, digits and apostrophes.
    static func words(of text: String) -> [[UInt8]] {
        var words: [[UInt8]] = []
        var current = ""
        for character in text.lowercased() {
            if character.isLetter || character.isNumber || character == "'" || character == "\u{2019}" {
                current.append(character == "\u{2019}" ? "'" : character)
            } else if !current.isEmpty {
                words.append(Array(current.utf8))
                current = ""
            }
        }
        if !current.isEmpty { words.append(Array(current.utf8)) }
        return words
    }

    /// Cosine similarity of two vectors of the same length (their dot product when both are unit).
    public static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0
        var normA = 0.0
        var normB = 0.0
        for index in 0..<min(a.count, b.count) {
            dot += Double(a[index]) * Double(b[index])
            normA += Double(a[index]) * Double(a[index])
            normB += Double(b[index]) * Double(b[index])
        }
        guard normA > 0, normB > 0 else { return 0 }
        return dot / (normA.squareRoot() * normB.squareRoot())
    }
}
