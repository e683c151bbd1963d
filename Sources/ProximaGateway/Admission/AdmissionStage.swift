import HTTPTypes
import ProximaCore

/// The admit stage: may this caller run this request now. The request's token estimate (its prompt
/// plus the output it may produce) is checked against the caller's key, principal and tenant
/// limits (``AdmissionLedger``) and charged to each when all admit. A refusal answers 429 with
/// `Retry-After` (400 for a `max_tokens` above a scope's maximum, 429 `insufficient_quota` for a
/// spent budget); an admitted request carries the rate-limit headers on its answer and a pass that
/// the account stage settles with the real usage.
struct AdmissionStage: Sendable {
    let ledger: any AdmissionLedger
    let metrics: GatewayMetrics

    /// What admission decided for an admitted request.
    struct Admission: Sendable {
        /// To settle when the answer ends; nil when no scope of the caller is limited.
        var pass: AdmissionPass?
        /// OpenAI's rate-limit headers for every answer to this request.
        var headers: RateLimitHeaders
        /// The smallest `max_tokens` the caller's scopes allow, for a request that sets none.
        var maxTokensCap: Int?

        static let unlimited = Admission(pass: nil, headers: RateLimitHeaders(), maxTokensCap: nil)
    }

    /// Admits `inference` for `caller` at `now` (Unix seconds), or throws the refusal.
    /// `expectedOutputTokens` is the output assumed for a request that sets no `max_tokens`.
    func admit(_ inference: InferenceRequest, caller: CallerIdentity, expectedOutputTokens: Int, at now: Double) async throws(GatewayError)
        -> Admission
    {
        guard caller.isLimited else { return .unlimited }
        let request = Self.request(inference, caller: caller, expectedOutputTokens: expectedOutputTokens)
        let (decision, pass) = try await ledger.admit(request, caller: caller, at: now)
        return try conclude(decision, pass: pass)
    }

    /// What admission charges for `inference`: its token estimate and its `max_tokens`.
    static func request(_ inference: InferenceRequest, caller: CallerIdentity, expectedOutputTokens: Int) -> AdmissionRequest {
        var cap = caller.keyID == nil ? nil : caller.keyLimits.maxTokens
        if let limit = caller.principalLimits.maxTokens { cap = min(cap ?? limit, limit) }
        if let limit = caller.tenantLimits.maxTokens { cap = min(cap ?? limit, limit) }
        let output = inference.operation == .embeddings ? 0 : inference.maxOutputTokens ?? cap ?? expectedOutputTokens
        let (estimate, overflow) = inference.estimatedPromptTokens.addingReportingOverflow(max(output, 0))
        return AdmissionRequest(estimatedTokens: overflow ? .max : estimate, maxTokens: inference.maxOutputTokens)
    }

    /// The admission of a decided request, or its refusal thrown.
    func conclude(_ decision: AdmissionDecision, pass: AdmissionPass?) throws(GatewayError) -> Admission {
        if let refusal = decision.refusal {
            metrics.recordRefusal(stage: "admit", reason: Self.reason(refusal.reason))
            throw GatewayError(
                status: HTTPResponse.Status(code: refusal.httpStatus), type: refusal.type, code: refusal.code, param: refusal.param,
                message: refusal.message, headers: Self.fields(decision.headers))
        }
        return Admission(pass: pass, headers: decision.headers, maxTokensCap: decision.maxTokensCap)
    }

    /// The header fields of `headers`.
    static func fields(_ headers: RateLimitHeaders) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers.fields {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        return fields
    }

    static func reason(_ reason: AdmissionRefusal.Reason) -> String {
        switch reason {
        case .requests: "requests"
        case .tokens, .requestTooLarge: "tokens"
        case .concurrency: "concurrency"
        case .maxTokens: "max_tokens"
        case .budget: "budget"
        }
    }
}

extension CallerIdentity {
    /// Whether any scope of the caller has a limit (a key's limits count only with a key).
    var isLimited: Bool {
        !(principalLimits.isUnlimited && tenantLimits.isUnlimited && (keyID == nil || keyLimits.isUnlimited))
    }
}
