import Foundation
import ProximaCore

/// What the emulator reads from a request body: the prompt's words (one word is one token for the
/// emulator), the KV block ids of the prompt (a chained hash of each full block of words, so that
/// equal prefixes give equal ids), the output size and the stream options.
struct EmulatedPrompt {
    var model: String
    var promptTokens: Int
    var prefixBlockIDs: [UInt64]
    var outputTokens: Int
    var stream: Bool
    var includeUsage: Bool
    var isChat: Bool

    struct Invalid: Error {
        var message: String
        var param: String?
    }

    init(body: Data, isChat: Bool, blockTokens: Int) throws(Invalid) {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw Invalid(message: "the request body is not a JSON object")
        }
        guard let model = object["model"] as? String else { throw Invalid(message: "missing 'model'", param: "model") }
        var text = ""
        if isChat {
            guard let messages = object["messages"] as? [[String: Any]], !messages.isEmpty else {
                throw Invalid(message: "'messages' must be a non-empty array", param: "messages")
            }
            for message in messages {
                if let content = message["content"] as? String {
                    text += content + " "
                } else if let parts = message["content"] as? [[String: Any]] {
                    for part in parts { if let piece = part["text"] as? String { text += piece + " " } }
                }
            }
        } else {
            if let prompt = object["prompt"] as? String {
                text = prompt
            } else if let prompts = object["prompt"] as? [String] {
                text = prompts.joined(separator: " ")
            } else {
                throw Invalid(message: "'prompt' must be a string or an array of strings", param: "prompt")
            }
        }
        var tokens = 0
        var blocks: [UInt64] = []
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        var wordsInBlock = 0
        var inWord = false
        for byte in text.utf8 {
            let isSpace = byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D
            if isSpace {
                if inWord {
                    inWord = false
                    tokens += 1
                    wordsInBlock += 1
                    hash = (hash ^ 0x20) &* 0x0000_0100_0000_01B3
                    if blockTokens > 0, wordsInBlock == blockTokens {
                        blocks.append(hash)
                        wordsInBlock = 0
                    }
                }
            } else {
                inWord = true
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
        }
        if inWord {
            tokens += 1
            wordsInBlock += 1
            if blockTokens > 0, wordsInBlock == blockTokens { blocks.append(hash) }
        }
        self.model = model
        self.promptTokens = max(1, tokens)
        self.prefixBlockIDs = blocks
        let maxTokens = (object["max_completion_tokens"] as? Int) ?? (object["max_tokens"] as? Int) ?? 16
        guard maxTokens >= 1 else { throw Invalid(message: "'max_tokens' must be at least 1", param: "max_tokens") }
        self.outputTokens = maxTokens
        self.stream = (object["stream"] as? Bool) ?? false
        self.includeUsage = ((object["stream_options"] as? [String: Any])?["include_usage"] as? Bool) ?? false
        self.isChat = isChat
    }

    /// The text of output token `index`: one word, so the emulator's own count of it is one token.
    static func word(_ index: Int) -> String { index == 0 ? "w0" : " w\(index)" }
}
