/// The verdict on one request over all its scopes (key, principal, tenant): admitted only if every
/// scope admits. A refusal names the most restrictive scope's reason (see
/// ``AdmissionRefusal/isMoreRestrictive(than:)``); the headers show, for requests and for tokens
/// separately, the scope closest to exhaustion (the smallest share of its limit left, then the
/// longer reset).
public struct AdmissionDecision: Sendable, Equatable {
    public var refusal: AdmissionRefusal?
    /// OpenAI's rate-limit headers for the answer, with `Retry-After` on a refusal that a retry
    /// can overcome. Empty when no scope has a rate limit.
    public var headers: RateLimitHeaders
    /// The smallest `max_tokens` any scope allows: the gateway applies it to a request that sets
    /// none.
    public var maxTokensCap: Int?

    public var isAdmitted: Bool { refusal == nil }

    /// Combines the checks of the scopes a request has; a missing scope (no such principal, or no
    /// limits on it) is `nil`.
    public init(key: ScopeCheck?, principal: ScopeCheck?, tenant: ScopeCheck?) {
        refusal = nil
        maxTokensCap = nil
        headers = RateLimitHeaders()
        // Refusals first: the headers show the state after the charge only when it is made.
        // (Each scope is taken in turn rather than through an array, which would allocate.)
        considerRefusal(of: key)
        considerRefusal(of: principal)
        considerRefusal(of: tenant)
        considerLimits(of: key)
        considerLimits(of: principal)
        considerLimits(of: tenant)
        headers.retryAfterSeconds = refusal?.retryAfterSeconds
    }

    private mutating func considerRefusal(of check: ScopeCheck?) {
        guard let candidate = check?.refusal else { return }
        if let current = refusal, !candidate.isMoreRestrictive(than: current) { return }
        refusal = candidate
    }

    private mutating func considerLimits(of check: ScopeCheck?) {
        guard let check else { return }
        let admitted = refusal == nil
        if let cap = check.maxTokensCap { maxTokensCap = min(maxTokensCap ?? cap, cap) }
        if let answer = check.requests {
            headers.requests = Self.closerToExhaustion(headers.requests, admitted ? answer.afterAdmission : answer.current)
        }
        if let answer = check.tokens {
            headers.tokens = Self.closerToExhaustion(headers.tokens, admitted ? answer.afterAdmission : answer.current)
        }
    }

    private static func closerToExhaustion(_ chosen: RateLimitSnapshot?, _ candidate: RateLimitSnapshot) -> RateLimitSnapshot {
        guard let chosen else { return candidate }
        if candidate.remainingShare != chosen.remainingShare {
            return candidate.remainingShare < chosen.remainingShare ? candidate : chosen
        }
        return candidate.resetSeconds > chosen.resetSeconds ? candidate : chosen
    }

    /// Checks a request against each scope it has and, if all admit, charges each: the whole
    /// admission step, to run under the lock that guards the allowances. Returns the decision and,
    /// when admitted, the ticket to finish on each scope when the answer ends.
    public static func admit(
        _ request: AdmissionRequest, at: Double, key: inout ScopeAllowance?, principal: inout ScopeAllowance?,
        tenant: inout ScopeAllowance?
    ) -> (decision: AdmissionDecision, ticket: AdmissionTicket?) {
        let keyCheck = key?.check(request, at: at)
        let principalCheck = principal?.check(request, at: at)
        let tenantCheck = tenant?.check(request, at: at)
        let decision = AdmissionDecision(key: keyCheck, principal: principalCheck, tenant: tenantCheck)
        guard decision.isAdmitted else { return (decision, nil) }
        var ticket = AdmissionTicket(estimatedTokens: max(request.estimatedTokens, 0), admittedAt: at)
        if let keyCheck { ticket.keyTokens = key?.commit(keyCheck) }
        if let principalCheck { ticket.principalTokens = principal?.commit(principalCheck) }
        if let tenantCheck { ticket.tenantTokens = tenant?.commit(tenantCheck) }
        return (decision, ticket)
    }
}
