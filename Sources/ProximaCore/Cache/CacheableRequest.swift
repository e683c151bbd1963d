/// What the cache needs from a chat-completions or completions body: the material of its exact key,
/// the material of its semantic partition, the text to embed, and the few fields that decide whether
/// it may be cached at all. Pure: the gateway hashes the materials (with the tenant and the
/// operation) and calls the embedder.
public struct CacheableRequest: Sendable {
    public enum Kind: Sendable { case chat, completion }

    /// Members that never change the answer: transport (`stream`, `stream_options`), attribution
    /// (`user`, `metadata`, `safety_identifier`), storage and cache hints (`store`, `prompt_cache_key`).
    public static let ignoredMembers: Set<String> = [
        "stream", "stream_options", "user", "metadata", "store", "prompt_cache_key", "safety_identifier",
    ]

    /// What stands in the partition material where the last user turn's text was: an object with a
    /// NUL-prefixed key, which no valid request has as a message content or a prompt (and a request
    /// that had it would have no semantic part, so no partition material to collide with).
    public static let semanticSlot = JSONValue.object([JSONValue.Member(key: "\u{0}proxima-semantic-slot", value: .bool(true))])

    public let kind: Kind
    /// Canonical object of every member that can change the answer: the body minus `ignoredMembers`.
    public var exactMaterial: [UInt8]
    /// `exactMaterial` with the last user turn's text replaced by `semanticSlot`: it binds the model,
    /// the system prompt, every earlier turn, the tools and every sampling parameter. Nil when the
    /// request has no semantic part: the last message is not from the user or has non-text parts;
    /// for completions, the prompt is not a single string.
    public var partitionMaterial: [UInt8]?
    /// The last user turn's text (a string content, or its text parts joined with "\n"); for
    /// completions the prompt. Nil exactly when `partitionMaterial` is nil.
    public var semanticText: String?
    /// Canonical bytes of `messages` (or `prompt`; `null` when missing), for the router's prefix hashing.
    public var canonicalInput: [UInt8]
    /// `temperature` when it is a number.
    public var temperature: Double?
    /// `n`, 1 when missing or not an integer.
    public var choices: Int
    /// `logprobs` true (or a number, for completions) or `top_logprobs` set.
    public var wantsLogprobs: Bool

    public init(kind: Kind, body: UnsafeRawBufferPointer) throws(CanonicalJSON.Failure) {
        let parsed = try CanonicalJSON.parse(body)
        guard case .object(let allMembers) = parsed else { throw CanonicalJSON.Failure(.notAnObject, at: 0) }
        let members = allMembers.filter { !Self.ignoredMembers.contains($0.key) }
        self.kind = kind
        exactMaterial = JSONValue.object(members).canonicalBytes

        let inputKey = kind == .chat ? "messages" : "prompt"
        let input = parsed[inputKey]
        canonicalInput = (input ?? .null).canonicalBytes

        if case .number(let text) = parsed["temperature"] { temperature = Double(text) } else { temperature = nil }
        if case .number(let text) = parsed["n"], let value = Int(text) { choices = value } else { choices = 1 }
        let logprobs: Bool = switch parsed["logprobs"] {
        case .bool(true), .number: true
        default: false
        }
        let topLogprobs: Bool = switch parsed["top_logprobs"] {
        case .none, .null: false
        default: true
        }
        wantsLogprobs = logprobs || topLogprobs

        guard let input, let (text, slotted) = Self.semanticPart(of: input, kind: kind).map({ ($0.0, $0.1) }) else {
            partitionMaterial = nil
            semanticText = nil
            return
        }
        semanticText = text
        let partitionMembers = members.map { member in
            member.key == inputKey ? JSONValue.Member(key: inputKey, value: slotted) : member
        }
        partitionMaterial = JSONValue.object(partitionMembers).canonicalBytes
    }

    public init(kind: Kind, body: [UInt8]) throws(CanonicalJSON.Failure) {
        self = try body.withUnsafeBytes { buffer in
            Result { () throws(CanonicalJSON.Failure) in try CacheableRequest(kind: kind, body: buffer) }
        }.get()
    }

    /// The last user turn's text and the input with that text replaced by `semanticSlot`.
    static func semanticPart(of input: JSONValue, kind: Kind) -> (String, JSONValue)? {
        switch kind {
        case .completion:
            guard case .string(let prompt) = input else { return nil }
            return (prompt, semanticSlot)
        case .chat:
            guard case .array(var messages) = input, let last = messages.last,
                  case .object(var lastMembers) = last, last["role"] == .string("user"),
                  let contentIndex = lastMembers.firstIndex(where: { $0.key == "content" }),
                  let text = Self.text(of: lastMembers[contentIndex].value)
            else { return nil }
            lastMembers[contentIndex].value = semanticSlot
            messages[messages.count - 1] = .object(lastMembers)
            return (text, .array(messages))
        }
    }

    /// A content's text: a string, or an array of only text parts, joined with "\n".
    static func text(of content: JSONValue) -> String? {
        switch content {
        case .string(let text): return text
        case .array(let parts):
            guard !parts.isEmpty else { return nil }
            var texts: [String] = []
            for part in parts {
                guard part["type"] == .string("text"), case .string(let text) = part["text"] else { return nil }
                texts.append(text)
            }
            return texts.joined(separator: "\n")
        default: return nil
        }
    }
}
