/// A signature a request carries, read from `Signature-Input` and `Signature` and checked against
/// the Web Bot Auth profile (tag, validity window, required components) but not yet against a key.
public struct SignatureClaim: Sendable {
    public let label: String
    /// The covered components with the signature's parameters (what `@signature-params` covers).
    public let parameters: StructuredFieldInnerList
    public let keyID: String
    public let created: Int64
    public let expires: Int64
    public let nonce: String?
    public let signature: [UInt8]
    /// The origin the `Signature-Agent` header names, when the request has one.
    public let agent: AgentOrigin?

    public var coveredComponents: [String] { parameters.items.compactMap(\.value.string) }
}

/// HTTP Message Signatures (RFC 9421) in the Web Bot Auth profile: Ed25519 signatures with
/// `tag="web-bot-auth"`, `created` and `expires` within a bounded lifetime, `keyid` the JWK
/// thumbprint of a key of the agent's directory, covering `@authority` and, when the request names
/// its agent, `signature-agent`. Pure: the caller finds the agent's keys (configured or fetched)
/// between ``claim(in:now:)`` and ``verify(_:in:keys:)``.
public struct WebBotAuth: Sendable {
    public static let tag = "web-bot-auth"

    /// Signatures whose `expires - created` is longer are refused.
    public var maximumLifetimeSeconds: Double
    /// `created` may be this far in the future, `expires` this far in the past.
    public var clockSkewSeconds: Double

    public init(maximumLifetimeSeconds: Double, clockSkewSeconds: Double) {
        self.maximumLifetimeSeconds = maximumLifetimeSeconds
        self.clockSkewSeconds = clockSkewSeconds
    }

    /// Whether the request carries a signature at all (either header).
    public static func isSigned(_ message: SignedMessage) -> Bool {
        message.fields.contains(where: { $0.name == "signature-input" || $0.name == "signature" })
    }

    /// The request's Web Bot Auth signature, checked for everything that needs no key; nil when it
    /// carries neither `Signature-Input` nor `Signature`.
    public func claim(in message: SignedMessage, now: Double) throws(SignatureFailure) -> SignatureClaim? {
        let inputText = message.fieldValue("signature-input")
        let signatureText = message.fieldValue("signature")
        if inputText == nil, signatureText == nil { return nil }
        guard let inputText, let signatureText,
            let inputs = try? StructuredFields.parseDictionary(inputText),
            let signatures = try? StructuredFields.parseDictionary(signatureText)
        else { throw .malformedSignature }

        // The first signature in the profile; others (a CDN's, another protocol's) are not ours.
        var selected: (label: String, parameters: StructuredFieldInnerList)?
        for entry in inputs.entries {
            guard case .innerList(let list) = entry.member else { throw .malformedSignature }
            if selected == nil, list.parameters["tag"] == .string(Self.tag) { selected = (entry.key, list) }
        }
        guard let (label, parameters) = selected else { throw .wrongTag }
        guard case .item(let signatureItem)? = signatures[label], case .byteSequence(let signature) = signatureItem.value,
            signature.count == 64
        else { throw .malformedSignature }

        if let algorithm = parameters.parameters["alg"] {
            guard algorithm == .string("ed25519") else { throw .unsupportedAlgorithm }
        }
        guard case .string(let keyID)? = parameters.parameters["keyid"], !keyID.isEmpty,
            case .integer(let created)? = parameters.parameters["created"],
            case .integer(let expires)? = parameters.parameters["expires"], expires >= created
        else { throw .malformedSignature }
        var nonce: String?
        if let value = parameters.parameters["nonce"] {
            guard case .string(let text) = value else { throw .malformedSignature }
            nonce = text
        }
        guard parameters.items.allSatisfy({ $0.value.string != nil }) else { throw .malformedSignature }

        guard Double(expires - created) <= maximumLifetimeSeconds else { throw .lifetimeTooLong }
        guard Double(created) <= now + clockSkewSeconds else { throw .notYetValid }
        guard Double(expires) + clockSkewSeconds >= now else { throw .expired }

        let covered = parameters.items.compactMap(\.value.string)
        guard covered.contains("@authority") else { throw .missingComponent }
        var agent: AgentOrigin?
        if let agentText = message.fieldValue("signature-agent") {
            guard covered.contains("signature-agent") else { throw .missingComponent }
            guard let origin = Self.agentOrigin(agentText, label: label) else { throw .malformedSignature }
            agent = origin
        }
        return SignatureClaim(
            label: label, parameters: parameters, keyID: keyID, created: created, expires: expires, nonce: nonce, signature: signature,
            agent: agent)
    }

    /// Checks the claim's signature over `message` with the directory's key named by its `keyid`;
    /// returns that key.
    @discardableResult
    public func verify(_ claim: SignatureClaim, in message: SignedMessage, keys: AgentKeyDirectory) throws(SignatureFailure) -> AgentPublicKey {
        guard let key = keys.key(thumbprint: claim.keyID) else { throw .unknownKey }
        let base = try SignatureBase.build(for: claim.parameters, over: message)
        guard key.isValidSignature(claim.signature, for: base) else { throw .badSignature }
        return key
    }

    /// Until when a verified claim must be remembered to refuse its replay: as long as it could
    /// still be accepted.
    public func rememberUntil(_ claim: SignatureClaim) -> Double {
        Double(claim.expires) + clockSkewSeconds
    }

    /// The `Signature-Agent` value as an origin: a structured string (`"https://agent.example"`),
    /// a dictionary naming one per signature label (`sig1="https://agent.example"`), or a bare URL.
    static func agentOrigin(_ text: String, label: String) -> AgentOrigin? {
        if let item = try? StructuredFields.parseItem(text) {
            switch item.value {
            case .string(let url), .token(let url): return AgentOrigin(url)
            default: return nil
            }
        }
        if let dictionary = try? StructuredFields.parseDictionary(text) {
            guard case .item(let item)? = dictionary[label], case .string(let url) = item.value else { return nil }
            return AgentOrigin(url)
        }
        return AgentOrigin(SignedMessage.trimmed(text))
    }
}
