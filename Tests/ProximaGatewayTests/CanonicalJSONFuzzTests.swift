import Foundation
import ProximaCore
import Testing

extension FuzzSuites {
    /// The proof that the cache's canonical JSON reader is total: for every truncation and thousands of
    /// mutations of realistic request bodies it terminates, never traps, fails only with its typed
    /// error at an offset inside the input, and what it accepts has a canonical form that is a fixed
    /// point and that Foundation's parser reads too. (It lives here, beside the other parser fuzz
    /// suites, to share their mutator and watchdog.)
    @Suite struct CanonicalJSONFuzzTests {
        static let seeds: [[UInt8]] = [
            EngineSamples.chatRequest, EngineSamples.completionRequest,
            #"{"a":[1,-2.5e-3,1.0,1E2,-0,true,false,null,{"b":"\u0041\/\\\b"}],"":{},"c":"é€😀","a":{"z":0.1}}"#,
            #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"text","text":"\ud83d\ude00"}]}],"n":2,"top_logprobs":3}"#,
            "[" + String(repeating: "{\"d\":[", count: 30) + String(repeating: "]}", count: 30) + "]",
        ].map { Array($0.utf8) }

        @Test func canonicalizationIsTotal() async {
            var accepted = 0
            await Fuzzing.run("canonical-json", seeds: Self.seeds, iterations: Fuzzing.iterations(default: 16_000)) { input, label in
                let output: [UInt8]
                do throws(CanonicalJSON.Failure) {
                    output = try CanonicalJSON.canonicalize(input)
                } catch {
                    #expect(error.offset >= 0 && error.offset <= input.count, "\(label): \(error)")
                    return
                }
                accepted += 1
                #expect((try? CanonicalJSON.canonicalize(output)) == output, "\(label): not a fixed point: \(Fuzzing.describe(input))")
                #expect((try? JSONSerialization.jsonObject(with: Data(output), options: [.fragmentsAllowed])) != nil,
                        "\(label): wrote what Foundation refuses: \(Fuzzing.describe(output))")
            }
            #expect(accepted > 0, "some mutations stay valid")
        }

        @Test func cacheableRequestsAreTotal() async {
            await Fuzzing.run("cacheable-request", seeds: Self.seeds.prefix(4).map { $0 }, iterations: Fuzzing.iterations(default: 8_000)) { input, label in
                let kind: CacheableRequest.Kind = input.count % 2 == 0 ? .chat : .completion
                let request: CacheableRequest
                do throws(CanonicalJSON.Failure) {
                    request = try CacheableRequest(kind: kind, body: input)
                } catch {
                    #expect(error.offset >= 0 && error.offset <= input.count, "\(label): \(error)")
                    return
                }
                #expect((try? CanonicalJSON.canonicalize(request.exactMaterial)) == request.exactMaterial, "\(label)")
                #expect((try? CanonicalJSON.canonicalize(request.canonicalInput)) == request.canonicalInput, "\(label)")
                #expect((request.partitionMaterial == nil) == (request.semanticText == nil), "\(label)")
                if let partition = request.partitionMaterial {
                    #expect((try? CanonicalJSON.canonicalize(partition)) == partition, "\(label)")
                }
            }
        }
    }
}
