import Hummingbird
import HTTPTypes
import NIOCore
import ProximaCore

extension Gateway {
    /// A caller location from `x-proxima-client-location`: `latitude,longitude`, or the name of a
    /// site or of a region in `routing.regions`.
    static func parseLocation(_ text: String, fleet: Fleet, regions: [String: Coordinates]) throws(GatewayError) -> Coordinates {
        let trimmed = text[...].trimmingSpaces()
        if let region = regions[String(trimmed)] { return region }
        if let site = fleet.sites[String(trimmed)] { return site.location }
        let parts = trimmed.split(separator: ",", omittingEmptySubsequences: false)
        if parts.count == 2, let latitude = Double(parts[0].trimmingSpaces()), let longitude = Double(parts[1].trimmingSpaces()),
            (-90...90).contains(latitude), (-180...180).contains(longitude)
        {
            return Coordinates(latitude: latitude, longitude: longitude)
        }
        throw .invalidRequest(
            "x-proxima-client-location must be 'latitude,longitude' or a known region or site name; got '\(text)'",
            param: "x-proxima-client-location")
    }

    /// The error for a request no endpoint can take: 400 when it is too long for every endpoint's
    /// context, else 503 naming why each endpoint was ruled out.
    static func unroutable(_ decision: RouteDecision, model: LogicalModel, fleet: Fleet) -> GatewayError {
        if decision.onlyContextTooLong, let reason = decision.exclusions.first(where: { $0.kind == .contextTooLong })?.reason {
            return GatewayError(
                status: .badRequest, type: "invalid_request_error", code: "context_length_exceeded", param: "messages",
                message: "The request does not fit model '\(model.name)': \(reason).")
        }
        if decision.exclusions.isEmpty { return .noCapacity("No endpoint serves model '\(model.name)'.") }
        let reasons = decision.exclusions.prefix(8).map { "\(fleet.endpoints[$0.endpoint].name): \($0.reason)" }
        let more = decision.exclusions.count > 8 ? "; and \(decision.exclusions.count - 8) more" : ""
        return .noCapacity("No endpoint can take a request for model '\(model.name)' now (\(reasons.joined(separator: "; "))\(more)).")
    }

    /// `POST /v1/route/explain`: routes a normal request body and returns the whole decision, every
    /// candidate with every axis and every exclusion with its reason. Nothing is sent upstream and
    /// nothing is counted in flight.
    func explainRoute(_ request: Request) async throws -> Response {
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
        let policy = try routing.policy(requested: request.headers[.proximaPolicy], model: model, operation: operation)
        let routeRequest = try makeRouteRequest(inference, model: model, request: request, routing: routing)
        let (snapshot, decision, _) = state.route(routeRequest, policy: policy, limit: .max, claimFirst: false, explain: true)
        let expected = policy.assumedOutputTokens(maxOutputTokens: inference.maxOutputTokens)
        return jsonResponse(
            RouteExplanation.json(decision: decision, request: routeRequest, snapshot: snapshot, expectedOutputTokens: expected))
    }

    /// What the router needs from a checked request.
    func makeRouteRequest(
        _ inference: InferenceRequest, model: LogicalModel, request: Request, routing: RoutingSnapshot
    ) throws(GatewayError) -> RouteRequest {
        var location: Coordinates?
        if let header = request.headers[.proximaClientLocation] {
            guard header.utf8.count <= 64 else {
                throw .invalidRequest("x-proxima-client-location is too long", param: "x-proxima-client-location")
            }
            location = try Self.parseLocation(header, fleet: routing.fleet, regions: routing.configuration.routing.regions)
        }
        return RouteRequest(
            model: model, stream: inference.stream, promptTokens: inference.estimatedPromptTokens,
            maxOutputTokens: inference.maxOutputTokens, prefixBlocks: inference.prefixBlockHashes(),
            prefixBlockTokens: InferenceRequest.prefixBlockBytes / 4, clientLocation: location)
    }
}
