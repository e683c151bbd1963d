/// What kind of caller a request comes from (docs/security.md, "Caller classes"). The edge stage
/// assigns exactly one class to every request; the class is in the request's log record, its metrics
/// and the operator's explain output, and selects the policy (``EdgePolicy``) the request meets.
public enum CallerClass: String, Codable, Sendable, CaseIterable, Hashable {
    /// A valid API key or JWT identified the caller.
    case authenticated
    /// A valid HTTP Message Signature (RFC 9421, Web Bot Auth profile) from an agent whose key
    /// directory is known.
    case signedAgent = "signed_agent"
    /// A user agent that names a known crawler, confirmed by forward-confirmed reverse DNS or the
    /// operator's published address ranges.
    case verifiedCrawler = "verified_crawler"
    /// Claims a known crawler or a signed agent and fails the proof.
    case impersonator
    /// A user agent that says it is automated (a library, a monitor, an unknown bot), unproven.
    case declaredBot = "declared_bot"
    /// Everything else; carries a behavioural score (``CallerClassification/score``).
    case unknown
}

/// The edge stage's finding about one request: the class, who it claims or proved to be, and why.
public struct CallerClassification: Sendable, Equatable {
    public var callerClass: CallerClass
    /// The proven or claimed name: the agent's origin (`https://agent.example`), the crawler's name
    /// (`Googlebot`), the library (`python-requests`); nil for people and unknown callers.
    public var name: String?
    /// For an impersonator or an unverified claim, why the proof failed (`ptr_mismatch`,
    /// `bad_signature`, `expired`, `replayed`, `dns_timeout`, ...); short, safe for logs and labels.
    public var reason: String?
    /// For unknown callers, 0 (looks like an ordinary client) to 1 (looks automated or abusive);
    /// see ``UnknownCallerSettings``.
    public var score: Double
    /// The behavioural signals that made up the score (`no_user_agent`, `address_rate`, ...).
    public var signals: [String]

    public init(_ callerClass: CallerClass, name: String? = nil, reason: String? = nil, score: Double = 0, signals: [String] = []) {
        self.callerClass = callerClass
        self.name = name
        self.reason = reason
        self.score = score
        self.signals = signals
    }

    /// The policy key this finding selects: its class, or `suspicious` for an unknown caller whose
    /// score reached `threshold`.
    public func policyKey(suspiciousScore threshold: Double) -> EdgePolicyKey {
        if callerClass == .unknown, score >= threshold { return .suspicious }
        return .caller(callerClass)
    }
}

/// What a policy table is keyed by: a caller class, or `suspicious` (an unknown caller whose score
/// reached ``UnknownCallerSettings/suspiciousScore``).
public enum EdgePolicyKey: Hashable, Sendable {
    case caller(CallerClass)
    case suspicious

    public init?(rawValue: String) {
        if rawValue == "suspicious" {
            self = .suspicious
        } else if let callerClass = CallerClass(rawValue: rawValue) {
            self = .caller(callerClass)
        } else {
            return nil
        }
    }

    public var rawValue: String {
        switch self {
        case .caller(let callerClass): callerClass.rawValue
        case .suspicious: "suspicious"
        }
    }

    public static let allNames: [String] = CallerClass.allCases.map(\.rawValue) + ["suspicious"]
}
