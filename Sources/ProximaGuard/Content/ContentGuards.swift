import ProximaCore

/// The channel a text arrived through: a user's turn, the system prompt, or the indirect channel
/// (a tool result, a function output, retrieved text in any role).
public enum MessageChannel: String, Sendable, CaseIterable {
    case system, user, assistant, tool
}

/// What the injection detector found in one text.
public struct InjectionScan: Sendable, Equatable {
    /// 0...1.
    public var score: Double
    /// The most specific category that matched (nil when nothing did).
    public var category: GuardCategory?
    /// Names of the signals that matched.
    public var signals: [String]
    /// UTF-8 byte offsets (in the scanned text) of the offending spans, for `redact`.
    public var spans: [Range<Int>]

    public init(score: Double = 0, category: GuardCategory? = nil, signals: [String] = [], spans: [Range<Int>] = []) {
        self.score = score
        self.category = category
        self.signals = signals
        self.spans = spans
    }
}

/// Prompt-injection and jailbreak detection (docs/security.md): normalizes obfuscations (invisible
/// characters, homoglyphs, encoded blobs) and scores the instruction-like signals that remain.
public struct InjectionDetector: Sendable {
    public init() {}

    /// Scans at most `budget` bytes of `text`.
    public func scan(_ text: Substring, channel: MessageChannel, budget: Int) -> InjectionScan {
        InjectionScan()
    }
}

/// One secret or piece of personal data found in a text.
public struct SensitiveFinding: Sendable, Equatable {
    /// The entity type (`email`, `payment_card`, `aws_access_key`, ... or a configured pattern's name).
    public var entity: String
    /// UTF-8 byte offsets in the scanned text.
    public var range: Range<Int>

    public init(entity: String, range: Range<Int>) {
        self.entity = entity
        self.range = range
    }
}

/// Secrets and personal data (docs/security.md): provider keys and tokens by their structure,
/// private key blocks, JWTs, payment cards (Luhn), IBANs (mod 97), emails, phone numbers and
/// configured patterns.
public struct SensitiveDataDetector: Sendable {
    /// `entities` empty: every built-in type. Throws when a pattern does not compile.
    public init(entities: Set<String> = [], patterns: [GuardSettings.Pattern] = []) throws {}

    public func findings(in text: Substring) -> [SensitiveFinding] { [] }

    /// `text` with every finding replaced by `[<entity>]`, and the findings.
    public func masked(_ text: Substring) -> (text: String, findings: [SensitiveFinding]) { (String(text), []) }
}

/// Masks secrets and personal data in a streamed answer without waiting for its end: text is held
/// back only as long as a finding could still be growing across fragments (at most `windowBytes`).
/// With `masking` false the text passes unchanged and only the findings are reported (action `log`).
public struct StreamRedactor: Sendable {
    public init(detector: SensitiveDataDetector, windowBytes: Int, masking: Bool = true) {}

    /// Takes the next fragment of the answer's text; returns the text that is safe to send now (masked).
    public mutating func push(_ fragment: Substring) -> (text: String, findings: [SensitiveFinding]) { (String(fragment), []) }

    /// The text still held back, masked, at the end of the stream.
    public mutating func finish() -> (text: String, findings: [SensitiveFinding]) { ("", []) }
}
