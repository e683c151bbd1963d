import Foundation
import NIOCore
import ProximaCache
import ProximaCore

/// A complete, successful answer as the cache keeps it: what the engine said, not how it was framed,
/// so that an answer stored from a stream can be served whole and one stored whole can be streamed.
/// Read from an upstream's JSON body or from the data of its stream's events; written back in the
/// OpenAI format with a fresh id and creation time.
final class CachedAnswer: CachePayload {
    enum Kind: Sendable, Equatable {
        /// `chat.completion` (choices carry a `message`, streams a `delta`).
        case chat
        /// `text_completion` (choices carry `text`).
        case completion
    }

    struct Choice: Sendable, Equatable {
        var index: Int
        var role: String?
        var content: String?
        /// The `tool_calls` array, as JSON text (each call with its `index`, for streams).
        var toolCalls: String?
        var refusal: String?
        var finishReason: String?
    }

    let kind: Kind
    let choices: [Choice]
    /// The model as the upstream named it in its answer.
    let model: String
    let systemFingerprint: String?
    /// What the answer cost when it was generated.
    let usage: TokenUsage
    let price: TokenPrice
    /// Who may be served this answer: its tenant (checked on every hit, beside the partition).
    let tenant: String
    /// The varying part of the prompt it answered (the last user turn), for the false-hit guards.
    let prompt: String?
    let features: PromptFeatures?
    /// How long the upstream took to produce it (the GPU time a hit saves, roughly).
    let generationSeconds: Double
    let byteCount: Int

    init(
        kind: Kind, choices: [Choice], model: String, systemFingerprint: String?, usage: TokenUsage, price: TokenPrice, tenant: String,
        prompt: String?, generationSeconds: Double
    ) {
        self.kind = kind
        self.choices = choices
        self.model = model
        self.systemFingerprint = systemFingerprint
        self.usage = usage
        self.price = price
        self.tenant = tenant
        self.prompt = prompt
        self.features = prompt.map(PromptFeatures.init)
        self.generationSeconds = generationSeconds
        var bytes = 160 + model.utf8.count + tenant.utf8.count + (systemFingerprint?.utf8.count ?? 0) + 2 * (prompt?.utf8.count ?? 0)
        for choice in choices {
            bytes += 64 + (choice.content?.utf8.count ?? 0) + (choice.toolCalls?.utf8.count ?? 0) + (choice.refusal?.utf8.count ?? 0)
        }
        self.byteCount = bytes
    }

    /// What the original answer cost.
    var cost: Money { price.spend(promptTokens: usage.promptTokens, completionTokens: usage.completionTokens) }
}

// MARK: reading answers

extension CachedAnswer {
    /// What the upstream's answer must look like to be kept; anything else is not stored.
    struct Draft: Sendable {
        var kind: Kind
        var choices: [Choice] = []
        var model = ""
        var systemFingerprint: String?
        var usage: TokenUsage?

        /// Complete: at least one choice, and each one finished.
        var isComplete: Bool { !choices.isEmpty && choices.allSatisfy { $0.finishReason != nil } }
    }

    /// Reads a whole (non-streamed) answer body; nil when it is not a complete answer.
    static func read(body: ByteBuffer, kind: Kind) -> Draft? {
        guard let object = body.withUnsafeReadableBytes({ try? JSONSerialization.jsonObject(with: Data($0)) }) as? [String: Any],
            let choices = object["choices"] as? [[String: Any]]
        else { return nil }
        var draft = Draft(kind: kind)
        draft.model = object["model"] as? String ?? ""
        draft.systemFingerprint = object["system_fingerprint"] as? String
        draft.usage = usage(object["usage"])
        for (position, choice) in choices.enumerated() {
            var read = Choice(index: integer(choice["index"]) ?? position)
            read.finishReason = choice["finish_reason"] as? String
            switch kind {
            case .chat:
                guard let message = choice["message"] as? [String: Any] else { return nil }
                read.role = message["role"] as? String
                read.content = message["content"] as? String
                read.refusal = message["refusal"] as? String
                if let calls = message["tool_calls"] as? [[String: Any]], !calls.isEmpty {
                    let indexed = calls.enumerated().map { offset, call in
                        var call = call
                        if call["index"] == nil { call["index"] = offset }
                        return call
                    }
                    read.toolCalls = jsonText(indexed)
                }
            case .completion:
                read.content = choice["text"] as? String
            }
            draft.choices.append(read)
        }
        draft.choices.sort { $0.index < $1.index }
        return draft.isComplete ? draft : nil
    }

