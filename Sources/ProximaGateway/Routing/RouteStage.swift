import HTTPTypes
import Hummingbird
import NIOCore
import ProximaCore

/// What a request says about how it wants to be routed: the policy it names and where its caller
/// is. The identify stage decides which of these the caller may set (see ``SteeringTrust``).
struct RouteHints: Sendable, Equatable {
    /// `x-proxima-policy`, when the caller may choose the policy.
    var policy: String?
    /// `x-proxima-client-location`, when the caller may say where it is.
    var location: String?
    /// Where the caller is when it does not say: from the network-to-location table.
    var networkLocation: Coordinates?

    init(policy: String? = nil, location: String? = nil, networkLocation: Coordinates? = nil) {
        self.policy = policy
        self.location = location
        self.networkLocation = networkLocation
    }
}

/// The route stage: which endpoints may serve a checked request, in which order. It resolves the
/// model (404), picks the policy (400 for an unknown name), asks the router (503 naming every
/// exclusion when none can serve, 400 when the prompt fits no context) and claims the first
/// candidate in the same critical section as the decision.
struct RouteStage: Sendable {
    let state: RoutingState
    let metrics: GatewayMetrics

    /// The logical model a request names (or an alias of it), under the current configuration.
    func resolve(_ name: String) throws(GatewayError) -> (RoutingSnapshot, LogicalModel) {
        let routing = state.snapshot
        guard let model = routing.fleet.model(named: name) else { throw GatewayError.modelNotFound(name) }
        return (routing, model)
    }

    /// Routes the request and claims its first candidate; returns what the proxy needs.
    func route(
        _ inference: InferenceRequest, model: LogicalModel, routing: RoutingSnapshot, hints: RouteHints, account: RequestAccount,
        residency: ResidencyRule? = nil
    ) throws(GatewayError) -> (InferenceProxy.Exchange, EndpointClaim?) {
        let policy = try routing.policy(requested: hints.policy, model: model, operation: inference.operation)
        let routeRequest = try Self.routeRequest(inference, model: model, hints: hints, routing: routing, residency: residency)
        let (snapshot, decision, claim) = state.route(routeRequest, policy: policy, limit: routing.proxy.maxAttempts + 1)
        account.describe(route: decision, fleet: snapshot.fleet)
        metrics.recordRouteDecision(
            policy: decision.policy, endpoint: decision.candidates.first.map { snapshot.fleet.endpoints[$0.endpoint].name } ?? "none",
            exclusions: decision.exclusions)
        guard !decision.candidates.isEmpty else {
            throw Self.unroutable(decision, model: model, fleet: snapshot.fleet, residency: residency)
        }
        var exchange = InferenceProxy.Exchange(
            request: inference, model: model, decision: decision, routing: snapshot, account: account, requestID: account.requestID,
            arrival: account.arrival, clientLocation: routeRequest.clientLocation.map { "\($0.latitude),\($0.longitude)" })
        exchange.prefixBlocks = routeRequest.prefixBlocks
        exchange.residency = residency
        return (exchange, claim)
    }

    /// What the router needs from a checked request. The residency rule is a hard constraint: the
    /// caller's location (its own or its network's) only moves it among the endpoints the rule allows.
    static func routeRequest(
        _ inference: InferenceRequest, model: LogicalModel, hints: RouteHints, routing: RoutingSnapshot,
        residency: ResidencyRule? = nil
    ) throws(GatewayError) -> RouteRequest {
        var location = hints.networkLocation
        if let header = hints.location {
            guard header.utf8.count <= 64 else {
                throw .invalidRequest("x-proxima-client-location is too long", param: "x-proxima-client-location")
            }
            location = try parseLocation(header, fleet: routing.fleet, regions: routing.configuration.routing.regions)
        }
        return RouteRequest(
            model: model, stream: inference.stream, promptTokens: inference.estimatedPromptTokens,
            maxOutputTokens: inference.maxOutputTokens, prefixBlocks: inference.prefixBlockHashes(),
            prefixBlockTokens: InferenceRequest.prefixBlockBytes / 4, clientLocation: location,
            constraints: residency.map { [ResidencyConstraint(rule: $0)] } ?? [])
    }

    /// A caller location from `x-proxima-client-location`: `latitude,longitude`, or the name of a
    /// site or of a region in `routing.regions`.
    static func parseLocation(_ text: String, fleet: Fleet, regions: [String: Coordinates]) throws(GatewayError) -> Coordinates {
        let trimmed = text[...].trimmingSpaces()
        if let region = regions[String(trimmed)] { return region }
        if let site = fleet.sites[String(trimmed)] { return site.location }
        if let coordinates = Coordinates(parsing: String(trimmed)) { return coordinates }
        throw .invalidRequest(
            "x-proxima-client-location must be 'latitude,longitude' or a known region or site name; got '\(text)'",
            param: "x-proxima-client-location")
    }

    /// The error for a request no endpoint can take: 400 when it is too long for every endpoint's
    /// context, 503 `residency_unavailable` when its residency rule ruled endpoints out and none of
    /// the allowed ones can take it (it is never moved outside the rule), else 503 naming why each
    /// endpoint was ruled out.
    static func unroutable(_ decision: RouteDecision, model: LogicalModel, fleet: Fleet, residency: ResidencyRule? = nil) -> GatewayError {
        if decision.onlyContextTooLong, let reason = decision.exclusions.first(where: { $0.kind == .contextTooLong })?.reason {
            return GatewayError(
                status: .badRequest, type: "invalid_request_error", code: "context_length_exceeded", param: "messages",
                message: "The request does not fit model '\(model.name)': \(reason).")
        }
        if decision.exclusions.isEmpty { return .noCapacity("No endpoint serves model '\(model.name)'.") }
        let outside = decision.exclusions.filter { $0.kind == .residency }
        if let residency, !outside.isEmpty {
            let inside = decision.exclusions.filter { $0.kind != .residency && $0.kind != .modelNotServed }
            let rule = residency.named.isEmpty ? residency.canonicalKey : residency.named.joined(separator: " and ")
            var message = "No endpoint allowed by the residency rule (\(rule)) can take a request for model '\(model.name)'"
            message += inside.isEmpty
                ? ": every endpoint serving it is outside the rule (\(outside.count) excluded for residency)."
                : " now: \(inside.prefix(8).map { "\(fleet.endpoints[$0.endpoint].name): \($0.reason)" }.joined(separator: "; ")) (and \(outside.count) excluded for residency)."
            return GatewayError(status: .serviceUnavailable, type: "server_error", code: "residency_unavailable", message: message)
        }
        let reasons = decision.exclusions.prefix(8).map { "\(fleet.endpoints[$0.endpoint].name): \($0.reason)" }
        let more = decision.exclusions.count > 8 ? "; and \(decision.exclusions.count - 8) more" : ""
        return .noCapacity("No endpoint can take a request for model '\(model.name)' now (\(reasons.joined(separator: "; "))\(more)).")
    }
}
