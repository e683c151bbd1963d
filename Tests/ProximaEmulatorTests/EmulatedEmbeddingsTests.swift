import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ProximaCore
import Testing
@testable import ProximaEmulator

/// The emulated embeddings model over HTTP: an endpoint serving a chat model and an embeddings model.
@Suite(.serialized) struct EmulatedEmbeddingsTests {
    static func withEmbeddingsEndpoint(_ body: (String) async throws -> Void) async throws {
        let configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "frankfurt", latitude: 50.11, longitude: 8.68)],
            endpoints: [
                EndpointSettings(
                    name: "emb0", url: "http://127.0.0.1:\(try freePort())/v1", site: "frankfurt", engine: .emulated,
                    models: [.init(name: "embed", upstream: "emu-embed"), .init(name: "emu")], gpu: .init(profile: "L40S-8B"))
            ],
            models: [ModelSettings(name: "embed", kind: .embeddings), ModelSettings(name: "emu")])
        let fleet = try await EmulatorFleet.start(configuration: configuration, logger: Logger(label: "emu", factory: { _ in SwiftLogNoOpLogHandler() }))
        do {
            try await body(fleet.baseURL(of: "emb0")!)
        } catch {
            await fleet.stop()
            throw error
        }
        await fleet.stop()
    }

    static func post(_ base: String, _ body: String, path: String = "/embeddings") async throws -> (status: Int, json: [String: Any]?) {
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await EmulatorHTTP.client.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 24)
        return (Int(response.status.code), try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any])
    }

    static func vectors(_ json: [String: Any]?) -> [[Float]] {
        let data = json?["data"] as? [[String: Any]] ?? []
        return data.map { item in (item["embedding"] as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.floatValue } }
    }

    @Test func vectorsAreDeterministicUnitLengthAndOfTheDocumentedDimension() async throws {
        try await Self.withEmbeddingsEndpoint { base in
            let body = #"{"model":"emu-embed","input":["How do I reset my password?","the weather in Paris"]}"#
            let first = try await Self.post(base, body)
            let second = try await Self.post(base, body)
            #expect(first.status == 200)
            #expect(first.json?["object"] as? String == "list")
            #expect(first.json?["model"] as? String == "emu-embed")
            let usage = first.json?["usage"] as? [String: Any]
            #expect(usage?["prompt_tokens"] as? Int == 10)
            #expect(usage?["total_tokens"] as? Int == 10)
            let data = try #require(first.json?["data"] as? [[String: Any]])
            #expect(data.map { $0["index"] as? Int } == [0, 1])
            #expect(data.allSatisfy { $0["object"] as? String == "embedding" })
            let vectors = Self.vectors(first.json)
            #expect(vectors.count == 2)
            #expect(vectors.allSatisfy { $0.count == 384 })
            for vector in vectors {
                let norm = vector.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                #expect(abs(norm - 1) < 1e-4)
            }
            #expect(Self.vectors(second.json) == vectors)
            // The same text alone gets the same vector as inside an array.
            let single = try await Self.post(base, #"{"model":"emu-embed","input":"How do I reset my password?"}"#)
            #expect(Self.vectors(single.json).first == vectors[0])
        }
    }

    @Test func paraphrasesSharingWordsAreCloserThanUnrelatedTexts() async throws {
        try await Self.withEmbeddingsEndpoint { base in
            let body = #"{"model":"emu-embed","input":["How do I reset my password?","How can I reset my password?","What time does the bakery open on Sunday?"]}"#
            let vectors = Self.vectors(try await Self.post(base, body).json)
            let paraphrase = HashedTextEmbedding.cosine(vectors[0], vectors[1])
            let unrelated = HashedTextEmbedding.cosine(vectors[0], vectors[2])
            #expect(paraphrase > 0.7)
            #expect(unrelated < 0.3)
            #expect(paraphrase > unrelated)
        }
    }

    @Test func shortenedAndBase64VectorsMatchTheFullOnes() async throws {
        try await Self.withEmbeddingsEndpoint { base in
            let full = Self.vectors(try await Self.post(base, #"{"model":"emu-embed","input":"cancel my order"}"#).json)[0]
            let short = Self.vectors(try await Self.post(base, #"{"model":"emu-embed","input":"cancel my order","dimensions":64}"#).json)[0]
            #expect(short.count == 64)
            #expect(HashedTextEmbedding.cosine(Array(full[..<64]), short) > 0.9999)
            let encoded = try await Self.post(base, #"{"model":"emu-embed","input":"cancel my order","encoding_format":"base64"}"#)
            let text = try #require((encoded.json?["data"] as? [[String: Any]])?.first?["embedding"] as? String)
            let bytes = try #require(Data(base64Encoded: text))
            let raw = [UInt8](bytes)
            var decoded: [Float] = []
            for offset in stride(from: 0, to: raw.count, by: 4) {
                var bits = UInt32(raw[offset])
                bits |= UInt32(raw[offset + 1]) << 8
                bits |= UInt32(raw[offset + 2]) << 16
                bits |= UInt32(raw[offset + 3]) << 24
                decoded.append(Float(bitPattern: bits))
            }
            #expect(decoded == full)
        }
    }

    @Test func badInputGetsAnOpenAIError() async throws {
        try await Self.withEmbeddingsEndpoint { base in
            func expectError(_ body: String, status: Int, param: String?, path: String = "/embeddings") async throws {
                let reply = try await Self.post(base, body, path: path)
                #expect(reply.status == status, "\(body)")
                let error = reply.json?["error"] as? [String: Any]
                #expect(error?["message"] is String, "\(body)")
                #expect(error?["type"] as? String == "invalid_request_error", "\(body)")
                #expect(error?["param"] as? String == param, "\(body)")
            }
            try await expectError("{not json", status: 400, param: nil)
            try await expectError(#"{"input":"x"}"#, status: 400, param: "model")
            try await expectError(#"{"model":"emu-embed"}"#, status: 400, param: "input")
            try await expectError(#"{"model":"emu-embed","input":42}"#, status: 400, param: "input")
            try await expectError(#"{"model":"emu-embed","input":[]}"#, status: 400, param: "input")
            try await expectError(#"{"model":"emu-embed","input":["ok",""]}"#, status: 400, param: "input")
            try await expectError(#"{"model":"emu-embed","input":["ok",3]}"#, status: 400, param: "input")
            try await expectError(#"{"model":"emu-embed","input":"ok","dimensions":1000}"#, status: 400, param: "dimensions")
            try await expectError(#"{"model":"emu-embed","input":"ok","encoding_format":"hex"}"#, status: 400, param: "encoding_format")
            // A chat model does not embed, and an embeddings model does not chat.
            try await expectError(#"{"model":"emu","input":"ok"}"#, status: 400, param: "model")
            try await expectError(
                #"{"model":"emu-embed","messages":[{"role":"user","content":"hi"}]}"#, status: 400, param: "model", path: "/chat/completions")
            #expect(try await Self.post(base, #"{"model":"nothing","input":"ok"}"#).status == 404)
            // The chat model on the same endpoint still chats.
            #expect(try await EmulatorHTTP.chat(base).status == 200)
        }
    }

    @Test func metricsCountEmbeddingTokensAndBusyTime() async throws {
        try await Self.withEmbeddingsEndpoint { base in
            _ = try await Self.post(base, #"{"model":"emu-embed","input":"one two three four"}"#)
            let metrics = PrometheusText.parse(try await EmulatorHTTP.get(base.replacingOccurrences(of: "/v1", with: "") + "/metrics"))
            #expect(metrics.first { $0.name == "vllm:prompt_tokens_total" }?.value == 4)
            let busy = try #require(metrics.first { $0.name == "proxima_emulator_busy_seconds_total" }?.value)
            #expect(abs(busy - (EmulatedEndpoint.embeddingFixedSeconds + 4 * EmulatedEndpoint.embeddingSecondsPerToken)) < 1e-9)
        }
    }
}
