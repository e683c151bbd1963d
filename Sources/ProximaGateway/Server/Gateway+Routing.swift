import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import ProximaCore

extension Gateway {
    /// `POST /v1/route/explain`: routes a normal request body and returns the whole decision, every
    /// candidate with every axis and every exclusion with its reason. Nothing is sent upstream and
    /// nothing is counted in flight.
    func explainRoute(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let trust = state.snapshot.trust
        let caller = try identification.identify(
            request.headers, peer: trust.needsPeerAddress ? RequestPipeline.peerAddress(context) : nil, trust: trust,
            at: Date().timeIntervalSince1970)
        let body = try await request.body.collect(upTo: state.snapshot.configuration.server.maxRequestBodyBytes)
        let operation: InferenceOperation =
            body.withUnsafeReadableBytes { bytes in
                guard let members = try? JSONScanner.topLevelMembers(of: bytes) else { return .chatCompletions }
                if JSONScanner.member("messages", in: members) != nil { return .chatCompletions }
                if JSONScanner.member("prompt", in: members) != nil { return .completions }
                if JSONScanner.member("input", in: members) != nil { return .embeddings }
                return .chatCompletions
            }
        let inference = try InferenceRequest(operation: operation, body: body)
        let routing = state.snapshot
        guard let model = routing.fleet.model(named: inference.model) else { throw GatewayError.modelNotFound(inference.model) }
        try RequestPipeline.authorize(caller.identity, model: model, requested: inference.model)
        let hints = caller.hints
        let policy = try routing.policy(requested: hints.policy, model: model, operation: operation)
        let residency = routing.residencyRule(caller.identity, model: model)
        let routeRequest = try RouteStage.routeRequest(inference, model: model, hints: hints, routing: routing, residency: residency)
        let (snapshot, decision, _) = state.route(routeRequest, policy: policy, limit: .max, claimFirst: false, explain: true)
        let expected = policy.assumedOutputTokens(maxOutputTokens: inference.maxOutputTokens)
        var json = RouteExplanation.json(decision: decision, request: routeRequest, snapshot: snapshot, expectedOutputTokens: expected)
        if let residency, json.hasSuffix("}") {
            json.removeLast()
            json += ",\"residency\":" + RouteExplanation.residencyJSON(residency) + "}"
        }
        if routing.configuration.edge.enabled, json.hasSuffix("}") {
            // The caller's class as the edge stage sees it (its policy is not applied here).
            let edgeRequest = EdgeRequest(
                method: request.method, authority: request.head.authority, path: request.uri.string, scheme: request.head.scheme ?? "http",
                headers: request.headers, peer: trust.client(request.headers, peer: RequestPipeline.peerAddress(context)))
            let now = Date().timeIntervalSince1970
            let found = await pipeline.edge.classify(
                edgeRequest, identity: caller.identity, settings: routing.configuration.edge, now: now, dryRun: true)
            let key = found.policyKey(suspiciousScore: routing.configuration.edge.unknown.suspiciousScore)
            let policy = routing.configuration.edge.policy(for: key, tenant: caller.identity.tenantID)
            json.removeLast()
            json += Self.callerJSON(found, key: key, policy: policy) + "}"
        }
        return jsonResponse(json)
    }

    /// The `caller` member of an explanation: class, name, reason, score and signals, and the policy
    /// its class meets.
    static func callerJSON(_ found: CallerClassification, key: EdgePolicyKey, policy: EdgePolicy) -> String {
        var text = ",\"caller\":{\"class\":\(JSONScanner.quoted(found.callerClass.rawValue)),\"policy_key\":\(JSONScanner.quoted(key.rawValue))"
        text += ",\"policy\":\(JSONScanner.quoted(policy.action.rawValue))"
        if let perMinute = policy.requestsPerMinute { text += ",\"requests_per_minute\":\(perMinute)" }
        if let name = found.name { text += ",\"name\":\(JSONScanner.quoted(name))" }
        if let reason = found.reason { text += ",\"reason\":\(JSONScanner.quoted(reason))" }
        text += ",\"score\":\(RouteExplanation.decimal(found.score, digits: 3))"
        text += ",\"signals\":[\(found.signals.map { JSONScanner.quoted($0) }.joined(separator: ","))]}"
        return text
    }
}
