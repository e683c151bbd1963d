/// Decisions on a cap of requests running at once. The count itself belongs to whoever owns the
/// requests (each admitted request is counted once and released once); these are the pure rules.
public enum ConcurrencyLimit {
    /// Whether one more request may start when `inFlight` are running under `limit` (no limit:
    /// always). A negative count (a bookkeeping bug elsewhere) counts as zero.
    public static func admits(inFlight: Int, limit: Int?) -> Bool {
        guard let limit else { return true }
        return max(inFlight, 0) < limit
    }

    /// The count after a request starts, saturating instead of overflowing.
    public static func started(_ inFlight: Int) -> Int {
        let (sum, overflow) = max(inFlight, 0).addingReportingOverflow(1)
        return overflow ? Int.max : sum
    }

    /// The count after a request ends, never below zero.
    public static func ended(_ inFlight: Int) -> Int {
        inFlight > 0 ? inFlight - 1 : 0
    }

    /// The `Retry-After` suggested when the cap refuses: when a running request ends is unknown,
    /// so a short wait.
    public static let retryAfterSeconds: Double = 1
}
