import NIOCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

@Suite struct JSONScannerTests {
    func members(_ text: String) throws -> [JSONScanner.Member] {
        var buffer = ByteBuffer(string: text)
        return try buffer.withUnsafeMutableReadableBytes { try JSONScanner.topLevelMembers(of: UnsafeRawBufferPointer($0)) }
    }

    @Test func readsTopLevelMembersWithKindsAndRanges() throws {
        let text = #"{"model": "m\u00e9", "n": -1.5e3, "ok": true, "x": null, "list": [1, {"a": [2]}], "o": {}}"#
        let found = try members(text)
        #expect(found.map(\.key) == ["model", "n", "ok", "x", "list", "o"])
        #expect(found.map(\.kind) == [.string, .number, .bool, .null, .array, .object])
        let bytes = Array(text.utf8)
        #expect(String(decoding: bytes[found[4].range], as: UTF8.self) == #"[1, {"a": [2]}]"#)
        let model = ByteBuffer(string: text).withUnsafeReadableBytes { JSONScanner.decodeString(at: found[0].range, in: $0) }
        #expect(model == "mé")
    }

    @Test(arguments: [
        "", "[]", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":01}", "{\"a\":tru}", "{\"a\":\"\u{01}\"}",
        "{\"a\":\"\\x\"}", "{\"a\":1} x", "{a:1}", "{\"a\":[1,]}", "{\"a\":-}", "{\"a\":1.}",
    ])
    func refusesInvalidJSON(text: String) {
        #expect(throws: JSONScanner.SyntaxError.self) { try members(text) }
    }

    @Test func refusesNestingDeeperThanTheLimit() {
        let deep = "{\"a\":" + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}"
        #expect(throws: JSONScanner.SyntaxError.self) { try members(deep) }
        let fine = "{\"a\":" + String(repeating: "[", count: 20) + String(repeating: "]", count: 20) + "}"
        #expect(throws: Never.self) { try members(fine) }
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let text = #"{"k":"a\"b\\c\/d\n\u0041\ud83d\ude00"}"#
        let found = try members(text)
        let value = ByteBuffer(string: text).withUnsafeReadableBytes { JSONScanner.decodeString(at: found[0].range, in: $0) }
        #expect(value == "a\"b\\c/d\nA😀")
    }

    @Test func quotingRoundTrips() throws {
        let original = "line\n\"quoted\" \\ tab\t \u{01} é"
        let text = "{\"k\":\(JSONScanner.quoted(original))}"
        let found = try members(text)
        let value = ByteBuffer(string: text).withUnsafeReadableBytes { JSONScanner.decodeString(at: found[0].range, in: $0) }
        #expect(value == original)
    }

    func members(bytes: [UInt8]) throws -> [JSONScanner.Member] {
        try bytes.withUnsafeBytes { try JSONScanner.topLevelMembers(of: $0) }
    }

    /// A `\u` escape cut short used to leave the escape switch instead of the loop, and the scanner
    /// spun on the same byte for good (issue 12).
    @Test(arguments: [#"{"\u"}"#, #"{"a":"\u"#, #"{"a":"\u0"#, #"{"a":"\u00e"#, #"{"a":"\u00e9"#, #"{"a":"\"#, #"{"\u12"}"#, #"{"a":"\u12"}"#])
    func refusesAnEscapeCutShort(text: String) {
        #expect(throws: JSONScanner.SyntaxError.self) { try members(text) }
    }

    @Test func everyTruncationOfARequestWithAnEscapeIsRefused() throws {
        let text = #"{"model":"m","messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00"}],"max_tokens":5}"#
        let bytes = Array(text.utf8)
        #expect(try members(bytes: bytes).count == 3)
        for length in 0..<bytes.count {
            #expect(throws: JSONScanner.SyntaxError.self, "first \(length) bytes") { try members(bytes: Array(bytes[0..<length])) }
        }
    }

    @Test(arguments: [
        [0x80], [0xC0, 0xAF], [0xC3], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80],
        [0xFF], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xC3, 0x28],
    ] as [[UInt8]])
    func refusesInvalidUTF8InStrings(sequence: [UInt8]) {
        let bytes = Array(#"{"a":"x"#.utf8) + sequence + Array(#"y"}"#.utf8)
        #expect(throws: JSONScanner.SyntaxError.self) { try members(bytes: bytes) }
        let key = Array(#"{""#.utf8) + sequence + Array(#"":1}"#.utf8)
        #expect(throws: JSONScanner.SyntaxError.self) { try members(bytes: key) }
    }

    @Test func acceptsValidMultiByteUTF8() throws {
        let text = "{\"k\":\"é € 😀 \u{10FFFF}\"}"
        let found = try members(text)
        let value = ByteBuffer(string: text).withUnsafeReadableBytes { JSONScanner.decodeString(at: found[0].range, in: $0) }
        #expect(value == "é € 😀 \u{10FFFF}")
    }

    @Test(arguments: [#"{"a":"\ud800"}"#, #"{"a":"\udc00"}"#, #"{"a":"\ud800\u0041"}"#, #"{"a":"\ud800x"}"#, #"{"a":"\ud800\ud800"}"#, #"{"\udfff":1}"#, #"{"a":"\ude00\ud83d"}"#])
    func refusesLoneSurrogates(text: String) {
        #expect(throws: JSONScanner.SyntaxError.self) { try members(text) }
    }

    @Test func refusesNumbersBeyondADoubleAndSaysWhy() throws {
        for text in [#"{"a":1e400}"#, #"{"a":-1.5E+309}"#, "{\"a\":" + String(repeating: "9", count: 400) + "}"] {
            #expect(throws: JSONScanner.SyntaxError(offset: 5, reason: "number out of range", code: .invalidNumber)) { try members(text) }
        }
        #expect(try members(#"{"a":1.7976931348623157e308,"b":1e-400,"c":-0,"d":123456789012345678901234567890}"#).count == 4)
    }

    @Test func errorsSayWhyInTypedCodes() {
        func code(_ text: String) -> JSONScanner.SyntaxError.Code? {
            do {
                _ = try members(text)
                return nil
            } catch let error as JSONScanner.SyntaxError {
                return error.code
            } catch {
                return nil
            }
        }
        #expect(code(#"{"\u"}"#) == .invalidEscape)
        #expect(code(#"{"a":"\u00"#) == .unexpectedEnd)
        #expect(code(#"{"a":"\ud800"}"#) == .loneSurrogate)
        #expect(code("{\"a\":\"\u{1}\"}") == .controlCharacter)
        #expect(code("") == .unexpectedEnd)
        #expect(code("[1]") == .notAnObject)
        #expect(code("{} {}") == .trailingData)
        #expect(code(#"{"a":nul}"#) == .invalidLiteral)
        #expect(code(#"{"a":nul"#) == .unexpectedEnd)
        #expect(code("{\"a\":" + String(repeating: "[", count: 100)) == .tooDeep)
    }
}
