import Foundation
import NIOCore
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

extension FuzzSuites {
    /// The proof that the gateway's parsers are total: for every truncation and thousands of mutations
    /// of realistic documents they terminate, never trap, and either fail with their typed error or
    /// return a result that keeps its invariants. See `Fuzzing` for the inputs and the watchdog.
    @Suite struct ParserFuzzTests {
        static let jsonSeeds: [[UInt8]] = [
            EngineSamples.chatRequest, EngineSamples.completionRequest, EngineSamples.embeddingRequest, EngineSamples.vllmAnswer,
            #"{"a":[1,-2.5e-3,true,false,null,{"b":"\u0041\/\\"}],"":{},"c":"é€😀"}"#,
            "{\"d\":" + String(repeating: "[", count: 60) + String(repeating: "]", count: 60) + "}",
        ].map { Array($0.utf8) }

        /// Accepted documents are valid UTF-8 JSON objects whose member ranges lie in order inside the
        /// input, each holding a value of the kind reported.
        @Test func theJSONScannerIsTotal() async throws {
            var accepted = 0
            try await Fuzzing.run("json-scanner", seeds: Self.jsonSeeds, iterations: Fuzzing.iterations(default: 16_000)) { input, label in
                let members: [JSONScanner.Member]
                do {
                    members = try input.withUnsafeBytes { try JSONScanner.topLevelMembers(of: $0) }
                } catch let error as JSONScanner.SyntaxError {
                    #expect(error.offset >= 0 && error.offset <= input.count, "\(label)")
                    return
                } catch {
                    Issue.record("\(label): not a syntax error: \(error)")
                    return
                }
                accepted += 1
                #expect(String(validating: input, as: UTF8.self) != nil, "\(label): accepted invalid UTF-8: \(Fuzzing.describe(input))")
                var previous = 0
                for member in members {
                    #expect(member.keyStart >= previous && member.range.lowerBound > member.keyStart && member.range.upperBound <= input.count, "\(label)")
                    previous = member.range.upperBound
                    let value = Array(input[member.range])
                    #expect(Self.kind(of: value) == member.kind, "\(label)")
                    if member.kind == .object {
                        let inner = try input.withUnsafeBytes { try JSONScanner.members(ofObjectAt: member.range, in: $0) }
                        #expect(inner.allSatisfy { member.range.contains($0.keyStart) }, "\(label)")
                    }
                    if member.kind == .string {
                        _ = input.withUnsafeBytes { JSONScanner.decodeString(at: member.range, in: $0) }
                    }
                }
                // What the scanner accepts, Foundation's parser accepts too.
                #expect((try? JSONSerialization.jsonObject(with: Data(input), options: [.fragmentsAllowed])) != nil,
                        "\(label): accepted what Foundation refuses: \(Fuzzing.describe(input))")
            }
            #expect(accepted > 0, "some mutations stay valid")
        }

        static func kind(of value: [UInt8]) -> JSONScanner.ValueKind? {
            switch value.first {
            case UInt8(ascii: "{"): .object
            case UInt8(ascii: "["): .array
            case UInt8(ascii: "\""): .string
            case UInt8(ascii: "t"), UInt8(ascii: "f"): .bool
            case UInt8(ascii: "n"): .null
            case .some: .number
            case nil: nil
            }
        }

