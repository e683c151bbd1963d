import Synchronization

/// Round-robin among healthy endpoints serving the model; its own endpoints before fallbacks.
/// Endpoints cooling down after a failure go last, so a request is still tried somewhere when every
/// endpoint recently failed. The baseline the five-axis router replaces.
public final class RotationSelector: EndpointSelector {
    private let counter = Atomic<Int>(0)

    public init() {}

    public func plan(for request: RouteRequest, in fleet: Fleet, health: EndpointHealthBoard, now: Double) -> RoutePlan {
        let serving = fleet.servingCandidates(for: request.model)
        guard !serving.isEmpty else {
            return RoutePlan(candidates: [], exclusions: [], policy: "round-robin")
        }
        let turn = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        var primary: [RouteCandidate] = []
        var fallback: [RouteCandidate] = []
        var cooling: [RouteCandidate] = []
        var exclusions: [RouteExclusion] = []
        for candidate in serving {
            if !health.isHealthy(candidate.endpoint, at: now) {
                cooling.append(candidate)
                exclusions.append(.init(endpoint: candidate.endpoint, reason: "cooling down after a failure"))
            } else if candidate.isFallback {
                fallback.append(candidate)
            } else {
                primary.append(candidate)
            }
        }
        let ordered = rotated(primary, by: turn) + rotated(fallback, by: turn) + rotated(cooling, by: turn)
        return RoutePlan(candidates: ordered, exclusions: exclusions, policy: "round-robin")
    }

    private func rotated(_ list: [RouteCandidate], by turn: Int) -> [RouteCandidate] {
        guard list.count > 1 else { return list }
        let start = ((turn % list.count) + list.count) % list.count
        return Array(list[start...] + list[..<start])
    }
}
