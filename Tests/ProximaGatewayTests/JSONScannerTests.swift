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
}
