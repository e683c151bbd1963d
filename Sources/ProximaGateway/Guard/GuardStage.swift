import Foundation
import HTTPTypes
import NIOCore
import ProximaCore
import ProximaGuard

/// The input guard stage, after admission and before the cache: every text a request carries (each
/// message's content in every role, including tool results and retrieved text, or a completion's
/// prompt) is scanned for prompt injection and for secrets and personal data, within the
/// `max_scan_bytes` budget. The tenant's policy decides: log the verdict, redact or mask the spans
/// in the body sent upstream, or refuse with 400 naming the category (never echoing the text). It
/// also prepares the output guard the proxy runs on the answer.
struct GuardStage: Sendable {
    let metrics: GatewayMetrics

    struct Screened: Sendable {
        var inference: InferenceRequest
        var outputGuard: OutputGuard?
    }

    /// A text of the request: where its JSON string sits in the body, and its channel.
    struct Piece {
        var range: Range<Int>
        var channel: MessageChannel
    }

    static let redactionMark = "[removed: prompt injection]"

    func screen(
        _ inference: InferenceRequest, tenant: String, snapshot: RoutingSnapshot, account: RequestAccount, maxTokensCap: Int? = nil
    ) throws(GatewayError) -> Screened {
        let prepared = snapshot.guards
        guard prepared.settings.enabled else { return Screened(inference: inference, outputGuard: nil) }
        let policy = prepared.policy(tenant: tenant)
        let outputGuard =
            policy.output.enabled && inference.operation != .embeddings
            ? OutputGuard(
                detector: policy.outputDetector, masking: policy.output.action != .log,
                windowBytes: prepared.settings.streamWindowBytes, operation: inference.operation, account: account, metrics: metrics)
            : nil
        guard inference.operation != .embeddings, policy.injection.enabled || policy.input.enabled else {
            return Screened(inference: inference, outputGuard: outputGuard)
        }
        let started = ContinuousClock.now
        defer { metrics.recordGuardScan(ContinuousClock.now - started) }
        var edits: [(range: Range<Int>, replacement: String)] = []
        var verdicts: [GuardVerdict] = []
        var refusal: GatewayError?
        inference.body.withUnsafeReadableBytes { bytes in
            let pieces = Self.pieces(of: inference, in: bytes)
            var budget = prepared.settings.maxScanBytes
            var truncated = false
            for piece in pieces {
                guard refusal == nil else { break }
                if budget <= 0 {
                    truncated = true
                    break
                }
                let text = JSONScanner.decodeString(at: piece.range, in: bytes)
                let length = text.utf8.count
                if length > budget { truncated = true }
                var replaced: String?
                if policy.injection.enabled {
                    let scan = prepared.injection.scan(text[...], channel: piece.channel, budget: budget)
                    if scan.score >= policy.injection.threshold {
                        var category = scan.category ?? .promptInjection
                        if piece.channel == .tool && category == .promptInjection { category = .indirectInjection }
                        let action: String
                        switch policy.injection.action {
                        case .log: action = "logged"
                        case .refuse: action = "refused"
                        case .redact: action = scan.spans.isEmpty ? "logged" : "redacted"
                        }
                        verdicts.append(
                            GuardVerdict(
                                category: category, direction: .input, score: scan.score, signals: scan.signals,
                                channel: piece.channel.rawValue, action: action))
                        if policy.injection.action == .refuse {
                            refusal = .promptRejected(category)
                            break
                        }
                        if policy.injection.action == .redact, !scan.spans.isEmpty {
                            replaced = Self.replacing(scan.spans, in: text, with: Self.redactionMark)
                        }
                    }
                }
                if policy.input.enabled {
                    let current = replaced ?? text
                    let (masked, findings) = policy.inputDetector.masked(current[...])
                    if !findings.isEmpty {
                        let entities = Array(Set(findings.map(\.entity))).sorted()
                        let action: String
                        switch policy.input.action {
                        case .log: action = "logged"
                        case .mask: action = "masked"
                        case .refuse: action = "refused"
                        }
                        verdicts.append(
                            GuardVerdict(
                                category: .sensitiveData, direction: .input, score: 1, signals: entities, channel: piece.channel.rawValue,
                                action: action))
                        if policy.input.action == .refuse {
                            refusal = .sensitiveDataRejected(entities)
                            break
                        }
                        if policy.input.action == .mask { replaced = masked }
                    }
                }
                if let replaced { edits.append((piece.range, JSONScanner.quoted(replaced))) }
                budget -= length
            }
            if truncated {
                verdicts.append(
                    GuardVerdict(
                        category: .unboundedInput, direction: .input, score: 1, signals: ["scan_truncated"], channel: "request",
                        action: "logged"))
            }
        }
        for verdict in verdicts {
            account.record(verdict)
            metrics.recordGuardVerdict(verdict)
        }
        if let refusal {
            metrics.recordRefusal(stage: "guard", reason: refusal.code)
            throw refusal
        }
        guard !edits.isEmpty else { return Screened(inference: inference, outputGuard: outputGuard) }
        let body = inference.body.splicing(edits)
        var rewritten = try InferenceRequest(operation: inference.operation, body: body)
        if let cap = maxTokensCap { rewritten.limitOutput(to: cap) }
        return Screened(inference: rewritten, outputGuard: outputGuard)
    }

