/// Builds prompt text of a given size in words, one word per token for engines that count words
/// (the emulator). Every word is three letters and a space, four bytes, so that a gateway estimating
/// tokens as bytes / 4 (as Proxima does, and as English text with real tokenizers roughly gives)
/// estimates this prompt's size right. When the request carries prefix block ids, each block's words
/// derive from its id, so requests that share blocks share an identical text prefix, and real
/// engines' prefix caches (and the emulator's) see the sharing.
public struct PromptSynthesizer: Sendable {
    public var blockTokens: Int

    public init(blockTokens: Int) {
        self.blockTokens = blockTokens
    }

    public func prompt(tokens: Int, prefixBlockIDs: [UInt64], uniqueID: Int) -> String {
        guard tokens > 0 else { return "" }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokens * 4)
        var written = 0
        if blockTokens > 0 {
            for block in prefixBlockIDs where written < tokens {
                let count = min(blockTokens, tokens - written)
                for word in 0..<count { Self.append(key: block, index: word, to: &bytes) }
                written += count
            }
        }
        // The rest is unique to the request (its key cannot be a block's: the top bit is set).
        let unique = UInt64(truncatingIfNeeded: uniqueID) | 1 << 63
        while written < tokens {
            Self.append(key: unique, index: written, to: &bytes)
            written += 1
        }
        bytes.removeLast()
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends three lowercase letters derived from (key, index), and a space.
    private static func append(key: UInt64, index: Int, to bytes: inout [UInt8]) {
        var mixed = key &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: index) &* 0xBF58_476D_1CE4_E5B9
        mixed ^= mixed >> 31
        mixed &*= 0x94D0_49BB_1331_11EB
        mixed ^= mixed >> 29
        bytes.append(0x61 + UInt8(mixed % 26))
        bytes.append(0x61 + UInt8(mixed / 26 % 26))
        bytes.append(0x61 + UInt8(mixed / 676 % 26))
        bytes.append(0x20)
    }
}
