import Testing

@testable import ProximaCore

@Suite struct IdentityTests {
    @Test func tokensRoundTripAndOnlyWellFormedOnesParse() {
        let id = APIKeyToken.base32([1, 2, 3, 4, 5, 6, 7])  // 56 bits -> 12 characters
        let secret = APIKeyToken.base32([UInt8](repeating: 0xA5, count: 32))  // 256 bits -> 52 characters
        #expect(id.count == APIKeyToken.idLength)
        #expect(secret.count == APIKeyToken.secretLength)
        let text = APIKeyToken.text(id: id, secret: secret)
        let token = APIKeyToken(parsing: text)
        #expect(token?.id == id[...])
        #expect(token?.secret == secret[...])
        #expect(APIKeyToken(parsing: String(text.dropLast())) == nil)
        #expect(APIKeyToken(parsing: text + "a") == nil)
        #expect(APIKeyToken(parsing: text.uppercased()) == nil)
        #expect(APIKeyToken(parsing: "sk_" + text.dropFirst(3)) == nil)
        var wrongSeparator = Array(text.utf8)
        wrongSeparator[APIKeyToken.prefix.utf8.count + APIKeyToken.idLength] = UInt8(ascii: "-")
        #expect(APIKeyToken(parsing: String(decoding: wrongSeparator, as: UTF8.self)) == nil)
        #expect(APIKeyToken(parsing: "") == nil)
    }

    @Test func base32MatchesTheRFCVectorsLowercased() {
        #expect(APIKeyToken.base32(Array("f".utf8)) == "my")
        #expect(APIKeyToken.base32(Array("fooba".utf8)) == "mzxw6ytb")
        #expect(APIKeyToken.base32(Array("foobar".utf8)) == "mzxw6ytboi")
    }

    @Test func keysStopWorkingWhenRevokedOrExpired() {
        var key = APIKey(id: "k", tenantID: "t", principalID: "p", secretHash: "", createdAt: 0, expiresAt: 100)
        #expect(key.isUsable(at: 99.9))
        #expect(!key.isUsable(at: 100))
        key.expiresAt = nil
        #expect(key.isUsable(at: 1e9))
        key.revokedAt = 5
        #expect(!key.isUsable(at: 1))
    }

    @Test func modelScopesMatchNamesAndPrefixes() {
        let scope = ModelScope.only(["llama-3.1-*", "qwen"])
        #expect(scope.allows("llama-3.1-8b"))
        #expect(scope.allows("qwen"))
        #expect(!scope.allows("qwen2"))
        #expect(!scope.allows("llama-3.2-1b"))
        #expect(ModelScope.all.allows("anything"))
        #expect(!ModelScope.only([]).allows("qwen"))
    }

    @Test func aKeyNarrowsItsTenantsModelsAndNeverWidensThem() {
        let tenant = ModelScope.only(["llama-*", "qwen"])
        #expect(tenant.intersecting(.all) == tenant)
        #expect(ModelScope.all.intersecting(tenant) == tenant)
        let narrowed = tenant.intersecting(.only(["llama-3.1-8b", "mistral"]))
        #expect(narrowed.allows("llama-3.1-8b"))
        #expect(!narrowed.allows("llama-3.2-1b"))
        #expect(!narrowed.allows("mistral"))
        #expect(!narrowed.allows("qwen"))
        let widening = ModelScope.only(["llama-3.1-8b"]).intersecting(.only(["llama-*"]))
        #expect(widening.allows("llama-3.1-8b"))
        #expect(!widening.allows("llama-3.1-70b"))
    }

    @Test func identityNamesAreShortSafeSlugs() {
        #expect(IdentityName.isValid("acme"))
        #expect(IdentityName.isValid("team-1.prod_x"))
        #expect(!IdentityName.isValid(""))
        #expect(!IdentityName.isValid("-acme"))
        #expect(!IdentityName.isValid("Acme"))
        #expect(!IdentityName.isValid("a b"))
        #expect(!IdentityName.isValid(String(repeating: "a", count: 65)))
        #expect(IdentityName.isValid(String(repeating: "a", count: 64)))
    }

    @Test func limitsFallBackToDefaultsOneByOne() {
        let own = ScopeLimits(requestsPerMinute: 10, dailyBudgetUSD: 2)
        let merged = own.merged(over: ScopeLimits(requestsPerMinute: 99, tokensPerMinute: 1000, dailyBudgetUSD: 50))
        #expect(merged == ScopeLimits(requestsPerMinute: 10, tokensPerMinute: 1000, dailyBudgetUSD: 2))
    }
}
