import Foundation
import NIOCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

@Suite struct ServerSentEventTests {
    func split(_ chunks: [String]) throws -> [String] {
        var splitter = ServerSentEventSplitter()
        var events: [String] = []
        for chunk in chunks {
            try splitter.append(ByteBuffer(string: chunk))
            while let event = splitter.nextEvent() { events.append(String(buffer: event)) }
        }
        if let rest = splitter.remainder() { events.append(String(buffer: rest)) }
        return events
    }

    @Test func splitsEventsAcrossArbitraryChunkBoundaries() throws {
        let stream = "data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\n: comment\n\ndata: [DONE]\n\n"
        let expected = ["data: {\"a\":1}\n\n", "data: {\"b\":2}\r\n\r\n", ": comment\n\n", "data: [DONE]\n\n"]
        #expect(try split([stream]) == expected)
        for size in 1...7 {
            var chunks: [String] = []
            var rest = Substring(stream)
            while !rest.isEmpty {
                chunks.append(String(rest.prefix(size)))
                rest = rest.dropFirst(size)
            }
            #expect(try split(chunks) == expected, "chunk size \(size)")
        }
    }

    @Test func keepsAnUnterminatedTailAsTheRemainder() throws {
        #expect(try split(["data: {\"a\":1}\n\ndata: partial"]) == ["data: {\"a\":1}\n\n", "data: partial"])
    }

    @Test func refusesAnEventLargerThanTheLimit() {
        var splitter = ServerSentEventSplitter(maximumEventBytes: 16)
        #expect(throws: ServerSentEventSplitter.EventTooLarge.self) {
            try splitter.append(ByteBuffer(string: "data: " + String(repeating: "x", count: 32)))
        }
    }

    @Test func summarisesContentUsageDoneAndErrors() {
        let content = ServerSentEventSummary(event: ByteBuffer(string: "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n"))
        #expect(content.hasChoices && content.usage == nil && !content.isUsageOnly)
        let usage = ServerSentEventSummary(
            event: ByteBuffer(string: "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n"))
        #expect(usage.isUsageOnly)
        #expect(usage.usage == TokenUsage(promptTokens: 7, completionTokens: 3))
        let lastWithUsage = ServerSentEventSummary(
            event: ByteBuffer(string: "data: {\"choices\":[{\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n"))
        #expect(!lastWithUsage.isUsageOnly && lastWithUsage.usage?.completionTokens == 2)
        #expect(ServerSentEventSummary(event: ByteBuffer(string: "data: [DONE]\r\n\r\n")).isDone)
        #expect(ServerSentEventSummary(event: ByteBuffer(string: "data: {\"error\":{\"message\":\"x\"}}\n\n")).isError)
        let comment = ServerSentEventSummary(event: ByteBuffer(string: ": keep-alive\n\n"))
        #expect(!comment.isDone && !comment.hasChoices && comment.usage == nil)
    }

    @Test(arguments: [
        (#"data: {"choices":[{"text":"a"}],"usage":{"prompt_tokens":1,"completion_tokens":2},"id":"x"}"# + "\n\n",
         #"data: {"choices":[{"text":"a"}],"id":"x"}"# + "\n\n"),
        (#"data: {"choices":[{"text":"a"}], "usage": {"prompt_tokens":1}}"# + "\n\n", #"data: {"choices":[{"text":"a"}]}"# + "\n\n"),
        (#"data: {"usage":{"completion_tokens":2},"choices":[{"text":"a"}]}"# + "\r\n\r\n", #"data: {"choices":[{"text":"a"}]}"# + "\r\n\r\n"),
        // Tabs and line breaks are JSON whitespace too: the comma must still go.
        ("data: {\"choices\":[{\"text\":\"a\"}],\t\"usage\":{\"prompt_tokens\":1}\t}\n\n", "data: {\"choices\":[{\"text\":\"a\"}]\t}\n\n"),
        ("data: {\"usage\":{\"prompt_tokens\":1}\t,\t\"choices\":[{\"text\":\"a\"}]}\n\n", "data: {\t\"choices\":[{\"text\":\"a\"}]}\n\n"),
    ])
    func cutsUsageOutOfAContentChunk(event: String, expected: String) throws {
        let buffer = ByteBuffer(string: event)
        let summary = ServerSentEventSummary(event: buffer)
        #expect(summary.hasChoices && summary.usage != nil)
        let cut = String(buffer: summary.removingUsage(from: buffer))
        #expect(cut == expected)
        let json = cut.dropFirst("data: ".count).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try JSONSerialization.jsonObject(with: Data(json.utf8)) is [String: Any])
    }

    @Test func readsUsageOfAWholeResponse() {
        let body = ByteBuffer(string: #"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#)
        #expect(TokenUsage.read(responseBody: body) == TokenUsage(promptTokens: 12, completionTokens: 5))
        #expect(TokenUsage.read(responseBody: ByteBuffer(string: #"{"data":[]}"#)) == nil)
    }

    /// Token counts feed counters that refuse negative steps: an upstream's absurd counts are
    /// clamped where they are read.
    @Test func absurdUsageCountsAreClamped() {
        let body = ByteBuffer(string: #"{"usage":{"prompt_tokens":-5,"completion_tokens":9223372036854775807}}"#)
        #expect(TokenUsage.read(responseBody: body) == TokenUsage(promptTokens: 0, completionTokens: TokenUsage.maximumTokens))
        #expect(TokenUsage.read(responseBody: ByteBuffer(string: #"{"usage":{"prompt_tokens":1e400}}"#)) == nil)
    }
}

@Suite struct GatewayErrorTests {
    @Test func rendersTheOpenAIErrorShape() throws {
        let error = GatewayError.invalidRequest("missing \"x\"", param: "x")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(error.jsonObject.utf8)) as? [String: [String: Any]])
        #expect(object["error"]?["message"] as? String == "missing \"x\"")
        #expect(object["error"]?["type"] as? String == "invalid_request_error")
        #expect(object["error"]?["param"] as? String == "x")
        #expect(object["error"]?["code"] as? String == "invalid_request")
        let noParam = try #require(
            try JSONSerialization.jsonObject(with: Data(GatewayError.internalError().jsonObject.utf8)) as? [String: [String: Any]])
        #expect(noParam["error"]?["param"] is NSNull)
    }

    @Test func mapsEachFailureToItsStatus() {
        #expect(GatewayError.invalidJSON("x").status.code == 400)
        #expect(GatewayError.modelNotFound("x").status.code == 404)
        #expect(GatewayError.bodyTooLarge(limit: 1).status.code == 413)
        #expect(GatewayError.upstreamFailed("x").status.code == 502)
        #expect(GatewayError.noCapacity("x").status.code == 503)
        #expect(GatewayError.upstreamTimeout("x").status.code == 504)
    }

    @Test func streamsErrorsAsOneServerSentEvent() {
        let event = GatewayError.upstreamFailed("boom").serverSentEvent
        #expect(event.hasPrefix("data: {\"error\":"))
        #expect(event.hasSuffix("\n\n"))
        #expect(ServerSentEventSummary(event: ByteBuffer(string: event)).isError)
    }
}

