import HTTPTypes
import ProximaCore
import Synchronization

/// The behavioural score of callers that are neither authenticated nor a known agent, crawler or
/// bot: cheap signals from the head and the request rate per address, in bounded memory.
///
/// Each signal has a strength from 0 to 1 and a weight (``defaultWeights``, overridden by
/// `edge.unknown.weights`); the score is the sum of weight x strength, capped at 1. Signals:
/// - `no_user_agent`: no `User-Agent`, or an empty one;
/// - `no_accept`: no `Accept`;
/// - `browser_without_accept_language`: the User-Agent starts with `Mozilla/` (every browser's does)
///   but no `Accept-Language` came, which browsers always send;
/// - `few_headers`: fewer than three fields besides `Host` (browsers and SDKs send more);
/// - `address_rate`: requests from the address in the current window: 0 up to half of
///   `address_requests_per_window`, rising linearly to 1 at the limit;
/// - `key_rate`: the same for the API key, when one came.
final class UnknownCallerScorer: Sendable {
    let settings: UnknownCallerSettings
    /// The weights in force, by signal name.
    let weights: [String: Double]
    private let wNoUserAgent, wNoAccept, wBrowserWithoutLanguage, wFewHeaders, wAddressRate, wKeyRate: Double
    private let counters: Mutex<RateCounters>

    static let defaultWeights: [String: Double] = [
        "no_user_agent": 0.4,
        "no_accept": 0.15,
        "browser_without_accept_language": 0.3,
        "few_headers": 0.1,
        "address_rate": 0.6,
        "key_rate": 0.4,
    ]

    init(settings: UnknownCallerSettings) {
        self.settings = settings
        let weights = Self.defaultWeights.merging(settings.weights) { _, configured in min(max(configured, 0), 1) }
        self.weights = weights
        wNoUserAgent = weights["no_user_agent"] ?? 0
        wNoAccept = weights["no_accept"] ?? 0
        wBrowserWithoutLanguage = weights["browser_without_accept_language"] ?? 0
        wFewHeaders = weights["few_headers"] ?? 0
        wAddressRate = weights["address_rate"] ?? 0
        wKeyRate = weights["key_rate"] ?? 0
        counters = Mutex(RateCounters(limit: settings.maxTrackedAddresses, window: settings.windowSeconds))
    }

    /// Class `unknown` with the score (0...1) and the signals that made it. With `counting` false (an
    /// explanation) the request is scored as the next one would be, but not counted.
    func classify(_ request: EdgeRequest, keyID: String?, now: Double, counting: Bool = true) -> CallerClassification {
        var score = 0.0
        var signals: [String] = []
        func add(_ name: String, _ weight: Double, _ strength: Double) {
            guard strength > 0, weight > 0 else { return }
            score += weight * min(strength, 1)
            signals.append(name)
        }
        let headers = request.headers
        let userAgent = headers[.userAgent]
        if userAgent?.isEmpty ?? true { add("no_user_agent", wNoUserAgent, 1) }
        if headers[.accept] == nil { add("no_accept", wNoAccept, 1) }
        if let userAgent, userAgent.hasPrefix("Mozilla/"), headers[.acceptLanguage] == nil {
            add("browser_without_accept_language", wBrowserWithoutLanguage, 1)
        }
        var fields = 0
        for field in headers where field.name.canonicalName != "host" { fields += 1 }
        if fields < 3 { add("few_headers", wFewHeaders, 1) }

        let limit = Double(settings.addressRequestsPerWindow)
        let (addressCount, keyCount) = counters.withLock { counters in
            let address = request.peer.map { counting ? counters.count(.address($0), now: now) : counters.peek(.address($0), now: now) } ?? 0
            let key = keyID.map { counting ? counters.count(.key($0), now: now) : counters.peek(.key($0), now: now) } ?? 0
            return (address, key)
        }
        add("address_rate", wAddressRate, Self.rateStrength(Double(addressCount), limit: limit))
        add("key_rate", wKeyRate, Self.rateStrength(Double(keyCount), limit: limit))
        return CallerClassification(.unknown, score: min(score, 1), signals: signals)
    }

    /// 0 up to half the limit, 1 at the limit, linear between.
    static func rateStrength(_ count: Double, limit: Double) -> Double {
        guard limit > 0 else { return 0 }
        return min(max((count / limit - 0.5) * 2, 0), 1)
    }

    /// Addresses (and keys) tracked now, for tests of the bound.
    var trackedCount: Int { counters.withLock { $0.entries.count } }
}

/// Requests per caller in fixed windows, for at most `limit` callers: when full, callers not seen for
/// a window go first, then the least recently seen eighth.
struct RateCounters: ~Copyable {
    enum Caller: Hashable {
        case address(IPAddress)
        case key(String)
    }

    struct Entry {
        var windowStart: Double
        var count: Int
        var lastSeen: Double
    }

    let limit: Int
    let window: Double
    var entries: [Caller: Entry] = [:]

    init(limit: Int, window: Double) {
        self.limit = max(1, limit)
        self.window = max(window, 0.001)
    }

    /// Counts one request of `caller` and returns its requests in the current window.
    mutating func count(_ caller: Caller, now: Double) -> Int {
        if var entry = entries[caller] {
            if now - entry.windowStart >= window || now < entry.windowStart {
                entry.windowStart = now
                entry.count = 0
            }
            entry.count = entry.count < Int.max ? entry.count + 1 : entry.count
            entry.lastSeen = now
            entries[caller] = entry
            return entry.count
        }
        if entries.count >= limit { makeRoom(now: now) }
        entries[caller] = Entry(windowStart: now, count: 1, lastSeen: now)
        return 1
    }

    /// The requests `caller` would have in the current window with one more, without counting it.
    func peek(_ caller: Caller, now: Double) -> Int {
        guard let entry = entries[caller], now - entry.windowStart < window, now >= entry.windowStart else { return 1 }
        return entry.count < Int.max ? entry.count + 1 : entry.count
    }

    private mutating func makeRoom(now: Double) {
        let window = self.window
        entries = entries.filter { now - $0.value.lastSeen < window }
        guard entries.count >= limit else { return }
        let drop = max(1, limit / 8)
        let oldest = entries.sorted { $0.value.lastSeen < $1.value.lastSeen }.prefix(drop)
        for (caller, _) in oldest { entries[caller] = nil }
    }
}
