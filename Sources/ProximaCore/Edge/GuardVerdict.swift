/// What a content guard found in a request or an answer: the category, its ids in the OWASP Top 10
/// for LLM Applications (2025) and MITRE ATLAS, how sure the guard is, the signals that matched and
/// what was done. Verdicts go into the request's log record, metrics and (next) the audit trail;
/// they never hold the matched text itself.
public struct GuardVerdict: Sendable, Equatable {
    public enum Direction: String, Sendable { case input, output }

    public var category: GuardCategory
    public var direction: Direction
    /// 0...1; for sensitive data, 1.
    public var score: Double
    /// Names of what matched (`ignore_previous`, `base64_instructions`, `tag_characters`, `email`, ...).
    public var signals: [String]
    /// Where it was found: `user`, `system`, `tool`, `assistant`, `answer`, ...
    public var channel: String
    /// What the gateway did: `logged`, `redacted`, `masked`, `refused`.
    public var action: String

    public init(category: GuardCategory, direction: Direction, score: Double, signals: [String], channel: String, action: String) {
        self.category = category
        self.direction = direction
        self.score = score
        self.signals = signals
        self.channel = channel
        self.action = action
    }

    public var owasp: String { category.owasp }
    public var atlas: String? { category.atlas }
}

/// The kinds of finding, each with its taxonomy ids (SECURITY-FORMATS: OWASP LLM 2025, MITRE ATLAS).
public enum GuardCategory: String, Sendable, CaseIterable {
    /// Instructions that try to override the system's (LLM01; ATLAS AML.T0051.000 direct).
    case promptInjection = "prompt_injection"
    /// The same arriving through a tool result, function output or retrieved text (AML.T0051.001).
    case indirectInjection = "indirect_prompt_injection"
    /// Role-play or persona framing to lift the model's rules (LLM01; AML.T0054).
    case jailbreak
    /// Asking the model to reveal its system prompt (LLM07; AML.T0056).
    case systemPromptExtraction = "system_prompt_extraction"
    /// Secrets (keys, tokens, private keys) or personal data (LLM02; AML.T0057).
    case sensitiveData = "sensitive_data"
    /// More text than the guards' budget; the rest went unscanned (LLM10; AML.T0034).
    case unboundedInput = "unbounded_input"

    public var owasp: String {
        switch self {
        case .promptInjection, .indirectInjection, .jailbreak: "LLM01"
        case .systemPromptExtraction: "LLM07"
        case .sensitiveData: "LLM02"
        case .unboundedInput: "LLM10"
        }
    }

    public var atlas: String? {
        switch self {
        case .promptInjection: "AML.T0051.000"
        case .indirectInjection: "AML.T0051.001"
        case .jailbreak: "AML.T0054"
        case .systemPromptExtraction: "AML.T0056"
        case .sensitiveData: "AML.T0057"
        case .unboundedInput: "AML.T0034"
        }
    }
}

extension GuardSettings {
    /// The entity types the secrets and personal-data guard knows (docs/security.md); configured
    /// `patterns` add their own names.
    public static let builtInEntities: Set<String> = [
        "email", "phone", "payment_card", "iban", "us_ssn", "ip_address",
        "private_key", "jwt", "aws_access_key", "github_token", "openai_api_key", "anthropic_api_key",
        "google_api_key", "slack_token", "stripe_key", "huggingface_token",
    ]
}
