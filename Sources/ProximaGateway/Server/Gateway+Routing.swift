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
        let routeRequest = try RouteStage.routeRequest(inference, model: model, hints: hints, routing: routing)
        let (snapshot, decision, _) = state.route(routeRequest, policy: policy, limit: .max, claimFirst: false, explain: true)
        let expected = policy.assumedOutputTokens(maxOutputTokens: inference.maxOutputTokens)
        return jsonResponse(
            RouteExplanation.json(decision: decision, request: routeRequest, snapshot: snapshot, expectedOutputTokens: expected))
    }
}
