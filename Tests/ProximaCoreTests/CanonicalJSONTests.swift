import ProximaCore
import Testing

struct CanonicalJSONTests {
    func canonical(_ text: String, depthLimit: Int = CanonicalJSON.defaultDepthLimit) throws -> String {
        String(decoding: try CanonicalJSON.canonicalize(Array(text.utf8), depthLimit: depthLimit), as: UTF8.self)
    }

    func failure(_ text: String, depthLimit: Int = CanonicalJSON.defaultDepthLimit) -> CanonicalJSON.Failure? {
        do {
            _ = try CanonicalJSON.canonicalize(Array(text.utf8), depthLimit: depthLimit)
            return nil
        } catch {
            return error
        }
    }

    func failure(bytes: [UInt8]) -> CanonicalJSON.Failure? {
        do {
            _ = try CanonicalJSON.canonicalize(bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test func keyOrderAndWhitespaceDoNotChangeTheForm() throws {
        let a = try canonical(#"{"b": [1, 2, {"y": null, "x": true}], "a": "s"}"#)
        let b = try canonical(" {\n\t\"a\":\"s\" ,\r\n\"b\":[1,2,{\"x\":true,\"y\":null}]} ")
        #expect(a == b)
        #expect(a == #"{"a":"s","b":[1,2,{"x":true,"y":null}]}"#)
    }

    @Test func membersAreSortedByTheUTF8BytesOfTheUnescapedKey() throws {
        // "é" (C3 A9) sorts after "z"; "\u0041" is "A", which sorts before "a".
        #expect(try canonical(#"{"é":1,"z":2,"a":3,"\u0041":4}"#) == #"{"A":4,"a":3,"z":2,"é":1}"#)
    }

    @Test func aDuplicateKeyKeepsItsLastValueAsPythonDoes() throws {
        #expect(try canonical(#"{"a":1,"b":2,"a":3}"#) == #"{"a":3,"b":2}"#)
        #expect(try canonical(#"{"a":1,"\u0061":{"c":1,"c":[]}}"#) == #"{"a":{"c":[]}}"#)
    }

    @Test func stringsAreEscapedMinimally() throws {
        #expect(try canonical(#""\u0041\/\u00e9\ud83d\ude00""#) == "\"A/é😀\"")
        #expect(try canonical(#""q\"b\\ \n\t\r\b\f\u0001\u001f\u007f""#) == "\"q\\\"b\\\\ \\n\\t\\r\\b\\f\\u0001\\u001f\u{7f}\"")
        #expect(try canonical("\"\u{2028}é\"") == "\"\u{2028}é\"")
    }

    @Test func equalNumbersHaveOneForm() throws {
        #expect(try canonical("[1, 1.0, 1e0, 10E-1, 0.1e1]") == "[1,1,1,1,1]")
        #expect(try canonical("[-0, -0.0, 0e5, 1e-400]") == "[0,0,0,0]")
        #expect(try canonical("[0.5, 5e-1, 2.50, 1e-5, 1.5e300]") == "[0.5,0.5,2.5,1e-05,1.5e+300]")
        #expect(try canonical("[9007199254740992.0, 9007199254740993.0, 1e20]") == "[9007199254740992,9007199254740992,1e+20]")
        // An integer literal stays as written, however large.
        #expect(try canonical("[123456789012345678901234567890, -7]") == "[123456789012345678901234567890,-7]")
    }

    @Test func topLevelScalarsAreDocuments() throws {
        #expect(try canonical(" 3 ") == "3")
        #expect(try canonical("\"x\"") == "\"x\"")
        #expect(try canonical("null") == "null")
    }

    @Test func errorsSayWhatAndWhere() {
        #expect(failure("") == .init(.unexpectedEnd, at: 0))
        #expect(failure(#"{"a":1,}"#) == .init(.unexpectedByte(UInt8(ascii: "}")), at: 7))
        #expect(failure(#"{"a" 1}"#) == .init(.unexpectedByte(UInt8(ascii: "1")), at: 5))
        #expect(failure("[1] x") == .init(.trailingContent, at: 4))
        #expect(failure("[01]") == .init(.unexpectedByte(UInt8(ascii: "1")), at: 2))
        #expect(failure("[1.]") == .init(.invalidNumber, at: 3))
        #expect(failure("-") == .init(.unexpectedEnd, at: 1))
        #expect(failure("1e400") == .init(.numberOutOfRange, at: 0))
        #expect(failure("[NaN]") == .init(.unexpectedByte(UInt8(ascii: "N")), at: 1))
        #expect(failure(#""\x""#) == .init(.invalidEscape, at: 1))
        #expect(failure(#""ab\ud800""#) == .init(.invalidSurrogate, at: 3))
        #expect(failure(#""\udc00\ud800""#) == .init(.invalidSurrogate, at: 1))
        #expect(failure(#""\ud800\u0041""#) == .init(.invalidSurrogate, at: 1))
        #expect(failure("\"a\nb\"") == .init(.controlCharacterInString, at: 2))
        #expect(failure(bytes: [0x22, 0x61, 0xFF, 0x22]) == .init(.invalidUTF8, at: 2))
        #expect(failure(bytes: [0x22, 0xED, 0xA0, 0x80, 0x22]) == .init(.invalidUTF8, at: 1), "an encoded surrogate")
        #expect(failure(bytes: [0x22, 0xC0, 0xAF, 0x22]) == .init(.invalidUTF8, at: 1), "an overlong form")
        #expect(failure(bytes: [0x22, 0xE2, 0x82]) == .init(.invalidUTF8, at: 1), "a cut sequence")
        #expect(failure("tru") == .init(.unexpectedEnd, at: 3))
        #expect(failure("{\"a\":1}").map(\.description) == nil)
        #expect(failure("[1,]")?.description == "invalid JSON: unexpected byte 0x5d at byte 3")
    }

    @Test func nestingIsBoundedByTheDepthLimit() throws {
        let deep = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try canonical(deep) == deep)
        let deeper = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(failure(deeper) == .init(.tooDeep(limit: 64), at: 64))
        #expect(failure(#"{"a":{"b":{}}}"#, depthLimit: 2) == .init(.tooDeep(limit: 2), at: 10))
        // Far past the limit fails cleanly rather than exhausting the stack.
        #expect(failure(String(repeating: "[", count: 100_000))?.reason == .tooDeep(limit: 64))
    }

    @Test func theCanonicalFormIsAFixedPoint() throws {
        let inputs = [#"{"z":[1.0,{"b":"\u00e9","a":-0}],"a":{"\n":1e2}}"#, "[true,false,null,\"\"]", "1.25e-7"]
        for input in inputs {
            let once = try canonical(input)
            #expect(try canonical(once) == once)
        }
    }

    @Test func valuesCompareByBytesNotByUnicodeEquivalence() throws {
        let composed = try CanonicalJSON.canonicalize(Array("\"\u{e9}\"".utf8))
        let decomposed = try CanonicalJSON.canonicalize(Array("\"e\u{301}\"".utf8))
        #expect(composed != decomposed)
        let a = try Array("\"\u{e9}\"".utf8).withUnsafeBytes { try CanonicalJSON.parse($0) }
        let b = try Array("\"e\u{301}\"".utf8).withUnsafeBytes { try CanonicalJSON.parse($0) }
        #expect(a != b)
    }
}
