import Foundation
import ProximaCore
import Testing

struct CacheableRequestTests {
    func chat(_ body: String) throws -> CacheableRequest {
        try CacheableRequest(kind: .chat, body: Array(body.utf8))
    }

    func text(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    static let base = #"""
        {"model":"m","temperature":0.7,"max_tokens":100,"messages":[
          {"role":"system","content":"Be brief."},
          {"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},
          {"role":"user","content":"How do I enable 2FA?"}],
         "tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"auto"}
        """#

    func replacing(_ old: String, with new: String) throws -> CacheableRequest {
        let body = Self.base.replacingOccurrences(of: old, with: new)
        #expect(body != Self.base, "the test changes the body")
        return try chat(body)
    }

    @Test func keyOrderWhitespaceAndTransportMembersDoNotChangeTheExactMaterial() throws {
        let a = try chat(#"{"model":"m","messages":[{"role":"user","content":"Hi"}],"temperature":0.5}"#)
        let b = try chat("""
            { "temperature" : 5e-1, "stream": true, "stream_options": {"include_usage": true}, "user": "u1",
              "metadata": {"k": "v"}, "store": false, "prompt_cache_key": "x", "safety_identifier": "s",
              "messages" : [ { "content" : "\\u0048i", "role" : "user" } ], "model" : "m" }
            """)
        #expect(a.exactMaterial == b.exactMaterial)
        #expect(a.partitionMaterial == b.partitionMaterial)
        #expect(a.canonicalInput == b.canonicalInput)
        #expect(text(a.exactMaterial) == #"{"messages":[{"content":"Hi","role":"user"}],"model":"m","temperature":0.5}"#)
    }

    @Test func everySamplingOrToolChangeChangesBothMaterials() throws {
        let original = try chat(Self.base)
        let changes: [(String, String)] = [
            (#""temperature":0.7"#, #""temperature":0.8"#),
            (#""max_tokens":100"#, #""max_tokens":101"#),
            (#""model":"m""#, #""model":"m2""#),
            (#""tool_choice":"auto""#, #""tool_choice":"none""#),
            (#""name":"f""#, #""name":"g""#),
            (#""max_tokens":100"#, #""max_tokens":100,"top_p":0.9"#),
            (#""max_tokens":100"#, #""max_tokens":100,"seed":1"#),
            (#""max_tokens":100"#, #""max_tokens":100,"response_format":{"type":"json_object"}"#),
            (#""max_tokens":100"#, #""max_tokens":100,"stop":["\n"]"#),
        ]
        for (old, new) in changes {
            let changed = try replacing(old, with: new)
            #expect(changed.exactMaterial != original.exactMaterial, "\(new)")
            #expect(changed.partitionMaterial != nil && changed.partitionMaterial != original.partitionMaterial, "\(new)")
        }
    }

    @Test func requestsDifferingOnlyInTheLastUserTurnShareThePartition() throws {
        let original = try chat(Self.base)
        let other = try replacing("How do I enable 2FA?", with: "How can I turn on two-factor authentication?")
        #expect(original.partitionMaterial != nil)
        #expect(original.partitionMaterial == other.partitionMaterial)
        #expect(original.exactMaterial != other.exactMaterial)
        #expect(original.semanticText == "How do I enable 2FA?")
        #expect(other.semanticText == "How can I turn on two-factor authentication?")
        // The text is gone from the partition material, the rest of the turn is not.
        #expect(!text(original.partitionMaterial)!.contains("enable"))
        #expect(text(original.partitionMaterial)!.contains("Be brief."))
    }

    @Test func theSystemPromptAndEarlierTurnsAreBoundIntoThePartition() throws {
        let original = try chat(Self.base)
        for (old, new) in [("Be brief.", "Be thorough."), (#""content":"Hi""#, #""content":"Hey""#), ("Hello", "Hello!"),
                           (#"{"role":"user","content":"Hi"},"#, "")] {
            let changed = try replacing(old, with: new)
            #expect(changed.partitionMaterial != nil)
            #expect(changed.partitionMaterial != original.partitionMaterial, "\(old)")
            #expect(changed.semanticText == original.semanticText)
        }
    }

    @Test func anEmptyLastTurnDiffersFromNoLastTurn() throws {
        let empty = try chat(#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":""}]}"#)
        let other = try chat(#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"x"}]}"#)
        let none = try chat(#"{"model":"m","messages":[{"role":"system","content":"s"}]}"#)
        #expect(empty.semanticText == "")
        #expect(empty.partitionMaterial == other.partitionMaterial)
        #expect(none.partitionMaterial == nil && none.semanticText == nil)
        #expect(empty.partitionMaterial != none.exactMaterial)
    }

    @Test func onlyATextualLastUserTurnHasASemanticPart() throws {
        let assistantLast = try chat(#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}"#)
        #expect(assistantLast.partitionMaterial == nil && assistantLast.semanticText == nil)
        let image = try chat(#"""
            {"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},
             {"type":"image_url","image_url":{"url":"data:x"}}]}]}
            """#)
        #expect(image.partitionMaterial == nil && image.semanticText == nil)
        let parts = try chat(#"""
            {"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"first"},{"type":"text","text":"second"}]}]}
            """#)
        #expect(parts.semanticText == "first\nsecond")
        #expect(parts.partitionMaterial != nil)
        let toolLast = try chat(#"{"model":"m","messages":[{"role":"tool","tool_call_id":"1","content":"42"}]}"#)
        #expect(toolLast.partitionMaterial == nil)
    }

    @Test func completionsUseASingleStringPrompt() throws {
        let a = try CacheableRequest(kind: .completion, body: Array(#"{"model":"m","prompt":"Once upon","max_tokens":5}"#.utf8))
        let b = try CacheableRequest(kind: .completion, body: Array(#"{"prompt":"Long ago","model":"m","max_tokens":5}"#.utf8))
        #expect(a.semanticText == "Once upon")
        #expect(a.partitionMaterial == b.partitionMaterial && a.partitionMaterial != nil)
        #expect(text(a.canonicalInput) == #""Once upon""#)
        let list = try CacheableRequest(kind: .completion, body: Array(#"{"model":"m","prompt":["a","b"]}"#.utf8))
        #expect(list.partitionMaterial == nil && list.semanticText == nil)
        #expect(text(list.canonicalInput) == #"["a","b"]"#)
    }

    @Test func samplingFieldsAreRead() throws {
        let plain = try chat(#"{"model":"m","messages":[]}"#)
        #expect(plain.temperature == nil && plain.choices == 1 && !plain.wantsLogprobs)
        #expect(text(plain.canonicalInput) == "[]")
        let asked = try chat(#"{"model":"m","messages":[],"temperature":1.0,"n":3,"logprobs":true}"#)
        #expect(asked.temperature == 1 && asked.choices == 3 && asked.wantsLogprobs)
        #expect(try chat(#"{"model":"m","messages":[],"top_logprobs":2,"logprobs":false}"#).wantsLogprobs)
        #expect(try !chat(#"{"model":"m","messages":[],"top_logprobs":null,"logprobs":false}"#).wantsLogprobs)
        #expect(try CacheableRequest(kind: .completion, body: Array(#"{"model":"m","prompt":"p","logprobs":5}"#.utf8)).wantsLogprobs)
    }

    @Test func aBodyThatIsNotAnObjectIsRefused() {
        #expect(throws: CanonicalJSON.Failure(.notAnObject, at: 0)) { try chat("[1]") }
        #expect(throws: CanonicalJSON.Failure(.unexpectedEnd, at: 1)) { try chat("{") }
    }
}
