import NIOCore

/// Splits a byte stream into complete server-sent events. Bytes of an event that has not ended yet
/// are kept until the rest arrives; each complete event is returned with its terminating blank line,
/// exactly as received, so it can be forwarded unchanged.
@_spi(Benchmarks) public struct ServerSentEventSplitter {
    private var pending: ByteBuffer
    /// Where to resume looking for a terminator in `pending`.
    private var searchFrom = 0
    /// Largest event accepted before the stream is considered broken.
    let maximumEventBytes: Int

    @_spi(Benchmarks) public init(allocator: ByteBufferAllocator = ByteBufferAllocator(), maximumEventBytes: Int = 4 * 1024 * 1024) {
        self.pending = allocator.buffer(capacity: 0)
        self.maximumEventBytes = maximumEventBytes
    }

    @_spi(Benchmarks) public struct EventTooLarge: Error {}

    /// Adds bytes from upstream.
    @_spi(Benchmarks) public mutating func append(_ chunk: ByteBuffer) throws(EventTooLarge) {
        if pending.readableBytes == 0 {
            pending = chunk
            searchFrom = 0
        } else {
            // Events already read sit before the reader index: drop them once they outweigh what is
            // left, so that memory follows the unfinished event, not the stream's length.
            if pending.readerIndex > 0 && pending.readerIndex >= pending.readableBytes { pending.discardReadBytes() }
            var chunk = chunk
            pending.writeBuffer(&chunk)
        }
        if pending.readableBytes > maximumEventBytes, endOfFirstEvent() == nil { throw EventTooLarge() }
    }

    /// The next complete event, or nil when more bytes are needed.
    @_spi(Benchmarks) public mutating func nextEvent() -> ByteBuffer? {
        guard let end = endOfFirstEvent() else {
            searchFrom = max(0, pending.readableBytes - 3)
            return nil
        }
        searchFrom = 0
        return pending.readSlice(length: end)
    }

    /// Bytes of storage the splitter keeps (read and unread).
    var retainedCapacity: Int { pending.capacity }

    /// Bytes received after the last complete event (a stream that ended without a blank line).
    mutating func remainder() -> ByteBuffer? {
        guard pending.readableBytes > 0 else { return nil }
        return pending.readSlice(length: pending.readableBytes)
    }

    /// Length of the first event including its terminator ("\n\n" or "\r\n\r\n").
    private func endOfFirstEvent() -> Int? {
        pending.withUnsafeReadableBytes { bytes in
            var index = searchFrom
            let count = bytes.count
            while index < count {
                if bytes[index] == 0x0A {
                    if index + 1 < count, bytes[index + 1] == 0x0A { return index + 2 }
                    if index + 2 < count, bytes[index + 1] == 0x0D, bytes[index + 2] == 0x0A { return index + 3 }
                }
                index += 1
            }
            return nil
        }
    }
}

extension ServerSentEventSummary {
    /// The event without its usage member, for a caller that did not ask for usage but whose
    /// upstream attached it to a content chunk.
    @_spi(Benchmarks) public func removingUsage(from event: ByteBuffer) -> ByteBuffer {
        guard let range = usageMemberRange else { return event }
        var result = ByteBuffer()
        result.reserveCapacity(event.readableBytes)
        var head = event.getSlice(at: event.readerIndex, length: range.lowerBound)!
        var tail = event.getSlice(at: event.readerIndex + range.upperBound, length: event.readableBytes - range.upperBound)!
        result.writeBuffer(&head)
        result.writeBuffer(&tail)
        return result
    }
}

/// Token counts reported by an upstream.
public struct TokenUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }
}

/// What one server-sent event carries, as far as the gateway cares.
@_spi(Benchmarks) public struct ServerSentEventSummary: Equatable {
    var isDone = false
    /// Usage reported in this event.
    var usage: TokenUsage?
    /// The event carries usage and no choices: the extra chunk `include_usage` adds at the end.
    var isUsageOnly = false
    /// The upstream reported an error inside the stream.
    var isError = false
    /// The event carries content (choices), i.e. tokens for the caller.
    var hasChoices = false
    /// Where the `"usage": {...}` member sits in the event, to cut it out.
    var usageMemberRange: Range<Int>?
    /// The event has a `data:` line. One without (a `:` comment, a keep-alive) carries nothing for
    /// the caller: it is relayed, but it is neither the first event nor a token.
    var hasData = false

