/// A site where endpoints run.
public struct Site: Sendable, Hashable {
    public var name: String
    public var location: Coordinates
    public var jurisdiction: String?
    public var provider: String?

    public init(name: String, location: Coordinates, jurisdiction: String? = nil, provider: String? = nil) {
        self.name = name
        self.location = location
        self.jurisdiction = jurisdiction
        self.provider = provider
    }
}

/// An upstream inference server as the router sees it. `index` is its position in the fleet and is
/// what per-endpoint state (health, in-flight counts) is keyed by.
public struct Endpoint: Sendable, Equatable {
    public var index: Int
    public var name: String
    public var url: UpstreamURL
    public var siteName: String
    public var engine: EngineKind
    /// Logical model name to the name this endpoint's engine expects.
    public var upstreamModelNames: [String: String]
    public var apiKeyEnv: String?
    public var gpu: GPUSettings?
    public var pricing: PricingSettings?
    public var maxConcurrency: Int?
    /// The endpoint's site's location, kept here so routing reads no dictionary per candidate.
    public var location: Coordinates
    /// Position of the endpoint's site in `Fleet.siteNames`.
    public var siteIndex: Int
    public var performance: EndpointPerformance

    public func serves(_ model: String) -> Bool { upstreamModelNames[model] != nil }
}

/// What the router reads about an endpoint for every request, kept apart from `Endpoint` as plain
/// values (no strings or collections) so that rating thousands of candidates copies no references.
public struct EndpointRoutingFacts: Sendable, Equatable {
    public var performance: EndpointPerformance
    public var siteIndex: Int
    public var location: UnitVector
}

/// A logical model: the name callers use, what else it answers to, where it falls back.
public struct LogicalModel: Sendable, Hashable {
    public var name: String
    public var aliases: [String]
    public var fallbacks: [String]
    public var contextLength: Int?
    /// The routing policy named for this model, if any.
    public var policy: String?
}

/// The fleet the gateway routes over, built from a validated configuration: sites, endpoints and the
/// catalogue of logical models. Immutable; a reload builds a new one.
public struct Fleet: Sendable {
    public let sites: [String: Site]
    /// Per endpoint, in the order of `endpoints`: what routing reads on the hot path.
    public let routingFacts: [EndpointRoutingFacts]
    /// Site names in a fixed order; `Endpoint.siteIndex` points into it.
    public let siteNames: [String]
    public let endpoints: [Endpoint]
    /// Logical models in the order they are listed to callers.
    public let models: [LogicalModel]
    private let modelByName: [String: Int]
    /// For each logical model, the endpoints that serve it.
    private let endpointsByModel: [String: [Int]]

    /// The site an endpoint belongs to when the configuration names none.
    public static let defaultSiteName = "local"

    public init(configuration: ProximaConfiguration) throws(InvalidConfiguration) {
        try configuration.validate()
        let fallbackLocation = configuration.server.location ?? Coordinates(latitude: 0, longitude: 0)
        var sites: [String: Site] = [:]
        for site in configuration.sites {
            sites[site.name] = Site(
                name: site.name, location: .init(latitude: site.latitude, longitude: site.longitude),
                jurisdiction: site.jurisdiction, provider: site.provider)
        }
        var endpoints: [Endpoint] = []
        var endpointsByModel: [String: [Int]] = [:]
        for (index, settings) in configuration.endpoints.enumerated() {
            let siteName = settings.site ?? Self.defaultSiteName
            if sites[siteName] == nil {
                sites[siteName] = Site(name: siteName, location: fallbackLocation)
            }
            var names: [String: String] = [:]
            for model in settings.models where names[model.name] == nil {
                names[model.name] = model.upstream
                endpointsByModel[model.name, default: []].append(index)
            }
            endpoints.append(
                Endpoint(
                    index: index, name: settings.name, url: UpstreamURL(settings.url)!, siteName: siteName,
                    engine: settings.engine, upstreamModelNames: names, apiKeyEnv: settings.apiKeyEnv,
                    gpu: settings.gpu, pricing: settings.pricing, maxConcurrency: settings.maxConcurrency,
                    location: sites[siteName]!.location, siteIndex: 0, performance: EndpointPerformance(settings: settings)))
        }
        var models: [LogicalModel] = configuration.models.map {
            LogicalModel(
                name: $0.name, aliases: $0.aliases, fallbacks: $0.fallbacks, contextLength: $0.contextLength, policy: $0.policy)
        }
        let declared = Set(models.map(\.name))
        for endpoint in configuration.endpoints {
            for model in endpoint.models where !declared.contains(model.name) && !models.contains(where: { $0.name == model.name }) {
                models.append(LogicalModel(name: model.name, aliases: [], fallbacks: [], contextLength: nil, policy: nil))
            }
        }
        var modelByName: [String: Int] = [:]
        for (index, model) in models.enumerated() {
            modelByName[model.name] = index
            for alias in model.aliases { modelByName[alias] = index }
        }
        let siteNames = sites.keys.sorted()
        var siteIndex: [String: Int] = [:]
        for (index, name) in siteNames.enumerated() { siteIndex[name] = index }
        for index in endpoints.indices { endpoints[index].siteIndex = siteIndex[endpoints[index].siteName]! }
        self.sites = sites
        self.routingFacts = endpoints.map {
            EndpointRoutingFacts(performance: $0.performance, siteIndex: $0.siteIndex, location: UnitVector($0.location))
        }
        self.siteNames = siteNames
        self.endpoints = endpoints
        self.models = models
        self.modelByName = modelByName
        self.endpointsByModel = endpointsByModel
    }

    /// The logical model a caller's model name (or alias) stands for.
    public func model(named name: String) -> LogicalModel? {
        modelByName[name].map { models[$0] }
    }

    /// Indices of the endpoints that serve a logical model, in configuration order.
    public func endpointIndices(serving model: String) -> [Int] {
        endpointsByModel[model] ?? []
    }

    public func site(of endpoint: Endpoint) -> Site {
        sites[endpoint.siteName] ?? Site(name: endpoint.siteName, location: .init(latitude: 0, longitude: 0))
    }
}
