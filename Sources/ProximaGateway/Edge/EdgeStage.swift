import Foundation
import HTTPTypes
import ProximaCore

/// The edge stage, right after identify and before the body is read: what kind of caller this is
/// (``CallerClass``: authenticated, signed agent, verified crawler, impersonator, declared bot or
/// unknown with a behavioural score) and what its class's policy lets it do, per tenant
/// (``EdgePolicy``): go on, go on within the class's own rate, be answered only from the cache, or be
/// refused (403). Proofs that need the network (an agent's key directory, reverse DNS) are awaited
/// within their own deadlines and cached; none blocks an event loop.
struct EdgeStage: Sendable {
    let agents: SignedAgentVerifier
    let crawlers: CrawlerVerifier
    let unknown: UnknownCallerScorer
    let limiter: EdgeRateLimiter
    let metrics: GatewayMetrics

    /// What the request may do after the policy.
    enum Admission: Sendable, Equatable {
        case proceed
        /// Only a cached answer may serve it (else 429).
        case cacheOnly
    }

    static let classField = HTTPField.Name("x-proxima-caller-class")!

    /// The class of the caller of `request`, identified as `identity`. A `dryRun` (an explanation)
    /// leaves no trace: no signature is used up and no request is counted for the behavioural score.
    func classify(
        _ request: EdgeRequest, identity: CallerIdentity, settings: EdgeSettings, now: Double, dryRun: Bool = false
    ) async -> CallerClassification {
        if identity.isAuthenticated { return CallerClassification(.authenticated) }
        let started = ContinuousClock.now
        defer { metrics.recordEdgeClassification(ContinuousClock.now - started) }
        if settings.agents.enabled, let found = await agents.classify(request, now: now, consuming: !dryRun) {
            record(found, kind: "signature")
            return found
        }
        if settings.crawlers.enabled, let found = await crawlers.classify(userAgent: request.headers[.userAgent], peer: request.peer, now: now) {
            record(found, kind: "crawler")
            return found
        }
        return unknown.classify(request, keyID: identity.keyID, now: now, counting: !dryRun)
    }

    private func record(_ found: CallerClassification, kind: String) {
        if let reason = found.reason, found.callerClass == .impersonator || found.callerClass == .declaredBot {
            metrics.recordEdgeVerification(kind: kind, reason: reason)
        }
    }

    /// Applies the policy of `classification`'s class in `tenant`: throws 403 for `block`, 429 for
    /// a `rate_limit` class past its rate.
    func admit(
        _ classification: CallerClassification, tenant: String, peer: IPAddress?, settings: EdgeSettings, now: Double
    ) throws(GatewayError) -> Admission {
        let key = classification.policyKey(suspiciousScore: settings.unknown.suspiciousScore)
        let policy = settings.policy(for: key, tenant: tenant)
        switch policy.action {
        case .allow:
            metrics.recordEdgeRequest(key: key, action: "allow")
            return .proceed
        case .cacheOnly:
            metrics.recordEdgeRequest(key: key, action: "cache_only")
            return .cacheOnly
        case .block:
            metrics.recordEdgeRequest(key: key, action: "block")
            metrics.recordRefusal(stage: "edge", reason: "blocked")
            throw GatewayError.callerBlocked(key)
        case .rateLimit:
            // Each caller of the class has its own rate: the proven or claimed name, else the address.
            let subject = classification.name ?? peer?.description ?? "unknown"
            let bucket = "\(tenant)\u{0}\(key.rawValue)\u{0}\(subject)"
            if let wait = limiter.take(bucket, requestsPerMinute: policy.requestsPerMinute ?? 1, now: now) {
                metrics.recordEdgeRequest(key: key, action: "rate_limited")
                metrics.recordRefusal(stage: "edge", reason: "rate_limited")
                throw GatewayError.callerRateLimited(key, retryAfterSeconds: max(1, Int(wait.rounded(.up))))
            }
            metrics.recordEdgeRequest(key: key, action: "rate_limit")
            return .proceed
        }
    }
}

extension GatewayError {
    /// A class of callers the tenant's edge policy blocks.
    static func callerBlocked(_ key: EdgePolicyKey) -> GatewayError {
        .init(
            status: .forbidden, type: "permission_error", code: "caller_blocked",
            message: "Requests from callers of class '\(key.rawValue)' are not accepted here (see the operator's edge policy).")
    }

    /// A class of callers past its own request rate.
    static func callerRateLimited(_ key: EdgePolicyKey, retryAfterSeconds: Int) -> GatewayError {
        var headers = HTTPFields()
        headers[.retryAfter] = String(retryAfterSeconds)
        return .init(
            status: .tooManyRequests, type: "rate_limit_error", code: "rate_limit_exceeded",
            message: "Callers of class '\(key.rawValue)' are limited to a lower request rate here; retry after \(retryAfterSeconds) s.",
            headers: headers)
    }

    /// A `cache_only` caller whose request the cache could not answer.
    static func cacheOnlyMiss(_ key: EdgePolicyKey) -> GatewayError {
        var headers = HTTPFields()
        headers[.retryAfter] = "60"
        return .init(
            status: .tooManyRequests, type: "rate_limit_error", code: "cache_only",
            message: "Callers of class '\(key.rawValue)' are answered only from the cache here, and it holds no answer to this request.",
            headers: headers)
    }
}
