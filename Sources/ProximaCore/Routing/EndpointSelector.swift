/// What the selector needs to know about a request to place it.
public struct RouteRequest: Sendable {
    /// The logical model asked for (already resolved from an alias).
    public var model: LogicalModel
    public var stream: Bool

    public init(model: LogicalModel, stream: Bool) {
        self.model = model
        self.stream = stream
    }
}

/// One endpoint to try, with the model name it must be sent.
public struct RouteCandidate: Sendable, Equatable {
    public var endpoint: Int
    public var upstreamModel: String
    /// The logical model this candidate serves; differs from the request's when it is a fallback.
    public var servedModel: String
    public var isFallback: Bool
}

/// An endpoint that was not considered, and why.
public struct RouteExclusion: Sendable, Equatable {
    public var endpoint: Int
    public var reason: String
}

/// The outcome of routing one request: endpoints to try in order, and those left out.
public struct RoutePlan: Sendable, Equatable {
    public var candidates: [RouteCandidate]
    public var exclusions: [RouteExclusion]
    public var policy: String

    public init(candidates: [RouteCandidate], exclusions: [RouteExclusion], policy: String) {
        self.candidates = candidates
        self.exclusions = exclusions
        self.policy = policy
    }
}

/// Picks the endpoints a request is tried on, best first. The gateway tries them in order, never the
/// same one twice, until one answers. Implementations are pure given their inputs and the time.
public protocol EndpointSelector: Sendable {
    func plan(for request: RouteRequest, in fleet: Fleet, health: EndpointHealthBoard, now: Double) -> RoutePlan
}

extension Fleet {
    /// The endpoints that can serve a request before any preference is applied: the model's own
    /// endpoints first, then those of each fallback in order.
    public func servingCandidates(for model: LogicalModel) -> [RouteCandidate] {
        var result: [RouteCandidate] = []
        var seen = Set<Int>()
        for (position, name) in ([model.name] + model.fallbacks).enumerated() {
            for index in endpointIndices(serving: name) where seen.insert(index).inserted {
                let upstream = endpoints[index].upstreamModelNames[name] ?? name
                result.append(.init(endpoint: index, upstreamModel: upstream, servedModel: name, isFallback: position > 0))
            }
        }
        return result
    }
}