    /// Reads a stream from the data of its events (`[DONE]` excluded), merging each choice's deltas;
    /// nil when the events do not make a complete answer.
    static func read(events: [ByteBuffer], kind: Kind) -> Draft? {
        var draft = Draft(kind: kind)
        var byIndex: [Int: Choice] = [:]
        var toolCalls: [Int: [Int: [String: Any]]] = [:]
        for event in events {
            guard let object = event.withUnsafeReadableBytes({ try? JSONSerialization.jsonObject(with: Data($0)) }) as? [String: Any]
            else { return nil }
            if object["error"] != nil { return nil }
            if let model = object["model"] as? String, draft.model.isEmpty { draft.model = model }
            if let fingerprint = object["system_fingerprint"] as? String { draft.systemFingerprint = fingerprint }
            if let usage = usage(object["usage"]) { draft.usage = usage }
            for choice in object["choices"] as? [[String: Any]] ?? [] {
                let index = integer(choice["index"]) ?? 0
                var merged = byIndex[index] ?? Choice(index: index)
                if let reason = choice["finish_reason"] as? String { merged.finishReason = reason }
                switch kind {
                case .chat:
                    let delta = choice["delta"] as? [String: Any] ?? [:]
                    if let role = delta["role"] as? String { merged.role = role }
                    if let content = delta["content"] as? String { merged.content = (merged.content ?? "") + content }
                    if let refusal = delta["refusal"] as? String { merged.refusal = (merged.refusal ?? "") + refusal }
                    for call in delta["tool_calls"] as? [[String: Any]] ?? [] {
                        let position = integer(call["index"]) ?? 0
                        var whole = toolCalls[index, default: [:]][position] ?? ["index": position]
                        if let id = call["id"] as? String { whole["id"] = id }
                        if let type = call["type"] as? String { whole["type"] = type }
                        if let function = call["function"] as? [String: Any] {
                            var wholeFunction = whole["function"] as? [String: Any] ?? [:]
                            if let name = function["name"] as? String { wholeFunction["name"] = (wholeFunction["name"] as? String ?? "") + name }
                            if let arguments = function["arguments"] as? String {
                                wholeFunction["arguments"] = (wholeFunction["arguments"] as? String ?? "") + arguments
                            }
                            whole["function"] = wholeFunction
                        }
                        toolCalls[index, default: [:]][position] = whole
                    }
                case .completion:
                    if let text = choice["text"] as? String { merged.content = (merged.content ?? "") + text }
                }
                byIndex[index] = merged
            }
        }
        for (index, calls) in toolCalls {
            byIndex[index]?.toolCalls = jsonText(calls.sorted { $0.key < $1.key }.map(\.value))
        }
        draft.choices = byIndex.values.sorted { $0.index < $1.index }
        return draft.isComplete ? draft : nil
    }

    private static func usage(_ value: Any?) -> TokenUsage? {
        guard let object = value as? [String: Any] else { return nil }
        let prompt = integer(object["prompt_tokens"])
        let completion = integer(object["completion_tokens"])
        guard prompt != nil || completion != nil else { return nil }
        return TokenUsage(
            promptTokens: min(max(prompt ?? 0, 0), TokenUsage.maximumTokens),
            completionTokens: min(max(completion ?? 0, 0), TokenUsage.maximumTokens))
    }

    private static func integer(_ value: Any?) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        let double = number.doubleValue
        guard double.isFinite, double.rounded() == double, abs(double) < 1e15 else { return nil }
        return Int(double)
    }

    private static func jsonText(_ value: Any) -> String? {
        guard JSONSerialization.isValidJSONObject(value),
            let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}

// MARK: writing answers

extension CachedAnswer {
    /// The usage a caller is told (and billed) for this answer served from the cache.
    func billedUsage(_ billing: CacheSettings.Billing) -> TokenUsage {
        billing == .original ? usage : TokenUsage(promptTokens: 0, completionTokens: 0)
    }

