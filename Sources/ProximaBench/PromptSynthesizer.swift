/// Builds prompt text of a given size in words, one word per token for engines that count words
/// (the emulator). When the request carries prefix block ids, each block's words derive from its id,
/// so requests that share blocks share an identical text prefix, and real engines' prefix caches
/// (and the emulator's) see the sharing.
public struct PromptSynthesizer: Sendable {
    public var blockTokens: Int

    public init(blockTokens: Int) {
        self.blockTokens = blockTokens
    }

    public func prompt(tokens: Int, prefixBlockIDs: [UInt64], uniqueID: Int) -> String {
        var text = ""
        text.reserveCapacity(tokens * 7)
        var written = 0
        if blockTokens > 0 {
            for block in prefixBlockIDs where written < tokens {
                let count = min(blockTokens, tokens - written)
                for word in 0..<count {
                    text += "b\(block)w\(word) "
                }
                written += count
            }
        }
        // The rest is unique to the request.
        while written < tokens {
            text += "r\(uniqueID)w\(written) "
            written += 1
        }
        if !text.isEmpty { text.removeLast() }
        return text
    }
}
