/// Why a signed request was not verified. The raw values are short and stable: they are the
/// `reason` of the caller's classification, a metric label and a log field (docs/security.md,
/// "Signed agents").
public enum SignatureFailure: String, Error, Sendable, CaseIterable, Hashable {
    /// `Signature-Input` or `Signature` is not a valid structured field, a label of one is missing
    /// from the other, a required parameter (`created`, `expires`, `keyid`) is missing or of the
    /// wrong type, or a covered component cannot be resolved by this verifier.
    case malformedSignature = "malformed_signature"
    /// `alg` names something other than `ed25519`.
    case unsupportedAlgorithm = "unsupported_algorithm"
    /// The profile's required components are not covered (`@authority`, and `signature-agent` when
    /// that header is sent), or a covered component is absent from the request.
    case missingComponent = "missing_component"
    /// No signature carries `tag="web-bot-auth"`.
    case wrongTag = "wrong_tag"
    case expired
    /// `created` is later than now (beyond the clock skew).
    case notYetValid = "not_yet_valid"
    /// `expires - created` is longer than `max_signature_lifetime_seconds`.
    case lifetimeTooLong = "lifetime_too_long"
    /// No key of the agent's directory has the signature's `keyid` as its JWK thumbprint.
    case unknownKey = "unknown_key"
    /// The Ed25519 signature does not verify over the signature base.
    case badSignature = "bad_signature"
    /// The nonce (or, without one, the signature) was seen before it expired.
    case replayed
    /// The replay guard is full of unexpired signatures: the request is refused rather than let
    /// through unchecked.
    case replayCacheFull = "replay_cache_full"
    /// The agent's key directory could not be had (refused origin, timeout, error status, garbage).
    case directoryUnavailable = "directory_unavailable"
}
