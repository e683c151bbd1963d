import Foundation
import NIOCore
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// Reading answers into the cache's form and writing them back, whole or as a stream.
struct CachedAnswerTests {
    static let whole = #"{"id":"x","object":"chat.completion","created":1,"model":"smol","system_fingerprint":"fp1","choices":[{"index":0,"message":{"role":"assistant","content":"Héllo \"there\"\n😀"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":4,"total_tokens":11}}"#

    static func answer(_ draft: CachedAnswer.Draft) -> CachedAnswer {
        CachedAnswer(
            kind: draft.kind, choices: draft.choices, model: draft.model, systemFingerprint: draft.systemFingerprint,
            usage: draft.usage ?? .init(promptTokens: 0, completionTokens: 0), price: .free, tenant: "t", prompt: "hi", generationSeconds: 1)
    }

    @Test func aWholeAnswerRoundTrips() throws {
        let draft = try #require(CachedAnswer.read(body: ByteBuffer(string: Self.whole), kind: .chat))
        #expect(draft.choices.count == 1)
        #expect(draft.choices[0].content == "Héllo \"there\"\n😀")
        #expect(draft.usage == TokenUsage(promptTokens: 7, completionTokens: 4))
        let answer = Self.answer(draft)
        let body = answer.body(id: "chatcmpl-new", created: 42, usage: answer.usage, allocator: ByteBufferAllocator())
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
        #expect(object["id"] as? String == "chatcmpl-new")
        #expect(object["created"] as? Int == 42)
        #expect(object["model"] as? String == "smol")
        #expect(object["system_fingerprint"] as? String == "fp1")
        let message = ((object["choices"] as? [[String: Any]])?.first?["message"]) as? [String: Any]
        #expect(message?["content"] as? String == "Héllo \"there\"\n😀")
        #expect((object["usage"] as? [String: Any])?["total_tokens"] as? Int == 11)
    }

    @Test func streamDeltasAndToolCallsMergeIntoOneAnswer() throws {
        let events = [
            #"{"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            #"{"model":"m","choices":[{"index":0,"delta":{"content":"It is "}}]}"#,
            #"{"model":"m","choices":[{"index":0,"delta":{"content":"sunny."}}]}"#,
            #"{"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"ci"}}]}}]}"#,
            #"{"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Oslo\"}"}}]}}]}"#,
            #"{"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            #"{"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":6}}"#,
        ].map { ByteBuffer(string: $0) }
        let draft = try #require(CachedAnswer.read(events: events, kind: .chat))
        #expect(draft.choices[0].content == "It is sunny.")
        #expect(draft.choices[0].finishReason == "tool_calls")
        #expect(draft.usage == TokenUsage(promptTokens: 9, completionTokens: 6))
        let calls = try #require(draft.choices[0].toolCalls)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(calls.utf8)) as? [[String: Any]])
        #expect((parsed[0]["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Oslo"}"#)
        #expect(parsed[0]["id"] as? String == "call_1")
        // Replayed, the stream carries the same text and calls, and ends with [DONE].
        let replay = Self.answer(draft).events(id: "chatcmpl-a", created: 1, usage: draft.usage!, includeUsage: true)
        #expect(replay.last == "data: [DONE]\n\n")
        let again = try #require(CachedAnswer.read(events: replay.dropLast().map { ByteBuffer(string: String($0.dropFirst(6).dropLast(2))) }, kind: .chat))
        #expect(again.choices == draft.choices)
        #expect(again.usage == draft.usage)
    }

    @Test func unfinishedOrBrokenAnswersAreNotKept() {
        #expect(CachedAnswer.read(body: ByteBuffer(string: Self.whole.replacingOccurrences(of: #""finish_reason":"stop""#, with: #""finish_reason":null"#)), kind: .chat) == nil)
        #expect(CachedAnswer.read(body: ByteBuffer(string: String(Self.whole.dropLast(5))), kind: .chat) == nil)
        #expect(CachedAnswer.read(body: ByteBuffer(string: #"{"choices":[]}"#), kind: .chat) == nil)
        let unfinished = [ByteBuffer(string: #"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#)]
        #expect(CachedAnswer.read(events: unfinished, kind: .chat) == nil)
        let withError = unfinished + [ByteBuffer(string: #"{"error":{"message":"x"}}"#)]
        #expect(CachedAnswer.read(events: withError, kind: .chat) == nil)
    }

    @Test func completionsKeepTheirText() throws {
        let body = #"{"object":"text_completion","model":"m","choices":[{"index":0,"text":"four","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":1}}"#
        let draft = try #require(CachedAnswer.read(body: ByteBuffer(string: body), kind: .completion))
        let answer = Self.answer(draft)
        let events = answer.events(id: "cmpl-1", created: 1, usage: answer.usage, includeUsage: false)
        #expect(events.contains { $0.contains(#""object":"text_completion""#) && $0.contains(#""text":"four""#) })
        #expect(!events.contains { $0.contains("usage") })
    }

    @Test func piecesNeverSplitACharacterAndLoseNothing() {
        let text = "Grüße aus Köln 😀👩‍👩‍👧 — " + String(repeating: "mot ", count: 40) + "fin"
        let pieces = CachedAnswer.pieces(of: text)
        #expect(pieces.joined() == text)
        #expect(pieces.count > 5)
        #expect(pieces.allSatisfy { $0.utf8.count <= 64 })
        #expect(CachedAnswer.pieces(of: "").isEmpty)
    }
}

extension FuzzSuites {
    /// The cache reads what upstreams answer: for every truncation and mutation of real answers it
    /// terminates, never traps, and keeps only complete answers (each choice finished).
    @Suite struct CachedAnswerFuzzTests {
        @Test func readingAnswersIsTotal() async throws {
            let seeds = [
                Array(CachedAnswerTests.whole.utf8), Array(EngineSamples.vllmAnswer.utf8),
                Array(#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1e-3,2E2,0]}],"model":"e5"}"#.utf8),
            ]
            await Fuzzing.run("cached-answer", seeds: seeds, iterations: Fuzzing.iterations(default: 4_000)) { input, label in
                for kind in [CachedAnswer.Kind.chat, .completion] {
                    if let draft = CachedAnswer.read(body: ByteBuffer(bytes: input), kind: kind) {
                        #expect(draft.isComplete, "\(label)")
                    }
                    if let vector = CacheStage.vector(from: ByteBuffer(bytes: input)) {
                        #expect(!vector.isEmpty && vector.allSatisfy(\.isFinite), "\(label)")
                    }
                    if let draft = CachedAnswer.read(events: [ByteBuffer(bytes: input)], kind: kind) {
                        #expect(draft.isComplete, "\(label)")
                        _ = CachedAnswerTests.answer(draft).events(id: "x", created: 0, usage: .init(promptTokens: 0, completionTokens: 0), includeUsage: true)
                    }
                }
            }
        }
    }
}
