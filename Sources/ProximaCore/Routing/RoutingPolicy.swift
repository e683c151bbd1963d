/// A policy ready to route with: a kind and the parameters it uses, from the configuration.
public struct RoutingPolicy: Sendable, Equatable {
    public var name: String
    public var kind: PolicyKind
    public var weights: AxisWeights
    public var ttftTargetSeconds: Double
    public var centralSite: String?
    public var tieTolerance: Double
    /// Share of the TTFT target the `slo` policy keeps in reserve for prediction error.
    public var sloMargin: Double
    /// Output tokens assumed for requests without `max_tokens`.
    public var expectedOutputTokens: Int

    public init(
        name: String, kind: PolicyKind, weights: AxisWeights = .init(), ttftTargetSeconds: Double = 1.0,
        centralSite: String? = nil, tieTolerance: Double = 0.05, sloMargin: Double = 0.2, expectedOutputTokens: Int = 256
    ) {
        self.name = name
        self.kind = kind
        self.weights = weights
        self.ttftTargetSeconds = ttftTargetSeconds
        self.centralSite = centralSite
        self.tieTolerance = tieTolerance
        self.sloMargin = sloMargin
        self.expectedOutputTokens = expectedOutputTokens
    }

    /// The policy a name stands for: a named policy of the configuration, else a built-in kind with
    /// the configuration's shared parameters; nil when the name is neither.
    public static func named(_ name: String, in settings: RoutingSettings) -> RoutingPolicy? {
        let named = settings.policies[name]
        guard let kind = named?.kind ?? PolicyKind(rawValue: name) else { return nil }
        return RoutingPolicy(
            name: name, kind: kind, weights: named?.weights ?? settings.weights,
            ttftTargetSeconds: named?.ttftTargetSeconds ?? settings.ttftTargetSeconds,
            centralSite: named?.centralSite ?? settings.centralSite, tieTolerance: settings.tieTolerance,
            sloMargin: settings.sloMargin,
            expectedOutputTokens: settings.expectedOutputTokens)
    }

    /// Output tokens the router assumes for a request: its `max_tokens` up to four times the
    /// expected output, or the expected output when it sets none. Saturates instead of trapping.
    public func assumedOutputTokens(maxOutputTokens: Int?) -> Int {
        guard let maxOutputTokens else { return expectedOutputTokens }
        let (cap, overflow) = expectedOutputTokens.multipliedReportingOverflow(by: 4)
        return Swift.min(Swift.max(0, maxOutputTokens), overflow ? Int.max : cap)
    }

    /// Every policy name a request may use: the built-in kinds and the configuration's named ones.
    public static func names(in settings: RoutingSettings) -> [String] {
        Array(Set(PolicyKind.allCases.map(\.rawValue)).union(settings.policies.keys)).sorted()
    }
}
