import ProximaCore
import Testing

@testable import ProximaGuard

/// Fixtures are fake: generated with the providers' structure (and valid checksums where there is one).
enum SecretFixtures {
    static let aws = "AKIAIOSFODNN7EXAMPLE"
    static let github = "ghp_" + String(repeating: "aB3d", count: 9)
    static let githubFineGrained = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"
    static let openAI = "sk-proj-" + String(repeating: "Ab9_x", count: 12)
    static let openAILegacy = "sk-" + String(repeating: "aB3dE5", count: 8)
    static let anthropic = "sk-ant-api03-" + String(repeating: "Zx8-Qw", count: 15) + "AA"
    static let google = "AIza" + String(repeating: "Sy9_k", count: 7)
    static let slack = "xoxb-123456789012-123456789012-aBcDeFgHiJkLmNoPqRsTuVwX"
    static let stripe = "sk_live_" + String(repeating: "4eC39HqLyjWDarjtT1zdp7dc", count: 1)
    static let huggingFace = "hf_" + String(repeating: "AbCdEfGhIjKlMnOpQr", count: 2).prefix(34)
    static let jwt =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    static let privateKey = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----"
    static let card = "4111 1111 1111 1111"
    static let iban = "GB82 WEST 1234 5698 7654 32"
    static let ssn = "536-22-1234"
    static let email = "jane.doe+news@mail.example.co.uk"
    static let phone = "+1-415-555-2671"

    static let all: [(entity: String, value: String)] = [
        ("aws_access_key", aws), ("github_token", github), ("github_token", githubFineGrained), ("openai_api_key", openAI),
        ("openai_api_key", openAILegacy), ("anthropic_api_key", anthropic), ("google_api_key", google), ("slack_token", slack),
        ("stripe_key", stripe), ("huggingface_token", String(huggingFace)), ("jwt", jwt), ("private_key", privateKey),
        ("payment_card", card), ("iban", iban), ("us_ssn", ssn), ("email", email), ("phone", phone), ("ip_address", "203.0.113.42"),
        ("ip_address", "2001:db8:85a3::8a2e:370:7334"),
    ]
}

@Suite struct SensitiveDataDetectorTests {
    let detector = try! SensitiveDataDetector()

    /// Every entity type is found in a sentence, with its exact byte range.
    @Test(arguments: SecretFixtures.all)
    func entityIsFoundWithItsExactRange(entity: String, value: String) {
        let text = "Note — value: \(value) (end)"
        let found = detector.findings(in: Substring(text))
        let start = "Note — value: ".utf8.count
        #expect(found == [SensitiveFinding(entity: entity, range: start..<(start + value.utf8.count))], "\(found)")
        #expect(detector.masked(Substring(text)).text == "Note — value: [\(entity)] (end)")
    }

    @Test(arguments: [
        "Card 4111 1111 1111 1112 fails the Luhn check.",
        "Card 1234 5678 9012 3452 has no known issuer.",
        "Released on 2024-01-15 at 10:30:45, ticket 2024-01-15-0042.",
        "Upgrade to version 10.0.19045.2965 or 1.2.3 first.",
        "Order #4471 for 12 items costs $1234.56; population 8336817.",
        "The number 5551234567 is a plain number, and so is 12345678901.",
        "SSN-like 000-12-3456, 666-12-3456, 912-12-3456 and 123-00-4567 are invalid.",
        "AKIAIOSFODNN7EXAMPL is one short; AKIAIOSFODNN7EXAMPLEX one long.",
        "Use sk-learn and sk-test-value for the demo.",
        "IBAN GB82 WEST 1234 5698 7654 33 has a bad check.",
        "Header eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc is not a JWT (no alg).",
        "Times 12:30:45 and std::vector are not IPv6; 999.1.1.1 is not IPv4.",
        "user@localhost is not an address with a domain; @handle neither.",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "Request 550e8400-e29b-41d4-a716-446655440000 failed.",
    ])
    func nearMissesAreNotFindings(text: String) {
        #expect(detector.findings(in: Substring(text)).isEmpty, "\(detector.findings(in: Substring(text)))")
    }

    @Test(arguments: [
        ("(555) 123-4567", true), ("555-123-4567", true), ("555.123.4567", true), ("+44 20 7946 0958", true), ("+14155552671", true),
        ("020 7946 0958", true), ("030 12345678", true), ("(890)618-5689x70134", true), ("+49(0)8183 384924", true),
        ("01914960930", true), ("5551234567", false), ("2024-01-15", false), ("1.2.3.4.5", false), ("12 34 56", false),
    ])
    func phoneFormats(text: String, isPhone: Bool) {
        let found = detector.findings(in: Substring("call \(text) today"))
        #expect((found.first?.entity == "phone") == isPhone, "\(text): \(found)")
    }

    @Test func entitiesAndPatternsAreSelectable() throws {
        let only = try SensitiveDataDetector(entities: ["email"])
        let text = "Mail jane@example.com, card \(SecretFixtures.card), ticket INC-004711."
        #expect(only.findings(in: Substring(text)).map(\.entity) == ["email"])
        let custom = try SensitiveDataDetector(patterns: [GuardSettings.Pattern(name: "ticket", regex: "INC-[0-9]{6}")])
        #expect(custom.masked(Substring(text)).text == "Mail [email], card [payment_card], ticket [ticket].")
        // Offsets are UTF-8 bytes even after multi-byte characters.
        let accented = try SensitiveDataDetector(patterns: [GuardSettings.Pattern(name: "ticket", regex: "INC-[0-9]{6}")])
        let found = accented.findings(in: "😀 é INC-004711")
        #expect(found == [SensitiveFinding(entity: "ticket", range: 8..<18)])
        #expect(throws: (any Error).self) { try SensitiveDataDetector(patterns: [GuardSettings.Pattern(name: "bad", regex: "([a-")]) }
    }

    @Test func anUnterminatedPrivateKeyMasksEverythingAfterItsHeader() {
        let text = "key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
        #expect(detector.masked(Substring(text)).text == "key:\n[private_key]")
    }

    @Test func largeAndInvalidInputIsHandledWithinTheLimit() {
        var bytes = Array(String(repeating: "x ", count: 200_000).utf8)
        bytes.append(contentsOf: Array(" \(SecretFixtures.aws) ".utf8))
        bytes.insert(contentsOf: [0xFF, 0xC3, 0x28, 0xF0, 0x9F], at: 10)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(detector.findings(in: Substring(text), limit: 4_096).isEmpty)
        #expect(detector.findings(in: Substring(text)).map(\.entity) == ["aws_access_key"])
    }
}

/// The secrets scan crosses lowercase words and capitalised words eight bytes at a time: every entity is
/// still found, with its exact range, wherever it starts after such prose.
@Suite struct SensitiveFastPathTests {
    let detector = try! SensitiveDataDetector()

    @Test(arguments: SecretFixtures.all + [("ip_address", "Fe80::1"), ("ip_address", "Dead:beef::1"), ("email", "Ann.Lee@Example.org")])
    func everyEntityIsFoundAfterProseOfAnyLength(entity: String, value: String) {
        for padding in 0..<10 {
            let prefix = "How The Quiet words run " + String(repeating: "x", count: padding) + " Then "
            let text = prefix + value + " follows. Done"
            let found = detector.findings(in: Substring(text))
            let start = prefix.utf8.count
            #expect(found == [SensitiveFinding(entity: entity, range: start..<(start + value.utf8.count))], "padding \(padding): \(found)")
        }
    }
}