    /// Reads the `data:` lines of one event.
    @_spi(Benchmarks) public init(event: ByteBuffer) {
        event.withUnsafeReadableBytes { bytes in
            guard let data = Self.dataRange(in: bytes) else { return }
            hasData = true
            let payload = UnsafeRawBufferPointer(rebasing: bytes[data])
            if payload.elementsEqual("[DONE]".utf8) {
                isDone = true
                return
            }
            guard let members = try? JSONScanner.topLevelMembers(of: payload) else { return }
            let payloadStart = data.lowerBound
            if JSONScanner.member("error", in: members) != nil { isError = true }
            if let choices = JSONScanner.member("choices", in: members), choices.kind == .array {
                hasChoices = !JSONScanner.isEmptyContainer(at: choices.range, in: payload)
            }
            if let usage = JSONScanner.member("usage", in: members), usage.kind == .object {
                self.usage = TokenUsage.read(objectAt: usage.range, in: payload)
                isUsageOnly = !hasChoices
                // The member and the comma that joins it to a neighbour (JSON whitespace between).
                func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
                var lower = usage.keyStart
                var upper = usage.range.upperBound
                var after = upper
                while after < payload.count, isSpace(payload[after]) { after += 1 }
                if after < payload.count, payload[after] == UInt8(ascii: ",") {
                    upper = after + 1
                } else {
                    var before = lower - 1
                    while before > 0, isSpace(payload[before]) { before -= 1 }
                    if before > 0, payload[before] == UInt8(ascii: ",") { lower = before }
                }
                usageMemberRange = (lower + payloadStart)..<(upper + payloadStart)
            }
        }
    }

    /// The payload of the event's single `data:` line (engines send one line per event).
    static func dataRange(in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        var lineStart = 0
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count, bytes[lineEnd] != 0x0A { lineEnd += 1 }
            var contentEnd = lineEnd
            if contentEnd > lineStart, bytes[contentEnd - 1] == 0x0D { contentEnd -= 1 }
            if contentEnd - lineStart >= 5, bytes[lineStart] == UInt8(ascii: "d"), bytes[lineStart + 1] == UInt8(ascii: "a"),
                bytes[lineStart + 2] == UInt8(ascii: "t"), bytes[lineStart + 3] == UInt8(ascii: "a"),
                bytes[lineStart + 4] == UInt8(ascii: ":")
            {
                var start = lineStart + 5
                if start < contentEnd, bytes[start] == 0x20 { start += 1 }
                return start..<contentEnd
            }
            lineStart = lineEnd + 1
        }
        return nil
    }
}

extension TokenUsage {
    /// The most tokens believed from one usage report; counts are clamped to `0...maximumTokens`,
    /// since they feed counters that refuse negative steps and sums that must not overflow.
    static let maximumTokens = Int(Int32.max)

    /// Reads `prompt_tokens` and `completion_tokens` of a usage object.
    static func read(objectAt range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> TokenUsage? {
        guard let members = try? JSONScanner.members(ofObjectAt: range, in: bytes) else { return nil }
        func count(_ name: String) -> Int? {
            JSONScanner.member(name, in: members).flatMap { JSONScanner.integer(at: $0.range, in: bytes) }.map {
                min(max($0, 0), maximumTokens)
            }
        }
        let prompt = count("prompt_tokens")
        let completion = count("completion_tokens")
        guard prompt != nil || completion != nil else { return nil }
        return TokenUsage(promptTokens: prompt ?? 0, completionTokens: completion ?? 0)
    }

    /// Usage of a whole (non-streamed) response body.
    static func read(responseBody: ByteBuffer) -> TokenUsage? {
        responseBody.withUnsafeReadableBytes { bytes in
            guard let members = try? JSONScanner.topLevelMembers(of: bytes),
                let usage = JSONScanner.member("usage", in: members), usage.kind == .object
            else { return nil }
            return read(objectAt: usage.range, in: bytes)
        }
    }
}
