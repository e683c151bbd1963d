import Foundation
import Testing
@testable import ProximaAudit

/// The hand-written line encoder against Foundation's: the same bytes as `JSONEncoder` with sorted
/// keys for every record without fractional numbers (key order, omitted nils, escaping), and for
/// every record a line that decodes back to it.
@Suite struct AuditLineEncoderTests {
    static let awkward = [
        "", "plain", "quote \" and backslash \\", "slash / kept", "new\nline\ttab\rreturn", "\u{08}\u{0C}\u{01}\u{1F}\u{7F}",
        "é ü 日本 🙂", "\u{2028}\u{2029}", "{\"json\":[1,2]}", "—", String(repeating: "x", count: 300),
    ]

    static func record(_ generator: inout some RandomNumberGenerator, fractional: Bool) -> AuditRecord {
        func text() -> String? { Bool.random(using: &generator) ? awkward.randomElement(using: &generator)! : nil }
        func int() -> Int? { Bool.random(using: &generator) ? Int.random(in: -5...1_000_000, using: &generator) : nil }
        func double() -> Double? {
            guard Bool.random(using: &generator) else { return nil }
            return fractional ? Double.random(in: 0...10, using: &generator) / 1_000 : Double(Int.random(in: 0...50, using: &generator))
        }
        let kinds: [AuditRecord.Kind] = [.request, .admin, .retention]
        var record = AuditRecord(
            kind: kinds.randomElement(using: &generator)!, time: "2026-12-07T09:00:00.123Z", seq: Int.random(in: 0...99_999, using: &generator),
            prev: Bool.random(using: &generator) ? String(repeating: "ab", count: 32) : "")
        record.requestID = text()
        record.tenant = text()
        record.principal = text()
        record.key = text()
        record.callerClass = text()
        record.model = text()
        record.servedModel = text()
        record.policy = text()
        record.residency = text()
        record.cache = text()
        record.promptTokens = int()
        record.completionTokens = int()
        record.costUSD = double()
        record.status = int()
        record.outcome = text()
        record.promptSHA256 = text()
        record.answerSHA256 = text()
        record.promptText = text()
        record.answerText = text()
        record.durationMS = double()
        record.action = text()
        record.actor = text()
        record.target = text()
        record.detail = text()
        record.removedThrough = int()
        if Bool.random(using: &generator) { record.removedSegments = (0..<Int.random(in: 0...3, using: &generator)).map { "segment-\($0)" } }
        if Bool.random(using: &generator) { record.frontier = (0..<Int.random(in: 0...3, using: &generator)).map { _ in text() ?? "" } }
        if Bool.random(using: &generator) {
            record.guards = (0..<Int.random(in: 0...2, using: &generator)).map { _ in
                AuditGuardVerdict(category: text() ?? "c", owasp: "LLM01", atlas: text() ?? "", action: "log", stage: "input")
            }
        }
        if Bool.random(using: &generator) {
            record.route = AuditRoute(
                endpoint: text(), site: text(), jurisdiction: text(), provider: text(), attempts: int(),
                excluded: Bool.random(using: &generator) ? [AuditExclusion(endpoint: "e", kind: "residency", reason: text() ?? "r")] : nil)
        }
        return record
    }

    @Test func linesMatchFoundationsSortedEncodingByteForByte() throws {
        var generator = SystemRandomNumberGenerator()
        let foundation = JSONEncoder()
        foundation.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for _ in 0..<2_000 {
            let record = Self.record(&generator, fractional: false)
            let ours = AuditLineEncoder.line(record)
            // Whole numbers: Foundation writes 7.0 as 7 where Swift prints 7.0; compare the rest.
            var comparable = record
            comparable.costUSD = nil
            comparable.durationMS = nil
            let expected = Array(try foundation.encode(comparable))
            #expect(AuditLineEncoder.line(comparable) == expected, "\(String(decoding: AuditLineEncoder.line(comparable), as: UTF8.self))")
            #expect(try AuditRecord.decode(line: ours) == record)
        }
    }

    @Test func everyLineDecodesBackToItsRecord() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let record = Self.record(&generator, fractional: true)
            let line = try record.encodedLine()
            #expect(!line.contains(0x0A))
            #expect(try AuditRecord.decode(line: line) == record)
        }
    }
}