        /// A request either fails with a 4xx `GatewayError` or is read with fields in range, and the body
        /// the gateway would send upstream is still a valid JSON object.
        @Test func requestParsingIsTotal() async throws {
            var accepted = 0
            let operations: [InferenceOperation] = [.chatCompletions, .completions, .embeddings]
            try await Fuzzing.run("inference-request", seeds: Self.jsonSeeds.prefix(3).map { $0 }, iterations: Fuzzing.iterations(default: 10_000)) { input, label in
                let operation = operations[input.count % 3]
                let request: InferenceRequest
                do throws(GatewayError) {
                    request = try InferenceRequest(operation: operation, body: ByteBuffer(bytes: input))
                } catch {
                    #expect((400..<500).contains(Int(error.status.code)), "\(label): \(error)")
                    return
                }
                accepted += 1
                #expect(!request.model.isEmpty)
                if let tokens = request.maxOutputTokens { #expect((0...InferenceRequest.maximumOutputTokens).contains(tokens), "\(label)") }
                _ = request.prefixBlockHashes()
                #expect(request.estimatedPromptTokens >= 1)
                for upstream in ["chat", "org/\"quoted\" \\ model \u{1}"] {
                    let body = request.upstreamBody(upstreamModel: upstream, allocator: ByteBufferAllocator())
                    let members = try body.withUnsafeReadableBytes { try JSONScanner.topLevelMembers(of: $0) }
                    let model = body.withUnsafeReadableBytes { bytes in
                        JSONScanner.member("model", in: members).map { JSONScanner.decodeString(at: $0.range, in: bytes) }
                    }
                    #expect(model == upstream, "\(label)")
                    if request.stream {
                        let reread = try InferenceRequest(operation: operation, body: body)
                        #expect(reread.callerWantsStreamUsage, "\(label): a stream upstream always asks for usage")
                    }
                }
            }
            #expect(accepted > 0)
        }

        static let streamSeeds = [EngineSamples.vllmStream, EngineSamples.llamaCppStream, EngineSamples.mixedStream].map { Array($0.utf8) }

        /// Split into random chunks, a stream comes out as events and a remainder that put together are
        /// the stream byte for byte (or the splitter refuses an event over its limit); every event's
        /// summary is read without trapping, and cutting out its usage leaves valid JSON where there was.
        @Test func theEventSplitterAndSummaryAreTotal() async throws {
            var random = SplitMix64(seed: Fuzzing.seed)
            var events = 0
            try await Fuzzing.run("sse", seeds: Self.streamSeeds, iterations: Fuzzing.iterations(default: 4_000)) { input, label in
                var splitter = ServerSentEventSplitter(maximumEventBytes: 1_024)
                var output: [UInt8] = []
                var offset = 0
                var tooLarge = false
                while offset < input.count {
                    let size = min(input.count - offset, Int.random(in: 1...97, using: &random))
                    do {
                        try splitter.append(ByteBuffer(bytes: input[offset..<(offset + size)]))
                    } catch {
                        tooLarge = true
                        break
                    }
                    offset += size
                    while let event = splitter.nextEvent() {
                        events += 1
                        let bytes = Array(event.readableBytesView)
                        #expect(bytes.count >= 2 && bytes.last == 0x0A, "\(label)")
                        output += bytes
                        try Self.checkSummary(event, label: label)
                    }
                }
                if tooLarge {
                    #expect(input.count - output.count > 1_024, "\(label): refused only past the limit")
                    return
                }
                if let rest = splitter.remainder() {
                    output += rest.readableBytesView
                    try Self.checkSummary(rest, label: label)
                }
                #expect(output == input, "\(label): the splitter lost or changed bytes")
            }
            #expect(events > 0)
        }

        static func checkSummary(_ event: ByteBuffer, label: String) throws {
            let summary = ServerSentEventSummary(event: event)
            if let usage = summary.usage {
                #expect((0...TokenUsage.maximumTokens).contains(usage.promptTokens) && (0...TokenUsage.maximumTokens).contains(usage.completionTokens), "\(label)")
            }
            guard summary.usageMemberRange != nil else { return }
            let cut = summary.removingUsage(from: event)
            #expect(cut.readableBytes < event.readableBytes, "\(label)")
            let lines = Array(cut.readableBytesView).split(separator: 0x0A, omittingEmptySubsequences: false)
            var payload = Array(lines.first { $0.starts(with: Array("data:".utf8)) }?.dropFirst(5) ?? [])
            if payload.last == 0x0D { payload.removeLast() }
            #expect((try? payload.withUnsafeBytes { try JSONScanner.topLevelMembers(of: $0) }) != nil,
                    "\(label): the event without usage is not JSON: \(String(buffer: cut))")
            #expect(ServerSentEventSummary(event: cut).usage == nil, "\(label)")
        }

        /// Plain answers: usage is read from any body without trapping and is always in range.
        @Test func usageOfPlainAnswersIsTotal() async {
            let seeds = [EngineSamples.vllmAnswer, FaultyUpstream.plainAnswer].map { Array($0.utf8) }
            await Fuzzing.run("plain-answer", seeds: seeds, iterations: Fuzzing.iterations(default: 5_000)) { input, label in
                guard let usage = TokenUsage.read(responseBody: ByteBuffer(bytes: input)) else { return }
                #expect(usage.promptTokens >= 0 && usage.promptTokens <= TokenUsage.maximumTokens, "\(label)")
                #expect(usage.completionTokens >= 0 && usage.completionTokens <= TokenUsage.maximumTokens, "\(label)")
            }
        }
    }
}
