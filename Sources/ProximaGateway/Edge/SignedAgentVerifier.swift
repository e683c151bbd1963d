import AsyncHTTPClient
import HTTPTypes
import Logging
import ProximaCore
import ProximaGuard

/// Signed agents (HTTP Message Signatures, Web Bot Auth profile): verifies a request's signature
/// against the agent's key directory (configured, or fetched from its `Signature-Agent` origin and
/// cached), refusing replays and expired signatures. Directory fetches never block an event loop
/// and are bounded by `directory_timeout_seconds`.
final class SignedAgentVerifier: Sendable {
    let settings: SignedAgentSettings
    private let profile: WebBotAuth
    private let replayGuard: ReplayGuard
    /// Configured directories by origin; they are never fetched.
    private let configured: [AgentOrigin: AgentKeyDirectory]
    /// The configured origin of each configured key, for signatures that name no agent.
    private let configuredOriginByThumbprint: [String: AgentOrigin]
    private let directories: AgentDirectoryCache
    private let logger: Logger

    init(settings: SignedAgentSettings, client: HTTPClient, logger: Logger) {
        self.settings = settings
        self.profile = WebBotAuth(maximumLifetimeSeconds: settings.maxSignatureLifetimeSeconds, clockSkewSeconds: settings.clockSkewSeconds)
        self.replayGuard = ReplayGuard(capacity: settings.maxRememberedSignatures)
        var configured: [AgentOrigin: AgentKeyDirectory] = [:]
        var byThumbprint: [String: AgentOrigin] = [:]
        for directory in settings.directories {
            // The configuration's validation has refused bad origins and keys; skip any left.
            guard let origin = AgentOrigin(directory.origin) else { continue }
            let keys = directory.keys.compactMap { AgentPublicKey(kty: $0.kty, crv: $0.crv, x: $0.x) }
            guard !keys.isEmpty else { continue }
            configured[origin] = AgentKeyDirectory(keys: (configured[origin]?.keys ?? []) + keys)
            for key in keys where byThumbprint[key.thumbprint] == nil { byThumbprint[key.thumbprint] = origin }
        }
        self.configured = configured
        self.configuredOriginByThumbprint = byThumbprint
        self.directories = AgentDirectoryCache(settings: settings, client: client, logger: logger)
        self.logger = logger
    }

    /// Directory fetches started so far (each origin at most once per cache lifetime).
    var directoryFetches: Int { directories.fetches }

    /// nil when the request carries no signature; else `signed_agent` (name: the agent's origin),
    /// `impersonator` (a signature that fails: bad, expired, replayed, unknown key; the reason says
    /// which) or `declared_bot` with reason `directory_unavailable` when the keys could not be had.
    /// With `consuming` false (an explanation) a valid signature is checked against the replay guard
    /// but not remembered, so the same request can still be sent.
    func classify(_ request: EdgeRequest, now: Double, consuming: Bool = true) async -> CallerClassification? {
        guard settings.enabled,
            request.headers.contains(where: { $0.name == Self.signatureInput || $0.name == Self.signature })
        else { return nil }
        let message = SignedMessage(
            method: request.method.rawValue, scheme: request.scheme, authority: request.authority, target: request.path,
            fields: request.headers.map { SignedMessage.Field(name: $0.name.canonicalName, value: $0.value) })

        let claim: SignatureClaim
        do {
            guard let found = try profile.claim(in: message, now: now) else { return nil }
            claim = found
        } catch {
            return refused(error, name: nil)
        }

        let origin: AgentOrigin
        let keys: AgentKeyDirectory
        if let agent = claim.agent {
            origin = agent
            if let known = configured[agent] {
                keys = known
            } else if settings.fetchDirectories, let fetched = await directories.keys(for: agent, now: now) {
                keys = fetched
            } else {
                return refused(.directoryUnavailable, name: agent.description)
            }
        } else {
            // No agent named: only configured keys can vouch for the signature.
            guard let known = configuredOriginByThumbprint[claim.keyID], let directory = configured[known] else {
                return refused(.unknownKey, name: nil)
            }
            origin = known
            keys = directory
        }

        do {
            try profile.verify(claim, in: message, keys: keys)
        } catch {
            return refused(error, name: origin.description)
        }
        if !consuming {
            if replayGuard.isRemembered(claim, now: now) { return refused(.replayed, name: origin.description) }
        } else if let failure = replayGuard.remember(claim, until: profile.rememberUntil(claim), now: now) {
            return refused(failure, name: origin.description)
        }
        return CallerClassification(.signedAgent, name: origin.description)
    }

    /// A signature that failed: an impersonator, except when the gateway could not check it (the
    /// directory could not be had, or the replay guard is full), which leaves a declared but
    /// unproven bot.
    private func refused(_ failure: SignatureFailure, name: String?) -> CallerClassification {
        logger.debug("signed agent not verified", metadata: ["reason": "\(failure.rawValue)", "agent": "\(name ?? "-")"])
        switch failure {
        case .directoryUnavailable, .replayCacheFull:
            return CallerClassification(.declaredBot, name: name, reason: failure.rawValue)
        default:
            return CallerClassification(.impersonator, name: name, reason: failure.rawValue)
        }
    }

    private static let signatureInput = HTTPField.Name("Signature-Input")!
    private static let signature = HTTPField.Name("Signature")!
}
