import ProximaCore
import Testing

@testable import ProximaGuard

@Suite struct StreamRedactorTests {
    let detector = try! SensitiveDataDetector()

    func run(_ fragments: [Substring], window: Int = GuardSettings().streamWindowBytes, masking: Bool = true) -> (text: String, findings: [SensitiveFinding], maxHeld: Int) {
        var redactor = StreamRedactor(detector: detector, windowBytes: window, masking: masking)
        var text = ""
        var findings: [SensitiveFinding] = []
        var maxHeld = 0
        for fragment in fragments {
            let out = redactor.push(fragment)
            text += out.text
            findings += out.findings
            maxHeld = max(maxHeld, redactor.heldBytes)
        }
        let end = redactor.finish()
        return (text + end.text, findings + end.findings, maxHeld)
    }

    /// Splits `text` into fragments at the given UTF-8 offsets (moved to character boundaries).
    func split(_ text: String, at offsets: [Int]) -> [Substring] {
        var fragments: [Substring] = []
        var last = text.startIndex
        for offset in offsets {
            let index = text.utf8.index(text.startIndex, offsetBy: offset)
            guard let boundary = index.samePosition(in: text.unicodeScalars), boundary >= last else { continue }
            fragments.append(text[last..<boundary])
            last = boundary
        }
        fragments.append(text[last...])
        return fragments
    }

    /// Every single split point of every secret's sentence: the joined output is the masked text, and
    /// the finding is reported once with its range in the whole answer.
    @Test(arguments: SecretFixtures.all.filter { $0.entity != "private_key" })
    func aSecretSplitAnywhereIsStillMasked(entity: String, value: String) {
        let text = "Sure! Here it is: \(value) — keep it safe."
        let expected = detector.masked(Substring(text))
        #expect(expected.findings.map(\.entity) == [entity])
        for cut in 1..<text.utf8.count {
            let result = run(split(text, at: [cut]))
            #expect(result.text == expected.text, "cut at \(cut)")
            #expect(result.findings == expected.findings, "cut at \(cut)")
        }
    }

    /// Every chunk size, from one byte per event up.
    @Test(arguments: SecretFixtures.all)
    func everyChunkingOfASecretIsMasked(entity: String, value: String) {
        let text = "token: \(value)\nnext line"
        let expected = detector.masked(Substring(text)).text
        for size in 1...24 {
            let offsets = Array(stride(from: size, to: text.utf8.count, by: size))
            let result = run(split(text, at: offsets), window: 256)
            #expect(result.text == expected, "\(entity) in chunks of \(size)")
            #expect(!result.text.contains(value), "\(entity) leaked in chunks of \(size)")
        }
    }

    @Test func heldTextNeverExceedsTheWindowAndPlainTextFlowsAtOnce() {
        let prose = String(repeating: "The answer continues with plain words. ", count: 50)
        var redactor = StreamRedactor(detector: detector, windowBytes: 32)
        var sent = 0
        for fragment in split(prose, at: Array(stride(from: 5, to: prose.utf8.count, by: 5))) {
            sent += redactor.push(fragment).text.utf8.count
            #expect(redactor.heldBytes <= 32 + 3)
            // Only the trailing word can be growing: at most a word is held.
            #expect(redactor.heldBytes <= 12)
        }
        #expect(sent + redactor.finish().text.utf8.count == prose.utf8.count)
        // A long run of token characters is released at the window size (flushed, not held forever).
        let long = String(repeating: "a", count: 500)
        let result = run(split(long, at: Array(stride(from: 7, to: 500, by: 7))), window: 64)
        #expect(result.text == long)
        #expect(result.maxHeld <= 64 + 3)
    }

    @Test func aPrivateKeyBlockLongerThanTheWindowIsSwallowedUntilItsEnd() {
        let body = (0..<20).map { _ in "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun" }.joined(separator: "\n")
        let text = "Here:\n-----BEGIN RSA PRIVATE KEY-----\n\(body)\n-----END RSA PRIVATE KEY-----\nDone."
        for size in [3, 7, 16, 50] {
            let result = run(split(text, at: Array(stride(from: size, to: text.utf8.count, by: size))), window: 128)
            #expect(result.text == "Here:\n[private_key]\nDone.", "chunks of \(size): \(result.text.prefix(80))")
            #expect(result.findings.map(\.entity) == ["private_key"])
        }
    }

    @Test func withoutMaskingTextPassesUnchangedAndFindingsAreReported() {
        let text = "Reach me at jane.doe@example.com or \(SecretFixtures.phone). Key \(SecretFixtures.aws)."
        var redactor = StreamRedactor(detector: detector, windowBytes: 128, masking: false)
        var out = ""
        var findings: [SensitiveFinding] = []
        for fragment in split(text, at: Array(stride(from: 4, to: text.utf8.count, by: 4))) {
            let pushed = redactor.push(fragment)
            #expect(pushed.text == String(fragment))
            out += pushed.text
            findings += pushed.findings
        }
        findings += redactor.finish().findings
        #expect(out == text)
        #expect(findings == detector.findings(in: Substring(text)))
    }

    @Test func multiByteTextIsNeverSplit() {
        let text = String(repeating: "日本語のテキスト😀é ", count: 40) + "mail: ana@example.jp"
        for size in [1, 2, 5, 13] {
            let result = run(split(text, at: Array(stride(from: size, to: text.utf8.count, by: size))), window: 16)
            #expect(result.text == String(repeating: "日本語のテキスト😀é ", count: 40) + "mail: [email]")
        }
    }
}
