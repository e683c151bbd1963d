import NIOCore
import ProximaCore

/// The OpenAI operations the gateway proxies.
public enum InferenceOperation: String, Sendable, CaseIterable {
    case chatCompletions = "chat.completions"
    case completions
    case embeddings

    /// Path below the upstream's `/v1` base.
    var upstreamPath: String {
        switch self {
        case .chatCompletions: "/chat/completions"
        case .completions: "/completions"
        case .embeddings: "/embeddings"
        }
    }

    /// The field that carries the input, which must be present and non-empty.
    var inputField: String {
        switch self {
        case .chatCompletions: "messages"
        case .completions: "prompt"
        case .embeddings: "input"
        }
    }

    var canStream: Bool { self != .embeddings }
}

/// What the gateway reads from a request body: the few fields it needs to route and account, plus
/// where they sit in the body so it can rewrite them without re-encoding the rest.
@_spi(Benchmarks) public struct InferenceRequest: Sendable {
    var operation: InferenceOperation
    var body: ByteBuffer
    var model: String
    var stream: Bool
    /// The caller asked for the usage chunk at the end of a stream.
    var callerWantsStreamUsage: Bool
    var maxOutputTokens: Int?
    /// A `max_tokens` the gateway adds to the upstream body because the request set none and the
    /// caller's limits cap it (see ``limitOutput(to:)``).
    private(set) var impliedMaxTokens: Int?
    /// Where the input (`messages`, `prompt` or `input`) sits in the body.
    var inputRange: Range<Int>
    /// The input's canonical form, when the cache stage has already made it (prefix hashing then
    /// uses it rather than canonicalizing the input again).
    var canonicalInput: [UInt8]?

    private var modelRange: Range<Int>
    private var streamOptionsRange: Range<Int>?
    private var includeUsageRange: Range<Int>?
    private var objectEnd: Int

    /// Reads and checks a request body; every failure names the field at fault.
    @_spi(Benchmarks) public init(operation: InferenceOperation, body: ByteBuffer) throws(GatewayError) {
        self.operation = operation
        self.body = body
        let parsed: Result<Parsed, GatewayError> = body.withUnsafeReadableBytes { bytes in
            do throws(GatewayError) {
                return .success(try Self.parse(operation: operation, bytes: bytes))
            } catch {
                return .failure(error)
            }
        }
        let fields = try parsed.get()
        model = fields.model
        stream = fields.stream
        callerWantsStreamUsage = fields.includeUsage
        maxOutputTokens = fields.maxOutputTokens
        inputRange = fields.inputRange
        modelRange = fields.modelRange
        streamOptionsRange = fields.streamOptionsRange
        includeUsageRange = fields.includeUsageRange
        objectEnd = fields.objectEnd
    }

    private struct Parsed {
        var model: String
        var stream: Bool
        var includeUsage: Bool
        var maxOutputTokens: Int?
        var inputRange: Range<Int>
        var modelRange: Range<Int>
        var streamOptionsRange: Range<Int>?
        var includeUsageRange: Range<Int>?
        var objectEnd: Int
    }