    /// A fresh id in the engine's style: `chatcmpl-` or `cmpl-` and 24 random letters and digits.
    func freshID() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        var id = kind == .chat ? "chatcmpl-" : "cmpl-"
        for _ in 0..<24 { id.unicodeScalars.append(Unicode.Scalar(alphabet.randomElement()!)) }
        return id
    }

    /// The whole answer (`chat.completion` or `text_completion`).
    func body(id: String, created: Int, usage billed: TokenUsage, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = "{\"id\":\(JSONScanner.quoted(id)),\"object\":\"\(kind == .chat ? "chat.completion" : "text_completion")\""
        out += ",\"created\":\(created),\"model\":\(JSONScanner.quoted(model)),\"choices\":["
        for (position, choice) in choices.enumerated() {
            if position > 0 { out += "," }
            out += "{\"index\":\(choice.index),"
            switch kind {
            case .chat:
                out += "\"message\":{\"role\":\(JSONScanner.quoted(choice.role ?? "assistant")),\"content\":"
                out += choice.content.map(JSONScanner.quoted) ?? "null"
                if let refusal = choice.refusal { out += ",\"refusal\":\(JSONScanner.quoted(refusal))" }
                if let calls = choice.toolCalls { out += ",\"tool_calls\":\(calls)" }
                out += "},"
            case .completion:
                out += "\"text\":\(JSONScanner.quoted(choice.content ?? "")),"
            }
            out += "\"logprobs\":null,\"finish_reason\":\(choice.finishReason.map(JSONScanner.quoted) ?? "null")}"
        }
        out += "],\"usage\":\(Self.usageJSON(billed))"
        if let systemFingerprint { out += ",\"system_fingerprint\":\(JSONScanner.quoted(systemFingerprint))" }
        out += "}"
        var buffer = allocator.buffer(capacity: out.utf8.count)
        buffer.writeString(out)
        return buffer
    }

    /// The answer as the server-sent events an engine streams: a role chunk, content chunks of a few
    /// words, tool calls, a finish chunk per choice, the usage chunk when asked, and `[DONE]`.
    func events(id: String, created: Int, usage billed: TokenUsage, includeUsage: Bool) -> [String] {
        let object = kind == .chat ? "chat.completion.chunk" : "text_completion"
        let head = "{\"id\":\(JSONScanner.quoted(id)),\"object\":\"\(object)\",\"created\":\(created),\"model\":\(JSONScanner.quoted(model))"
            + (systemFingerprint.map { ",\"system_fingerprint\":\(JSONScanner.quoted($0))" } ?? "")
        var events: [String] = []
        func chunk(_ index: Int, _ payload: String, finish: String? = nil) {
            let reason = finish.map(JSONScanner.quoted) ?? "null"
            events.append("data: \(head),\"choices\":[{\"index\":\(index),\(payload),\"logprobs\":null,\"finish_reason\":\(reason)}]}\n\n")
        }
        for choice in choices {
            let pieces = Self.pieces(of: choice.content ?? "")
            switch kind {
            case .chat:
                chunk(choice.index, "\"delta\":{\"role\":\(JSONScanner.quoted(choice.role ?? "assistant")),\"content\":\"\"}")
                for piece in pieces { chunk(choice.index, "\"delta\":{\"content\":\(JSONScanner.quoted(piece))}") }
                if let refusal = choice.refusal { chunk(choice.index, "\"delta\":{\"refusal\":\(JSONScanner.quoted(refusal))}") }
                if let calls = choice.toolCalls { chunk(choice.index, "\"delta\":{\"tool_calls\":\(calls)}") }
                chunk(choice.index, "\"delta\":{}", finish: choice.finishReason)
            case .completion:
                for piece in pieces { chunk(choice.index, "\"text\":\(JSONScanner.quoted(piece))") }
                chunk(choice.index, "\"text\":\"\"", finish: choice.finishReason)
            }
        }
        if includeUsage { events.append("data: \(head),\"choices\":[],\"usage\":\(Self.usageJSON(billed))}\n\n") }
        events.append("data: [DONE]\n\n")
        return events
    }

    static func usageJSON(_ usage: TokenUsage) -> String {
        "{\"prompt_tokens\":\(usage.promptTokens),\"completion_tokens\":\(usage.completionTokens),\"total_tokens\":\(usage.promptTokens + usage.completionTokens)}"
    }

    /// Text cut into pieces of about `size` bytes, each ending after a space where one is near, never
    /// inside a character.
    static func pieces(of text: String, size: Int = 24) -> [String] {
        guard !text.isEmpty else { return [] }
        var pieces: [String] = []
        var current = ""
        var bytes = 0
        for character in text {
            current.append(character)
            bytes += character.utf8.count
            if bytes >= size && (character == " " || character == "\n" || bytes >= size * 2) {
                pieces.append(current)
                current = ""
                bytes = 0
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }
}
