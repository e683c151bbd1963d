import Foundation
import NIOCore
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

@Suite struct InferenceRequestTests {
    func parse(_ text: String, _ operation: InferenceOperation = .chatCompletions) throws(GatewayError) -> InferenceRequest {
        try InferenceRequest(operation: operation, body: ByteBuffer(string: text))
    }

    func failure(_ text: String, _ operation: InferenceOperation = .chatCompletions) -> GatewayError? {
        do {
            _ = try parse(text, operation)
            return nil
        } catch {
            return error
        }
    }

    @Test func readsModelStreamAndUsageRequest() throws {
        let request = try parse(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":12}"#)
        #expect(request.model == "m")
        #expect(request.stream)
        #expect(request.callerWantsStreamUsage)
        #expect(request.maxOutputTokens == 12)
    }

    @Test(arguments: [
        ("", "invalid_request", nil as String?),
        ("{not json", "invalid_json", nil),
        (#"{"messages":[{"role":"user","content":"x"}]}"#, "invalid_request", "model"),
        (#"{"model":5,"messages":[]}"#, "invalid_request", "model"),
        (#"{"model":"","messages":[{"role":"user","content":"x"}]}"#, "invalid_request", "model"),
        (#"{"model":"m"}"#, "invalid_request", "messages"),
        (#"{"model":"m","messages":[]}"#, "invalid_request", "messages"),
        (#"{"model":"m","messages":"hi"}"#, "invalid_request", "messages"),
        (#"{"model":"m","messages":[{}],"stream":"yes"}"#, "invalid_request", "stream"),
        (#"{"model":"m","messages":[{}],"stream_options":[]}"#, "invalid_request", "stream_options"),
        (#"{"model":"m","messages":[{}],"max_tokens":-1}"#, "invalid_request", "max_tokens"),
        (#"{"model":"m","messages":[{}],"max_tokens":1.5}"#, "invalid_request", "max_tokens"),
        (#"{"model":"m","messages":[{}],"n":0}"#, "invalid_request", "n"),
        (#"{"model":"m","messages":[{}],"max_tokens":9223372036854775807}"#, "invalid_request", "max_tokens"),
        (#"{"model":"m","messages":[{}],"max_tokens":2147483648}"#, "invalid_request", "max_tokens"),
        (#"{"model":"m","messages":[{}],"max_completion_tokens":99999999999}"#, "invalid_request", "max_completion_tokens"),
        (#"{"model":"m","messages":[{}],"max_tokens":1e400}"#, "invalid_json", nil),
        (#"{"model":"m","messages":[{}],"max_tokens":1e3}"#, "invalid_request", "max_tokens"),
        (#"{"model":"m","messages":[{}],"n":129}"#, "invalid_request", "n"),
        (#"{"model":"m","messages":[{}],"n":9223372036854775807}"#, "invalid_request", "n"),
        (#"{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":1}}"#, "invalid_request", "stream_options.include_usage"),
        ("{\"model\":\"m\",\"messages\":[{\"content\":\"\\u\"}]}", "invalid_json", nil),
    ])
    func badChatRequestsNameTheField(text: String, code: String, param: String?) {
        let error = failure(text)
        #expect(error?.status == .badRequest)
        #expect(error?.code == code)
        #expect(error?.param == param)
    }

    @Test func theLargestMaxTokensAcceptedIsTwoToTheThirtyFirstMinusOne() throws {
        #expect(try parse(#"{"model":"m","messages":[{}],"max_tokens":2147483647}"#).maxOutputTokens == 2_147_483_647)
        #expect(try parse(#"{"model":"m","messages":[{}],"max_completion_tokens":0}"#).maxOutputTokens == 0)
    }

    @Test func completionsAndEmbeddingsNeedTheirInputField() {
        #expect(failure(#"{"model":"m"}"#, .completions)?.param == "prompt")
        #expect(failure(#"{"model":"m","prompt":3}"#, .completions)?.param == "prompt")
        #expect(failure(#"{"model":"m","input":[]}"#, .embeddings)?.param == "input")
        #expect(failure(#"{"model":"m","input":"x","stream":true}"#, .embeddings)?.param == "stream")
        #expect(failure(#"{"model":"m","prompt":"x"}"#, .completions) == nil)
        #expect(failure(#"{"model":"m","input":["a","b"]}"#, .embeddings) == nil)
    }

    func rewritten(_ text: String, upstream: String) throws -> [String: Any] {
        let request = try parse(text)
        let body = request.upstreamBody(upstreamModel: upstream, allocator: .init())
        return try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
    }

    @Test func rewritesTheModelAndKeepsEverythingElse() throws {
        let object = try rewritten(#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0.5}"#, upstream: "org/\"big\"")
        #expect(object["model"] as? String == "org/\"big\"")
        #expect(object["temperature"] as? Double == 0.5)
        #expect(object["stream_options"] == nil)
    }

    @Test func asksForStreamUsageWhenTheCallerDidNot() throws {
        let plain = try rewritten(#"{"model":"m","messages":[{}],"stream":true}"#, upstream: "m")
        #expect((plain["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        let emptyOptions = try rewritten(#"{"model":"m","messages":[{}],"stream":true,"stream_options":{}}"#, upstream: "m")
        #expect((emptyOptions["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        let otherOptions = try rewritten(#"{"model":"m","messages":[{}],"stream":true,"stream_options":{"x":1}}"#, upstream: "m")
        #expect((otherOptions["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        #expect((otherOptions["stream_options"] as? [String: Any])?["x"] as? Int == 1)
        let refused = try rewritten(#"{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":false}}"#, upstream: "m")
        #expect((refused["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        #expect(try !parse(#"{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":false}}"#).callerWantsStreamUsage)
    }

    @Test func leavesTheBodyUntouchedWhenNothingChanges() throws {
        let text = #"{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}"#
        let request = try parse(text)
        #expect(request.upstreamBody(upstreamModel: "m", allocator: .init()) == ByteBuffer(string: text))
    }
}

/// Prefix affinity hashes the canonical form: callers that serialize the same messages differently
/// share their prefix blocks.
struct PrefixHashingTests {
    static let long = String(repeating: "Context paragraph about the fleet. ", count: 200)

    @Test func theSameMessagesSerializedDifferentlyShareTheirPrefixBlocks() throws {
        let compact = #"{"model":"m","messages":[{"role":"system","content":"# + JSONScanner.quoted(Self.long) + #"},{"role":"user","content":"a"}]}"#
        let spaced = #"{ "messages" : [ { "content" : "# + JSONScanner.quoted(Self.long) + #", "role" : "system" }, {"content":"b","role":"user"} ], "model":"m" }"#
        let first = try InferenceRequest(operation: .chatCompletions, body: ByteBuffer(string: compact)).prefixBlockHashes()
        let second = try InferenceRequest(operation: .chatCompletions, body: ByteBuffer(string: spaced)).prefixBlockHashes()
        #expect(first.count >= 3)
        // The system prompt fills the first blocks; the last block differs with the user turn.
        #expect(Array(first.prefix(2)) == Array(second.prefix(2)))
        let other = compact.replacingOccurrences(of: "Context paragraph", with: "Another paragraph")
        let third = try InferenceRequest(operation: .chatCompletions, body: ByteBuffer(string: other)).prefixBlockHashes()
        #expect(third.first != first.first)
        // The cache stage's canonical input, when it made one, hashes the same.
        var shared = try InferenceRequest(operation: .chatCompletions, body: ByteBuffer(string: spaced))
        shared.canonicalInput = try Array(spaced.utf8).withUnsafeBytes { try CacheableRequest(kind: .chat, body: $0) }.canonicalInput
        #expect(shared.prefixBlockHashes() == second)
    }
}
