import Crypto
import ProximaCore
import ProximaGuard
import Testing

extension FuzzSuites {
    /// Truncations and mutations of valid `Signature-Input`, `Signature`, `Signature-Agent` values
    /// and key directories: no crash, no hang, and always a typed result (a claim or a
    /// ``SignatureFailure``; a directory or a ``KeyDirectoryError``).
    @Suite struct SignedAgentFuzzTests {
        @Test func signatureHeadersAlwaysGiveATypedResult() async throws {
            let valid = try SignedAgentTests.signed(
                SignedAgentTests.request(), components: ["@authority", "signature-agent", "@method", "@path", "@query"])
            let input = Array(valid.fieldValue("signature-input")!.utf8)
            let signature = Array(valid.fieldValue("signature")!.utf8)
            let agent = Array(valid.fieldValue("signature-agent")!.utf8)
            let verifiedOriginal = SignedAgentTests.verify(valid) == nil
            #expect(verifiedOriginal)
            var outcomes: [String: Int] = [:]
            let count = await GuardFuzzing.run(
                seeds: [input, signature, agent], iterations: GuardFuzzing.iterations(default: 3_000), seed: 0x5161_A6E7
            ) { bytes in
                // The mutated bytes take each header's place in turn (invalid UTF-8 is repaired, as
                // an HTTP stack would hand it over as text).
                let text = String(decoding: bytes, as: UTF8.self)
                for name in ["signature-input", "signature", "signature-agent"] {
                    var message = valid
                    message.fields = message.fields.map { $0.name == name ? .init(name: name, value: text) : $0 }
                    let outcome = SignedAgentTests.verify(message, replayGuard: ReplayGuard(capacity: 4))
                    outcomes[outcome?.rawValue ?? "verified", default: 0] += 1
                    // A structured field is parsed the same on every call.
                    _ = try? StructuredFields.parseDictionary(text)
                    _ = try? StructuredFields.parseItem(text)
                }
            }
            #expect(count > 3_000)
            // The mutations reach several reasons, not one wall.
            #expect(outcomes.keys.count >= 4, "\(outcomes)")
        }

        @Test func keyDirectoriesAlwaysGiveATypedResult() async throws {
            let document = Array(
                #"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"},{"kty":"RSA","n":"x","e":"AQAB"}]}"#.utf8)
            var parsed = 0
            let count = await GuardFuzzing.run(seeds: [document], iterations: GuardFuzzing.iterations(default: 2_000), seed: 0xD1EC) { bytes in
                do {
                    let directory = try AgentKeyDirectory(parsing: bytes)
                    #expect(!directory.keys.isEmpty)
                    parsed += 1
                } catch let error as KeyDirectoryError {
                    _ = error.code
                } catch {
                    Issue.record("an untyped error: \(error)")
                }
            }
            #expect(count > 2_000)
            #expect(parsed > 0)
        }
    }
}
