import Crypto

/// Signs a request in the Web Bot Auth profile: the other side of ``WebBotAuth``, for tests,
/// benchmarks and an agent's own outbound requests.
public struct WebBotAuthSigner: Sendable {
    public let key: Curve25519.Signing.PrivateKey
    public let publicKey: AgentPublicKey

    public init(key: Curve25519.Signing.PrivateKey) {
        self.key = key
        self.publicKey = AgentPublicKey(key: key.publicKey)
    }

    /// The `Signature-Input` and `Signature` values signing `message` over `components`; add them
    /// to the request (and, when `components` covers `signature-agent`, the message must already
    /// carry that header). Fails as the verifier would when a component is absent.
    public func sign(
        _ message: SignedMessage, components: [String] = ["@authority", "signature-agent"], created: Int64, expires: Int64,
        nonce: String? = nil, label: String = "sig1", tag: String = WebBotAuth.tag, keyID: String? = nil
    ) throws(SignatureFailure) -> (signatureInput: String, signature: String) {
        var parameters = StructuredFieldParameters()
        parameters.set("created", .integer(created))
        parameters.set("expires", .integer(expires))
        parameters.set("keyid", .string(keyID ?? publicKey.thumbprint))
        if let nonce { parameters.set("nonce", .string(nonce)) }
        parameters.set("tag", .string(tag))
        let list = StructuredFieldInnerList(components.map { StructuredFieldItem(.string($0)) }, parameters: parameters)
        let base = try SignatureBase.build(for: list, over: message)
        guard let signature = try? key.signature(for: Array(base.utf8)) else { throw .badSignature }
        return (label + "=" + list.serialized, label + "=:" + Base64.encode(Array(signature)) + ":")
    }
}
