/// Writes an ``AuditRecord`` as its line: JSON, keys in sorted order, nil fields left out, strings
/// with only `"`, `\` and control characters escaped (slashes and non-ASCII text as they are),
/// numbers as Swift prints them (shortest round-trip form). A request pays for this on the way to
/// its answer, so it is written by hand: Foundation's `JSONEncoder` cost about 8% of the gateway's
/// CPU under load. `AuditLineEncoderTests` checks every line decodes back to its record.
struct AuditLineEncoder {
    private(set) var bytes: [UInt8] = []
    private var first = true
    /// A number JSON cannot hold (NaN, infinity) was met: the line must not be used.
    private(set) var invalid = false

    init(capacity: Int = 768) {
        bytes.reserveCapacity(capacity)
    }

    /// The record's line; throws for a number JSON cannot hold (as `JSONEncoder` does).
    static func encode(_ record: AuditRecord) throws -> [UInt8] {
        let encoder = make(record)
        if encoder.invalid { throw AuditError("the record holds a number JSON cannot represent (NaN or infinity)") }
        return encoder.bytes
    }

    static func line(_ record: AuditRecord) -> [UInt8] { make(record).bytes }

    private static func make(_ record: AuditRecord) -> AuditLineEncoder {
        var encoder = AuditLineEncoder()
        encoder.object {
            // Keys in byte order, as JSONEncoder's .sortedKeys writes them.
            $0.field("action", record.action)
            $0.field("actor", record.actor)
            $0.field("answer_sha256", record.answerSHA256)
            $0.field("answer_text", record.answerText)
            $0.field("cache", record.cache)
            $0.field("caller_class", record.callerClass)
            $0.field("completion_tokens", record.completionTokens)
            $0.field("cost_usd", record.costUSD)
            $0.field("detail", record.detail)
            $0.field("duration_ms", record.durationMS)
            if let frontier = record.frontier { $0.key("frontier"); $0.array(frontier) { $0.string($1) } }
            if let guards = record.guards {
                $0.key("guards")
                $0.array(guards) { encoder, verdict in
                    encoder.object {
                        $0.field("action", verdict.action)
                        $0.field("atlas", verdict.atlas)
                        $0.field("category", verdict.category)
                        $0.field("owasp", verdict.owasp)
                        $0.field("stage", verdict.stage)
                    }
                }
            }
            $0.field("key", record.key)
            $0.field("kind", record.kind.rawValue)
            $0.field("model", record.model)
            $0.field("outcome", record.outcome)
            $0.field("policy", record.policy)
            $0.field("prev", record.prev)
            $0.field("principal", record.principal)
            $0.field("prompt_sha256", record.promptSHA256)
            $0.field("prompt_text", record.promptText)
            $0.field("prompt_tokens", record.promptTokens)
            if let segments = record.removedSegments { $0.key("removed_segments"); $0.array(segments) { $0.string($1) } }
            $0.field("removed_through", record.removedThrough)
            $0.field("request_id", record.requestID)
            $0.field("residency", record.residency)
            if let route = record.route {
                $0.key("route")
                $0.object {
                    $0.field("attempts", route.attempts)
                    $0.field("endpoint", route.endpoint)
                    if let excluded = route.excluded {
                        $0.key("excluded")
                        $0.array(excluded) { encoder, exclusion in
                            encoder.object {
                                $0.field("endpoint", exclusion.endpoint)
                                $0.field("kind", exclusion.kind)
                                $0.field("reason", exclusion.reason)
                            }
                        }
                    }
                    $0.field("jurisdiction", route.jurisdiction)
                    $0.field("provider", route.provider)
                    $0.field("site", route.site)
                }
            }
            $0.field("seq", record.seq)
            $0.field("served_model", record.servedModel)
            $0.field("status", record.status)
            $0.field("target", record.target)
            $0.field("tenant", record.tenant)
            $0.field("time", record.time)
        }
        return encoder
    }

    // MARK: structure

    mutating func object(_ body: (inout AuditLineEncoder) -> Void) {
        bytes.append(UInt8(ascii: "{"))
        let outer = first
        first = true
        body(&self)
        first = outer
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func array<T>(_ items: [T], _ element: (inout AuditLineEncoder, T) -> Void) {
        bytes.append(UInt8(ascii: "["))
        for (index, item) in items.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            let outer = first
            element(&self, item)
            first = outer
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func key(_ name: StaticString) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    mutating func field(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    mutating func field(_ name: StaticString, _ value: Int?) {
        guard let value else { return }
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func field(_ name: StaticString, _ value: Double?) {
        guard let value else { return }
        key(name)
        // JSON has no NaN or infinity: such a line is refused by `encode`.
        if !value.isFinite { invalid = true }
        bytes.append(contentsOf: (value.isFinite ? value : 0).description.utf8)
    }

    // MARK: strings

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var start = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index]))
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                default:
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), Self.hex[Int(byte >> 4)], Self.hex[Int(byte & 0xF)]])
                }
                start = index + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