@Suite struct ServerSentEventMemoryTests {
    /// Chunks that always end halfway through an event (so the splitter never starts empty): what
    /// it keeps must not grow with the stream's length.
    @Test func memoryDoesNotGrowWithTheStreamsLength() throws {
        let event = "data: {\"choices\":[{\"delta\":{\"content\":\"" + String(repeating: "x", count: 48) + "\"}}]}\n\n"
        let eventBytes = Array(event.utf8)
        let size = eventBytes.count
        var splitter = ServerSentEventSplitter()
        var received = 0
        var whole = 0
        var largest = 0
        // The first chunk is half an event; then each chunk is the rest of one event and half the next.
        try splitter.append(ByteBuffer(bytes: eventBytes[..<(size / 2)]))
        for _ in 0..<20_000 {
            var chunk = ByteBuffer(bytes: eventBytes[(size / 2)...])
            chunk.writeBytes(eventBytes[..<(size / 2)])
            try splitter.append(chunk)
            while let next = splitter.nextEvent() {
                received += 1
                if next.readableBytes == size { whole += 1 }
            }
            largest = max(largest, splitter.retainedCapacity)
        }
        #expect(received == 20_000 && whole == received)
        // 20,000 events are about 2 MB; the splitter holds one unfinished event and one chunk.
        #expect(largest <= 4096, "the splitter kept \(largest) bytes")
    }
}