    /// `text` with the UTF-8 byte `spans` (merged when they overlap) replaced by `mark`.
    static func replacing(_ spans: [Range<Int>], in text: String, with mark: String) -> String {
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var position = 0
        for span in spans.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            let lower = min(max(span.lowerBound, position), bytes.count)
            let upper = min(max(span.upperBound, lower), bytes.count)
            output.append(contentsOf: bytes[position..<lower])
            if upper > lower { output.append(contentsOf: mark.utf8) }
            position = max(position, upper)
        }
        output.append(contentsOf: bytes[min(position, bytes.count)...])
        // Spans from the detector fall on character boundaries; a repair keeps a bad one harmless.
        return String(decoding: output, as: UTF8.self)
    }

    /// Every text the request carries, in order: each message's `content` (a string, or the `text`
    /// of each part), or a completion's `prompt` (a string or a list of them).
    static func pieces(of inference: InferenceRequest, in bytes: UnsafeRawBufferPointer) -> [Piece] {
        var pieces: [Piece] = []
        let input = inference.inputRange
        switch inference.operation {
        case .chatCompletions:
            guard let messages = try? JSONScanner.elements(ofArrayAt: input, in: bytes) else { return [] }
            for message in messages where message.kind == .object {
                guard let members = try? JSONScanner.members(ofObjectAt: message.range, in: bytes) else { continue }
                var channel = MessageChannel.user
                if let role = JSONScanner.member("role", in: members), role.kind == .string {
                    switch JSONScanner.decodeString(at: role.range, in: bytes) {
                    case "system", "developer": channel = .system
                    case "assistant": channel = .assistant
                    case "tool", "function": channel = .tool
                    default: channel = .user
                    }
                }
                guard let content = JSONScanner.member("content", in: members) else { continue }
                switch content.kind {
                case .string: pieces.append(Piece(range: content.range, channel: channel))
                case .array:
                    guard let parts = try? JSONScanner.elements(ofArrayAt: content.range, in: bytes) else { continue }
                    for part in parts where part.kind == .object {
                        guard let fields = try? JSONScanner.members(ofObjectAt: part.range, in: bytes),
                            let text = JSONScanner.member("text", in: fields), text.kind == .string
                        else { continue }
                        pieces.append(Piece(range: text.range, channel: channel))
                    }
                default: continue
                }
            }
        case .completions:
            if bytes[input.lowerBound] == UInt8(ascii: "\"") {
                pieces.append(Piece(range: input, channel: .user))
            } else if let prompts = try? JSONScanner.elements(ofArrayAt: input, in: bytes) {
                for prompt in prompts where prompt.kind == .string { pieces.append(Piece(range: prompt.range, channel: .user)) }
            }
        case .embeddings:
            break
        }
        return pieces
    }
}

extension GatewayError {
    /// A prompt the injection guard refused: the category and its taxonomy ids, never the text.
    static func promptRejected(_ category: GuardCategory) -> GatewayError {
        .init(
            status: .badRequest, type: "invalid_request_error", code: "prompt_rejected", param: "messages",
            message:
                "The request was refused by the content guard: \(category.rawValue) (OWASP \(category.owasp)\(category.atlas.map { ", MITRE ATLAS \($0)" } ?? ""))."
        )
    }

    /// A prompt carrying secrets or personal data the tenant's policy refuses: the entity types only.
    static func sensitiveDataRejected(_ entities: [String]) -> GatewayError {
        .init(
            status: .badRequest, type: "invalid_request_error", code: "sensitive_data_rejected", param: "messages",
            message:
                "The request was refused by the content guard: it carries \(entities.joined(separator: ", ")) (OWASP LLM02, MITRE ATLAS AML.T0057). Remove them and send it again."
        )
    }
}
