import ProximaCore
import Testing

@testable import ProximaStore

@Suite struct APIKeySecretTests {
    @Test func aMintedTokenMatchesItsOwnRecordOnly() throws {
        let (key, token) = APIKeySecret.mint(tenantID: "acme", principalID: "ci", createdAt: 1)
        let parsed = try #require(APIKeyToken(parsing: token))
        #expect(parsed.id == key.id[...])
        #expect(APIKeySecret.matches(parsed.secret, key))
        #expect(!token.contains(key.secretHash))
        let (other, otherToken) = APIKeySecret.mint(tenantID: "acme", principalID: "ci", createdAt: 1)
        #expect(other.id != key.id)
        #expect(!APIKeySecret.matches(try #require(APIKeyToken(parsing: otherToken)).secret, key))
        var flipped = Array(parsed.secret.utf8)
        flipped[0] = flipped[0] == UInt8(ascii: "a") ? UInt8(ascii: "b") : UInt8(ascii: "a")
        #expect(!APIKeySecret.matches(String(decoding: flipped, as: UTF8.self)[...], key))
    }

    @Test func theHashIsSHA256InHex() {
        #expect(APIKeySecret.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
