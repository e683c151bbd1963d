/// One rate limit as OpenAI's headers describe it.
public struct RateLimitSnapshot: Sendable, Equatable {
    /// The limit per minute (`x-ratelimit-limit-*`).
    public var limit: Int
    /// Whole units that could be admitted now (`x-ratelimit-remaining-*`).
    public var remaining: Int
    /// Seconds until the limit is fully refilled (`x-ratelimit-reset-*`).
    public var resetSeconds: Double

    public init(limit: Int, remaining: Int, resetSeconds: Double) {
        self.limit = limit
        self.remaining = remaining
        self.resetSeconds = resetSeconds
    }

    /// Share of the limit left, 0 (exhausted) to 1; what "closest to exhaustion" compares.
    public var remainingShare: Double {
        limit > 0 ? min(max(Double(remaining) / Double(limit), 0), 1) : 0
    }
}

/// The rate-limit headers of one response, with OpenAI's names and formats: sent on every answer
/// of a limited caller, and with `Retry-After` on a refusal.
public struct RateLimitHeaders: Sendable, Equatable {
    public var requests: RateLimitSnapshot?
    public var tokens: RateLimitSnapshot?
    /// Whole seconds (`Retry-After`), only on a refusal that can be retried.
    public var retryAfterSeconds: Int?

    public init(requests: RateLimitSnapshot? = nil, tokens: RateLimitSnapshot? = nil, retryAfterSeconds: Int? = nil) {
        self.requests = requests
        self.tokens = tokens
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var isEmpty: Bool { requests == nil && tokens == nil && retryAfterSeconds == nil }

    /// The header fields in a fixed order: requests, tokens, then `retry-after`.
    public var fields: [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(7)
        if let requests {
            fields.append(("x-ratelimit-limit-requests", String(requests.limit)))
            fields.append(("x-ratelimit-remaining-requests", String(requests.remaining)))
            fields.append(("x-ratelimit-reset-requests", Self.resetDuration(requests.resetSeconds)))
        }
        if let tokens {
            fields.append(("x-ratelimit-limit-tokens", String(tokens.limit)))
            fields.append(("x-ratelimit-remaining-tokens", String(tokens.remaining)))
            fields.append(("x-ratelimit-reset-tokens", Self.resetDuration(tokens.resetSeconds)))
        }
        if let retryAfterSeconds {
            fields.append(("retry-after", String(retryAfterSeconds)))
        }
        return fields
    }

    /// `Retry-After` for a wait of `seconds`: whole seconds rounded up, at least 1 (a refused
    /// caller that retries at once is refused again). NaN and negative waits give 1; waits beyond
    /// 10^12 s are capped.
    public static func retryAfterSeconds(_ seconds: Double) -> Int {
        let clamped = AdmissionArithmetic.seconds(seconds)
        return max(1, Int((clamped - roundingNoise).rounded(.up)))
    }

    /// Rounding up ignores this much (seconds): a wait computed as 1.5000000001 s is 1.5 s.
    static let roundingNoise = 1e-7

    /// A reset time the way OpenAI writes it (Go's duration format): `0s`, `20ms`, `1s`, `1.5s`,
    /// `6m0s`, `1h0m0s`. Rounded up to the millisecond, so that a caller who waits that long finds
    /// room; NaN and negative times give `0s`, times beyond 10^12 s are capped.
    public static func resetDuration(_ seconds: Double) -> String {
        let clamped = AdmissionArithmetic.seconds(seconds)
        let milliseconds = max(Int((clamped * 1000 - roundingNoise * 1000).rounded(.up)), 0)
        if milliseconds == 0 { return "0s" }
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        let hours = milliseconds / 3_600_000
        let minutes = milliseconds / 60_000 % 60
        let wholeSeconds = milliseconds / 1000 % 60
        let fraction = milliseconds % 1000
        var text = ""
        if hours > 0 { text += "\(hours)h" }
        if hours > 0 || minutes > 0 { text += "\(minutes)m" }
        text += String(wholeSeconds)
        if fraction > 0 {
            var digits = String(fraction)
            digits = String(repeating: "0", count: 3 - digits.count) + digits
            while digits.last == "0" { digits.removeLast() }
            text += "." + digits
        }
        return text + "s"
    }
}