    private static func parse(operation: InferenceOperation, bytes: UnsafeRawBufferPointer) throws(GatewayError) -> Parsed {
        if bytes.isEmpty { throw .invalidRequest("the request body is empty; send a JSON object") }
        let members: [JSONScanner.Member]
        do {
            members = try JSONScanner.topLevelMembers(of: bytes)
        } catch {
            throw .invalidJSON("the request body is not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard let model = JSONScanner.member("model", in: members) else {
            throw .invalidRequest("missing required field 'model'", param: "model")
        }
        guard model.kind == .string else { throw .invalidRequest("'model' must be a string", param: "model") }
        let modelName = JSONScanner.decodeString(at: model.range, in: bytes)
        if modelName.isEmpty { throw .invalidRequest("'model' must not be empty", param: "model") }

        let inputField = operation.inputField
        guard let input = JSONScanner.member(inputField, in: members) else {
            throw .invalidRequest("missing required field '\(inputField)'", param: inputField)
        }
        switch operation {
        case .chatCompletions:
            guard input.kind == .array else { throw .invalidRequest("'messages' must be an array", param: "messages") }
            if JSONScanner.isEmptyContainer(at: input.range, in: bytes) {
                throw .invalidRequest("'messages' must contain at least one message", param: "messages")
            }
        case .completions, .embeddings:
            guard input.kind == .string || input.kind == .array else {
                throw .invalidRequest("'\(inputField)' must be a string or an array", param: inputField)
            }
            if input.kind == .array, JSONScanner.isEmptyContainer(at: input.range, in: bytes) {
                throw .invalidRequest("'\(inputField)' must not be empty", param: inputField)
            }
        }

        var stream = false
        if let member = JSONScanner.member("stream", in: members), member.kind != .null {
            guard member.kind == .bool else { throw .invalidRequest("'stream' must be true or false", param: "stream") }
            stream = bytes[member.range.lowerBound] == UInt8(ascii: "t")
            if stream, !operation.canStream {
                throw .invalidRequest("'stream' is not supported for embeddings", param: "stream")
            }
        }
        var includeUsage = false
        var streamOptionsRange: Range<Int>?
        var includeUsageRange: Range<Int>?
        if let options = JSONScanner.member("stream_options", in: members), options.kind != .null {
            guard options.kind == .object else {
                throw .invalidRequest("'stream_options' must be an object", param: "stream_options")
            }
            streamOptionsRange = options.range
            let inner: [JSONScanner.Member]
            do { inner = try JSONScanner.members(ofObjectAt: options.range, in: bytes) } catch {
                throw .invalidJSON("'stream_options' is not a valid object")
            }
            if let usage = JSONScanner.member("include_usage", in: inner) {
                guard usage.kind == .bool || usage.kind == .null else {
                    throw .invalidRequest("'stream_options.include_usage' must be true or false", param: "stream_options.include_usage")
                }
                includeUsage = bytes[usage.range.lowerBound] == UInt8(ascii: "t")
                includeUsageRange = usage.range
            }
        }
        // Caller numbers enter here: each is range-checked so that no arithmetic on it can trap.
        var maxOutputTokens: Int?
        for name in ["max_completion_tokens", "max_tokens"] {
            guard maxOutputTokens == nil, let member = JSONScanner.member(name, in: members), member.kind != .null else { continue }
            guard member.kind == .number, let value = JSONScanner.integer(at: member.range, in: bytes),
                (0...Self.maximumOutputTokens).contains(value)
            else {
                throw .invalidRequest("'\(name)' must be an integer from 0 to \(Self.maximumOutputTokens)", param: name)
            }
            maxOutputTokens = value
        }
        if let n = JSONScanner.member("n", in: members), n.kind != .null {
            guard n.kind == .number, let value = JSONScanner.integer(at: n.range, in: bytes), (1...Self.maximumChoices).contains(value) else {
                throw .invalidRequest("'n' must be an integer from 1 to \(Self.maximumChoices)", param: "n")
            }
        }
        var end = bytes.count - 1
        while end > 0, bytes[end] != UInt8(ascii: "}") { end -= 1 }
        return Parsed(
            model: modelName, stream: stream, includeUsage: includeUsage, maxOutputTokens: maxOutputTokens,
            inputRange: input.range, modelRange: model.range, streamOptionsRange: streamOptionsRange, includeUsageRange: includeUsageRange,
            objectEnd: end)
    }

    /// The body to send upstream: the model renamed to the endpoint's name for it and, for streams,
    /// usage reporting switched on so that tokens are counted. Everything else is passed through byte
    /// for byte.
    /// Caps the output of a request that sets no `max_tokens`: the upstream is sent `max_tokens`.
    mutating func limitOutput(to cap: Int) {
        guard maxOutputTokens == nil, operation != .embeddings else { return }
        let tokens = min(max(cap, 1), Self.maximumOutputTokens)
        maxOutputTokens = tokens
        impliedMaxTokens = tokens
    }

    @_spi(Benchmarks) public func upstreamBody(upstreamModel: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var edits: [(range: Range<Int>, replacement: String)] = []
        if let impliedMaxTokens {
            edits.append((objectEnd..<objectEnd, ",\"max_tokens\":\(impliedMaxTokens)"))
        }
        if upstreamModel != model {
            edits.append((modelRange, JSONScanner.quoted(upstreamModel)))
        }
        if stream, !callerWantsStreamUsage {
            if let includeUsageRange {
                edits.append((includeUsageRange, "true"))
            } else if let streamOptionsRange {
                let isEmpty = body.withUnsafeReadableBytes { JSONScanner.isEmptyContainer(at: streamOptionsRange, in: $0) }
                let insertAt = streamOptionsRange.lowerBound + 1
                edits.append((insertAt..<insertAt, isEmpty ? "\"include_usage\":true" : "\"include_usage\":true,"))
            } else {
                edits.append((objectEnd..<objectEnd, ",\"stream_options\":{\"include_usage\":true}"))
            }
        }
        if edits.isEmpty { return body }
        edits.sort { $0.range.lowerBound < $1.range.lowerBound }
        var output = allocator.buffer(capacity: body.readableBytes + 64)
        var cursor = 0
        body.withUnsafeReadableBytes { bytes in
            for edit in edits {
                output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[cursor..<edit.range.lowerBound]))
                output.writeString(edit.replacement)
                cursor = edit.range.upperBound
            }
            output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[cursor...]))
        }
        return output
    }
}

