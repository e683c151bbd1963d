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

