import Crypto
import Foundation
import ProximaCore
import ProximaGuard
import Testing

/// RFC 9421's own test material (Appendix B) and the Web Bot Auth profile's checks, one reason each.
@Suite struct SignedAgentTests {
    // MARK: RFC 9421 Appendix B

    /// B.1.4 `test-key-ed25519`: the public key as a JWK `x`, and the PKCS#8 private key whose last
    /// 32 bytes are the seed.
    static let rfcPublicX = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
    static let rfcPrivatePKCS8 = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"

    /// The B.2 test request, with B.2.6's signature.
    static var rfcRequest: SignedMessage {
        SignedMessage(
            method: "POST", scheme: "https", authority: "example.com", target: "/foo?param=Value&Pet=dog",
            fields: [
                .init(name: "Host", value: "example.com"),
                .init(name: "Date", value: "Tue, 20 Apr 2021 02:07:55 GMT"),
                .init(name: "Content-Type", value: "application/json"),
                .init(
                    name: "Content-Digest",
                    value: "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"),
                .init(name: "Content-Length", value: "18"),
                .init(
                    name: "Signature-Input",
                    value: #"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#),
                .init(name: "Signature", value: "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"),
            ])
    }

    static let rfcSignatureBase = """
        "date": Tue, 20 Apr 2021 02:07:55 GMT
        "@method": POST
        "@path": /foo
        "@authority": example.com
        "content-type": application/json
        "content-length": 18
        "@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"
        """

    static var rfcPrivateKey: Curve25519.Signing.PrivateKey {
        let pkcs8 = Data(base64Encoded: rfcPrivatePKCS8)!
        return try! Curve25519.Signing.PrivateKey(rawRepresentation: pkcs8.suffix(32))
    }

    @Test func theRFCSignatureBaseIsBuiltByteForByteAndItsEd25519SignatureVerifies() throws {
        let message = Self.rfcRequest
        let input = try StructuredFields.parseDictionary(message.fieldValue("signature-input")!)
        guard case .innerList(let parameters)? = input["sig-b26"] else {
            Issue.record("sig-b26 is not an inner list")
            return
        }
        let base = try SignatureBase.build(for: parameters, over: message)
        #expect(Array(base.utf8) == Array(Self.rfcSignatureBase.utf8))

        let signatures = try StructuredFields.parseDictionary(message.fieldValue("signature")!)
        guard case .item(let item)? = signatures["sig-b26"], case .byteSequence(let signature) = item.value else {
            Issue.record("sig-b26 is not a byte sequence")
            return
        }
        let key = try #require(AgentPublicKey(kty: "OKP", crv: "Ed25519", x: Self.rfcPublicX))
        #expect(key.isValidSignature(signature, for: base))
        // One byte of the base changed, and the same signature no longer verifies.
        #expect(!key.isValidSignature(signature, for: base.replacingOccurrences(of: "POST", with: "post")))
        // The B.1.4 private key is the pair of that public key.
        #expect(AgentPublicKey(key: Self.rfcPrivateKey.publicKey).x == Self.rfcPublicX)
    }

    @Test func thumbprintsMatchRFC8037AndTheWebBotAuthDraft() throws {
        // RFC 8037 Appendix A.3.
        #expect(AgentPublicKey.thumbprint(x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo") == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
        // The Web Bot Auth drafts name the RFC 9421 test key by this keyid.
        let key = try #require(AgentPublicKey(kty: "OKP", crv: "Ed25519", x: Self.rfcPublicX))
        #expect(key.thumbprint == "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U")
    }

    // MARK: structured fields

    @Test func structuredFieldsParseWhatSignaturesUseAndSerializeCanonically() throws {
        let dictionary = try StructuredFields.parseDictionary(
            #"sig1=("@authority" "signature-agent");created=1700000000;expires=1700000060;keyid="k\"1";tag="web-bot-auth";d=1.50;ok;no=?0,  b=:AQID:, t=tok/en:x"#)
        guard case .innerList(let list)? = dictionary["sig1"] else {
            Issue.record("no inner list")
            return
        }
        #expect(list.items.map(\.value) == [.string("@authority"), .string("signature-agent")])
        #expect(list.parameters["keyid"] == .string(#"k"1"#))
        #expect(list.parameters["d"] == .decimal(thousandths: 1_500))
        #expect(list.parameters["ok"] == .boolean(true))
        #expect(
            list.serialized
                == #"("@authority" "signature-agent");created=1700000000;expires=1700000060;keyid="k\"1";tag="web-bot-auth";d=1.5;ok;no=?0"#)
        #expect(dictionary["b"] == .item(StructuredFieldItem(.byteSequence([1, 2, 3]))))
        #expect(dictionary["t"] == .item(StructuredFieldItem(.token("tok/en:x"))))
    }

    @Test(arguments: [
        "", "   ", "Sig1=1", "sig1=(", #"sig1=("a""#, #"sig1=("a"x)"#, "sig1=1,", "sig1=1;", "sig1=:AQ*D:", "sig1=:AQID",
        #"sig1="\x""#, "sig1=\"\u{7F}\"", "sig1=1234567890123456", "sig1=1.", "sig1=1.2345", "sig1=?2", "sig1=1 x", "a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9",
    ])
    func structuredFieldsRefuseWhatRFC8941Refuses(_ text: String) {
        #expect(throws: StructuredFieldError.self) { try StructuredFields.parseDictionary(text) }
    }

    @Test func structuredFieldsRefuseAFieldLongerThan8KB() {
        let long = "sig1=\"" + String(repeating: "a", count: 8_200) + "\""
        #expect(throws: StructuredFieldError(.tooLong)) { try StructuredFields.parseDictionary(long) }
    }

    // MARK: key directories

    @Test func aDirectoryKeepsItsEd25519KeysAndRefusesGarbage() throws {
        let document = #"""
            {"keys": [{"kty": "RSA", "n": "abc", "e": "AQAB"}, {"kty": "OKP", "crv": "X25519", "x": "\#(Self.rfcPublicX)"},
                      {"kty": "OKP", "crv": "Ed25519", "x": 7}, {"kty": "OKP", "crv": "Ed25519", "x": "\#(Self.rfcPublicX)", "kid": "a"}],
             "purpose": "rag"}
            """#
        let directory = try AgentKeyDirectory(parsing: Array(document.utf8))
        #expect(directory.keys.map(\.thumbprint) == ["poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"])
        #expect(directory.key(thumbprint: "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U") != nil)

        #expect(throws: KeyDirectoryError(.notJSON)) { try AgentKeyDirectory(parsing: Array("<html>".utf8)) }
        #expect(throws: KeyDirectoryError(.noKeysArray)) { try AgentKeyDirectory(parsing: Array(#"{"keys": {}}"#.utf8)) }
        #expect(throws: KeyDirectoryError(.noUsableKeys)) { try AgentKeyDirectory(parsing: Array(#"{"keys": [{"kty":"EC"}]}"#.utf8)) }
        #expect(throws: KeyDirectoryError(.noUsableKeys)) {
            try AgentKeyDirectory(parsing: Array(#"{"keys": [{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}"#.utf8))
        }
        #expect(throws: KeyDirectoryError(.tooLarge)) { try AgentKeyDirectory(parsing: [UInt8](repeating: 0x20, count: 70_000)) }
    }

    @Test func agentOriginsAreNormalizedAndPrivateHostsRecognized() throws {
        #expect(AgentOrigin("HTTPS://Agent.Example:443/path?x")?.description == "https://agent.example")
        #expect(AgentOrigin("http://127.0.0.1:8080")?.directoryURL == "http://127.0.0.1:8080/.well-known/http-message-signatures-directory")
        #expect(AgentOrigin("ftp://agent.example") == nil)
        #expect(AgentOrigin("https://user@agent.example") == nil)
        #expect(AgentOrigin("https://agent.example:99999") == nil)
        #expect(AgentOrigin("https://") == nil)
        for text in ["http://localhost:1", "http://127.0.0.1", "https://10.1.2.3", "https://192.168.0.1", "https://[::1]:8443", "https://169.254.169.254"] {
            #expect(try #require(AgentOrigin(text)).isPrivateOrLoopback, "\(text)")
        }
        #expect(try #require(AgentOrigin("https://agent.example")).isPrivateOrLoopback == false)
        #expect(try #require(AgentOrigin("https://8.8.8.8")).isPrivateOrLoopback == false)
    }

    // MARK: the Web Bot Auth profile

    static let now: Double = 1_800_000_000
    static let agentOrigin = "https://agent.example"

    /// A request to the gateway naming its agent.
    static func request(authority: String = "gateway.example", agent: String? = "\"https://agent.example\"") -> SignedMessage {
        var fields: [SignedMessage.Field] = [.init(name: "Host", value: authority), .init(name: "User-Agent", value: "agent/1.0")]
        if let agent { fields.append(.init(name: "Signature-Agent", value: agent)) }
        return SignedMessage(method: "POST", scheme: "https", authority: authority, target: "/v1/chat/completions", fields: fields)
    }

    static func signed(
        _ message: SignedMessage, signer: WebBotAuthSigner = WebBotAuthSigner(key: rfcPrivateKey),
        components: [String] = ["@authority", "signature-agent"], created: Double = now - 10, expires: Double = now + 50,
        nonce: String? = "n-1", tag: String = "web-bot-auth"
    ) throws -> SignedMessage {
        let headers = try signer.sign(message, components: components, created: Int64(created), expires: Int64(expires), nonce: nonce, tag: tag)
        var message = message
        message.fields.append(.init(name: "Signature-Input", value: headers.signatureInput))
        message.fields.append(.init(name: "Signature", value: headers.signature))
        return message
    }

    static let profile = WebBotAuth(maximumLifetimeSeconds: 3_600, clockSkewSeconds: 5)
    static var directory: AgentKeyDirectory { AgentKeyDirectory(keys: [AgentPublicKey(key: rfcPrivateKey.publicKey)]) }

    /// The whole check as the gateway does it: claim, keys, signature, replay; nil when verified.
    static func verify(_ message: SignedMessage, now: Double = now, replayGuard: ReplayGuard = ReplayGuard(capacity: 16)) -> SignatureFailure? {
        do {
            guard let claim = try profile.claim(in: message, now: now) else { return .malformedSignature }
            try profile.verify(claim, in: message, keys: directory)
            return replayGuard.remember(claim, until: profile.rememberUntil(claim), now: now)
        } catch {
            return error
        }
    }

    @Test func aSignedRequestVerifiesAndNamesItsAgent() throws {
        let message = try Self.signed(Self.request())
        #expect(Self.verify(message) == nil)
        let claim = try #require(try Self.profile.claim(in: message, now: Self.now))
        #expect(claim.agent?.description == Self.agentOrigin)
        #expect(claim.keyID == "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U")
        #expect(claim.coveredComponents == ["@authority", "signature-agent"])
        // Every derived component resolves, and a signature over all of them verifies too.
        let all = ["@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query", "signature-agent", "user-agent"]
        #expect(Self.verify(try Self.signed(Self.request(), components: all)) == nil)
        // Without a Signature-Agent header, `signature-agent` need not be covered.
        #expect(Self.verify(try Self.signed(Self.request(agent: nil), components: ["@authority"])) == nil)
    }

    @Test func anUnsignedRequestHasNoClaim() throws {
        #expect(try Self.profile.claim(in: Self.request(), now: Self.now) == nil)
    }

    @Test func eachMutationGivesItsReason() throws {
        let valid = try Self.signed(Self.request())
        func changing(_ name: String, to value: String, in message: SignedMessage) -> SignedMessage {
            var message = message
            message.fields = message.fields.map { $0.name == name ? .init(name: name, value: value) : $0 }
            return message
        }
        // A covered header changed after signing.
        #expect(Self.verify(changing("signature-agent", to: "\"https://agent.evil\"", in: valid)) == .badSignature)
        var otherHost = valid
        otherHost.authority = "other.example"
        #expect(Self.verify(otherHost) == .badSignature)
        // The signature's bytes changed.
        let signatureValue = valid.fieldValue("signature")!
        var signatureBytes = [UInt8](try #require(Data(base64Encoded: String(signatureValue.dropFirst(6).dropLast()))))
        signatureBytes[10] ^= 1
        #expect(Self.verify(changing("signature", to: "sig1=:" + Data(signatureBytes).base64EncodedString() + ":", in: valid)) == .badSignature)
        // Time.
        #expect(Self.verify(valid, now: Self.now + 60) == .expired)
        #expect(Self.verify(valid, now: Self.now - 20) == .notYetValid)
        #expect(Self.verify(try Self.signed(Self.request(), created: Self.now, expires: Self.now + 3_601)) == .lifetimeTooLong)
        // The profile.
        #expect(Self.verify(try Self.signed(Self.request(), tag: "other-tag")) == .wrongTag)
        #expect(Self.verify(try Self.signed(Self.request(), components: ["signature-agent"])) == .missingComponent)
        #expect(Self.verify(try Self.signed(Self.request(), components: ["@authority"])) == .missingComponent)
        // A key the directory does not have.
        let stranger = WebBotAuthSigner(key: Curve25519.Signing.PrivateKey())
        #expect(Self.verify(try Self.signed(Self.request(), signer: stranger)) == .unknownKey)
        // Parameters.
        let input = valid.fieldValue("signature-input")!
        #expect(Self.verify(changing("signature-input", to: input + #";alg="rsa-pss-sha512""#, in: valid)) == .unsupportedAlgorithm)
        #expect(Self.verify(changing("signature-input", to: input.replacingOccurrences(of: ";expires=", with: ";until="), in: valid)) == .malformedSignature)
        #expect(Self.verify(changing("signature-input", to: "garbage(", in: valid)) == .malformedSignature)
        #expect(Self.verify(changing("signature-input", to: input.replacingOccurrences(of: "sig1=", with: "sig2="), in: valid)) == .malformedSignature)
        // A covered header the request does not carry.
        let coveringUserAgent = try Self.signed(Self.request(), components: ["@authority", "signature-agent", "user-agent"])
        var stripped = coveringUserAgent
        stripped.fields.removeAll(where: { $0.name == "user-agent" })
        #expect(Self.verify(stripped) == .missingComponent)
    }

    @Test func aReplayIsRefusedUntilTheSignatureExpiresAndTheGuardStaysBounded() throws {
        let replayGuard = ReplayGuard(capacity: 2)
        let first = try Self.signed(Self.request(), nonce: "a")
        #expect(Self.verify(first, replayGuard: replayGuard) == nil)
        #expect(Self.verify(first, replayGuard: replayGuard) == .replayed)
        // The same nonce on another signature (a later request) is a replay too.
        #expect(Self.verify(try Self.signed(Self.request(), created: Self.now - 9, nonce: "a"), replayGuard: replayGuard) == .replayed)
        // Without a nonce, the signature itself is remembered.
        let noNonce = try Self.signed(Self.request(), nonce: nil)
        #expect(Self.verify(noNonce, replayGuard: replayGuard) == nil)
        #expect(Self.verify(noNonce, replayGuard: replayGuard) == .replayed)
        // Full of unexpired signatures: a new one is refused, not remembered badly.
        #expect(Self.verify(try Self.signed(Self.request(), nonce: "b"), replayGuard: replayGuard) == .replayCacheFull)
        #expect(replayGuard.count == 2)
        // Once they expired, they are forgotten and room is made.
        let later = Self.now + 40
        let fresh = try Self.signed(Self.request(), created: later - 1, expires: later + 30, nonce: "c")
        #expect(Self.verify(fresh, now: later + 20, replayGuard: replayGuard) == nil)
        #expect(replayGuard.count == 1)
    }
}