extension InferenceRequest {
    /// The largest `max_tokens` (or `max_completion_tokens`) accepted: 2^31 - 1, as engines take it.
    static let maximumOutputTokens = ConfigurationBounds.maximumTokens
    /// The largest `n` accepted (OpenAI's own limit).
    static let maximumChoices = 128

    /// Bytes of input per prefix block: about 512 tokens at four bytes per token.
    static let prefixBlockBytes = 2_048
    /// Prefix blocks hashed at most (64 KiB of input); longer shared prefixes count as this long.
    static let maximumPrefixBlocks = 32

    /// The prompt's length in tokens, estimated at four bytes of input per token.
    var estimatedPromptTokens: Int { max(1, inputRange.count / 4) }

    /// Hashes of the leading 2 KiB blocks of the input's canonical form (`CanonicalJSON`: key order,
    /// whitespace and escapes do not matter), each chained to the ones before it, so that two requests
    /// share the n-th hash exactly when their first n blocks are equal. The router uses them to send
    /// requests with a shared prefix where that prefix is likely cached; the cache's keys use the same
    /// canonical form.
    func prefixBlockHashes() -> [UInt64] {
        guard inputRange.count >= Self.prefixBlockBytes else { return [] }
        if let canonicalInput { return canonicalInput.withUnsafeBytes { Self.blockHashes(of: $0) } }
        let canonical = body.withUnsafeReadableBytes { bytes in
            try? CanonicalJSON.canonicalize(UnsafeRawBufferPointer(rebasing: bytes[inputRange]))
        }
        guard let canonical else {
            // Unreachable for a body the scanner accepted; the raw bytes are a fair second best.
            return body.withUnsafeReadableBytes { Self.blockHashes(of: UnsafeRawBufferPointer(rebasing: $0[inputRange])) }
        }
        return canonical.withUnsafeBytes { Self.blockHashes(of: $0) }
    }

    static func blockHashes(of bytes: UnsafeRawBufferPointer) -> [UInt64] {
        let blocks = min(bytes.count / prefixBlockBytes, maximumPrefixBlocks)
        guard blocks > 0 else { return [] }
        var hashes: [UInt64] = []
        hashes.reserveCapacity(blocks)
        var hash: UInt64 = 0x9E37_79B9_7F4A_7C15
        var offset = 0
        for _ in 0..<blocks {
            let end = offset + prefixBlockBytes
            while offset + 8 <= end {
                let word = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                hash = (hash ^ word) &* 0x9FB2_1C65_1E98_DF25
                hash ^= hash >> 29
                offset += 8
            }
            hashes.append(hash)
        }
        return hashes
    }
}
