import NIOCore
import ProximaCore
import ProximaGuard

/// The output guard of one request: finds secrets and personal data in the answer and, when the
/// tenant's policy masks, replaces them before they reach the caller (and the cache). A whole answer
/// is masked in one pass; a stream is masked event by event, each choice's text going through its
/// own ``StreamRedactor``, which holds back at most `windowBytes` so that a secret split across
/// events is still caught. Held text is sent with the choice's last event, or in one event of its own
/// before `[DONE]`. The verdict (entity types, never the text) is booked once, when the answer ends.
struct OutputGuard: Sendable {
    let detector: SensitiveDataDetector
    let masking: Bool
    let windowBytes: Int
    let operation: InferenceOperation
    let account: RequestAccount
    let metrics: GatewayMetrics
    private var redactors: [Int: StreamRedactor] = [:]
    private var entities: Set<String> = []
    private var booked = false

    init(
        detector: SensitiveDataDetector, masking: Bool, windowBytes: Int, operation: InferenceOperation, account: RequestAccount,
        metrics: GatewayMetrics
    ) {
        self.detector = detector
        self.masking = masking
        self.windowBytes = windowBytes
        self.operation = operation
        self.account = account
        self.metrics = metrics
    }

    /// The key of a choice's text: `delta.content` in chat streams, `text` in completions.
    private var isChat: Bool { operation == .chatCompletions }

    // MARK: whole answers

    /// The answer with every finding masked (or as it is, when only logging).
    mutating func screen(whole body: ByteBuffer) -> ByteBuffer {
        var edits: [(range: Range<Int>, replacement: String)] = []
        body.withUnsafeReadableBytes { bytes in
            for text in textRanges(in: bytes, chatKey: "message") {
                let decoded = JSONScanner.decodeString(at: text.range, in: bytes)
                let (masked, findings) = detector.masked(decoded[...])
                guard !findings.isEmpty else { continue }
                for finding in findings { entities.insert(finding.entity) }
                if masking { edits.append((text.range, JSONScanner.quoted(masked))) }
            }
        }
        book()
        return body.splicing(edits)
    }

    // MARK: streams

    /// The events to send for one upstream event: the event itself, masked; before `[DONE]`, first an
    /// event with the text still held back.
    mutating func process(event: ByteBuffer) -> [ByteBuffer] {
        let payloadRange = event.withUnsafeReadableBytes { ServerSentEventSummary.dataRange(in: $0) }
        guard let payloadRange else { return [event] }
        let isDone = event.withUnsafeReadableBytes { bytes in
            UnsafeRawBufferPointer(rebasing: bytes[payloadRange]).elementsEqual("[DONE]".utf8)
        }
        if isDone {
            var events = flushAll()
            events.append(event)
            book()
            return events
        }
        var edits: [(range: Range<Int>, replacement: String)] = []
        event.withUnsafeReadableBytes { bytes in
            let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadRange])
            for text in textRanges(in: payload, chatKey: "delta") {
                var redactor = redactors[text.index] ?? StreamRedactor(detector: detector, windowBytes: windowBytes, masking: masking)
                var (out, findings) = redactor.push(JSONScanner.decodeString(at: text.range, in: payload)[...])
                if text.finished {
                    let (tail, more) = redactor.finish()
                    out += tail
                    findings += more
                    redactors[text.index] = nil
                } else {
                    redactors[text.index] = redactor
                }
                for finding in findings { entities.insert(finding.entity) }
                if masking {
                    let range = (text.range.lowerBound + payloadRange.lowerBound)..<(text.range.upperBound + payloadRange.lowerBound)
                    edits.append((range, JSONScanner.quoted(out)))
                }
            }
        }
        return [event.splicing(edits)]
    }

    /// The stream ended (complete or not): the verdict is booked. Text still held back is dropped
    /// with the stream it belonged to.
    mutating func finish() {
        book()
    }

    private mutating func flushAll() -> [ByteBuffer] {
        var events: [ByteBuffer] = []
        for index in redactors.keys.sorted() {
            guard var redactor = redactors[index] else { continue }
            let (tail, findings) = redactor.finish()
            for finding in findings { entities.insert(finding.entity) }
            guard !tail.isEmpty, masking else { continue }
            let text = JSONScanner.quoted(tail)
            let payload =
                isChat
                ? "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":\(index),\"delta\":{\"content\":\(text)},\"finish_reason\":null}]}"
                : "{\"object\":\"text_completion\",\"choices\":[{\"index\":\(index),\"text\":\(text),\"finish_reason\":null}]}"
            events.append(ByteBuffer(string: "data: \(payload)\n\n"))
        }
        redactors.removeAll()
        return events
    }

    private mutating func book() {
        guard !booked else { return }
        booked = true
        guard !entities.isEmpty else { return }
        let verdict = GuardVerdict(
            category: .sensitiveData, direction: .output, score: 1, signals: entities.sorted(), channel: "answer",
            action: masking ? "masked" : "logged")
        account.record(verdict)
        metrics.recordGuardVerdict(verdict)
    }

    // MARK: JSON

    private struct TextRange {
        var index: Int
        var range: Range<Int>
        var finished: Bool
    }

    /// Where each choice's text sits in an answer or a chunk: `choices[i].<chatKey>.content` for chat
    /// (`message` whole, `delta` streamed), `choices[i].text` for completions.
    private func textRanges(in bytes: UnsafeRawBufferPointer, chatKey: String) -> [TextRange] {
        guard let members = try? JSONScanner.topLevelMembers(of: bytes), let choices = JSONScanner.member("choices", in: members),
            choices.kind == .array, let elements = try? JSONScanner.elements(ofArrayAt: choices.range, in: bytes)
        else { return [] }
        var found: [TextRange] = []
        for (position, element) in elements.enumerated() where element.kind == .object {
            guard let fields = try? JSONScanner.members(ofObjectAt: element.range, in: bytes) else { continue }
            let index = JSONScanner.member("index", in: fields).flatMap { JSONScanner.integer(at: $0.range, in: bytes) } ?? position
            let finished = JSONScanner.member("finish_reason", in: fields).map { $0.kind != .null } ?? false
            let text: JSONScanner.Member?
            if isChat {
                guard let holder = JSONScanner.member(chatKey, in: fields), holder.kind == .object,
                    let inner = try? JSONScanner.members(ofObjectAt: holder.range, in: bytes)
                else { continue }
                text = JSONScanner.member("content", in: inner)
            } else {
                text = JSONScanner.member("text", in: fields)
            }
            if let text, text.kind == .string {
                found.append(TextRange(index: index, range: text.range, finished: finished))
            } else if finished, redactors[index] != nil {
                // A last event without text: the held text has nowhere to go here; it is sent before `[DONE]`.
                continue
            }
        }
        return found
    }
}

extension ByteBuffer {
    /// These bytes with each edit's range (offsets from the reader index, not overlapping) replaced by
    /// its text; the buffer itself when there is none.
    func splicing(_ edits: [(range: Range<Int>, replacement: String)]) -> ByteBuffer {
        guard !edits.isEmpty else { return self }
        var output = ByteBuffer()
        output.reserveCapacity(readableBytes + edits.reduce(0) { $0 + $1.replacement.utf8.count })
        withUnsafeReadableBytes { bytes in
            var position = 0
            for edit in edits.sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) {
                output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[position..<edit.range.lowerBound]))
                output.writeString(edit.replacement)
                position = edit.range.upperBound
            }
            output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[position..<bytes.count]))
        }
        return output
    }
}
