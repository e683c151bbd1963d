/// The whole configuration of a Proxima process: server settings, the fleet (sites and endpoints)
/// and the logical models callers ask for. Loaded from YAML by the gateway; every field has a default
/// so that a file only states what differs.
public struct ProximaConfiguration: Codable, Sendable, Equatable {
    public var server: ServerSettings
    public var sites: [SiteSettings]
    public var endpoints: [EndpointSettings]
    public var models: [ModelSettings]
    public var logging: LoggingSettings
    public var routing: RoutingSettings
    public var admin: AdminSettings
    /// Who may call and how they prove it.
    public var auth: AuthSettings
    /// The default limits of keys, principals and tenants (see docs/security.md).
    public var limits: AdmissionSettings
    /// Where Proxima keeps its files (the SQLite store by default); relative to the working
    /// directory.
    public var dataDirectory: String
    /// Where identities, admin changes and shared counters are kept.
    public var store: StoreSettings
    /// The response cache (off unless enabled).
    public var cache: CacheSettings
    /// Caller classes and their policies (docs/security.md).
    public var edge: EdgeSettings
    /// Content guards: prompt injection, secrets and personal data (docs/security.md).
    public var guards: GuardSettings
    /// Where each tenant's data may be processed (docs/governance.md).
    public var residency: ResidencySettings
    /// The tamper-evident audit trail (docs/governance.md).
    public var audit: AuditSettings

    /// The data directory when the file does not name one.
    public static let defaultDataDirectory = "data"

    public init(
        server: ServerSettings = .init(),
        sites: [SiteSettings] = [],
        endpoints: [EndpointSettings] = [],
        models: [ModelSettings] = [],
        logging: LoggingSettings = .init(),
        routing: RoutingSettings = .init(),
        admin: AdminSettings = .init(),
        auth: AuthSettings = .init(),
        limits: AdmissionSettings = .init(),
        dataDirectory: String = ProximaConfiguration.defaultDataDirectory,
        store: StoreSettings = .init(),
        cache: CacheSettings = .init(),
        edge: EdgeSettings = .init(),
        guards: GuardSettings = .init(),
        residency: ResidencySettings = .init(),
        audit: AuditSettings = .init()
    ) {
        self.server = server
        self.sites = sites
        self.endpoints = endpoints
        self.models = models
        self.logging = logging
        self.routing = routing
        self.admin = admin
        self.auth = auth
        self.limits = limits
        self.dataDirectory = dataDirectory
        self.store = store
        self.cache = cache
        self.edge = edge
        self.guards = guards
        self.residency = residency
        self.audit = audit
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case server, sites, endpoints, models, logging, routing, admin, auth, limits
        case dataDirectory = "data_dir", store, cache, edge, guards, residency, audit
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        server = try c.decodeIfPresent(ServerSettings.self, forKey: .server) ?? .init()
        sites = try c.decodeIfPresent([SiteSettings].self, forKey: .sites) ?? []
        endpoints = try c.decodeIfPresent([EndpointSettings].self, forKey: .endpoints) ?? []
        models = try c.decodeIfPresent([ModelSettings].self, forKey: .models) ?? []
        logging = try c.decodeIfPresent(LoggingSettings.self, forKey: .logging) ?? .init()
        routing = try c.decodeIfPresent(RoutingSettings.self, forKey: .routing) ?? .init()
        admin = try c.decodeIfPresent(AdminSettings.self, forKey: .admin) ?? .init()
        auth = try c.decodeIfPresent(AuthSettings.self, forKey: .auth) ?? .init()
        limits = try c.decodeIfPresent(AdmissionSettings.self, forKey: .limits) ?? .init()
        dataDirectory = try c.decodeIfPresent(String.self, forKey: .dataDirectory) ?? Self.defaultDataDirectory
        store = try c.decodeIfPresent(StoreSettings.self, forKey: .store) ?? .init()
        cache = try c.decodeIfPresent(CacheSettings.self, forKey: .cache) ?? .init()
        edge = try c.decodeIfPresent(EdgeSettings.self, forKey: .edge) ?? .init()
        guards = try c.decodeIfPresent(GuardSettings.self, forKey: .guards) ?? .init()
        residency = try c.decodeIfPresent(ResidencySettings.self, forKey: .residency) ?? .init()
        audit = try c.decodeIfPresent(AuditSettings.self, forKey: .audit) ?? .init()
    }
}

/// How the HTTP server listens and how long it waits on upstreams.
public struct ServerSettings: Codable, Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Largest request body accepted, in bytes; a larger one is refused with 413.
    public var maxRequestBodyBytes: Int
    /// Largest non-streamed upstream response accepted, in bytes.
    public var maxResponseBodyBytes: Int
    public var timeouts: TimeoutSettings
    /// Upper bound of HTTP/1 connections kept to one upstream host; each live stream holds one.
    public var maxConnectionsPerUpstream: Int
    /// How many endpoints one request may try before the first byte reaches the caller.
    public var maxAttempts: Int
    /// Where this gateway stands, for callers that do not say where they are.
    public var location: Coordinates?
    /// Which HTTP client talks to plain-HTTP upstreams (HTTPS always goes through AsyncHTTPClient).
    public var upstreamClient: UpstreamClientKind
    /// Deadlines and limits for the callers' side: connections, heads, bodies.
    public var callers: CallerSettings

    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        maxRequestBodyBytes: Int = 4 * 1024 * 1024,
        maxResponseBodyBytes: Int = 32 * 1024 * 1024,
        timeouts: TimeoutSettings = .init(),
        maxConnectionsPerUpstream: Int = 16_384,
        maxAttempts: Int = 3,
        location: Coordinates? = nil,
        upstreamClient: UpstreamClientKind = .pooled,
        callers: CallerSettings = .init()
    ) {
        self.host = host
        self.port = port
        self.maxRequestBodyBytes = maxRequestBodyBytes
        self.maxResponseBodyBytes = maxResponseBodyBytes
        self.timeouts = timeouts
        self.maxConnectionsPerUpstream = maxConnectionsPerUpstream
        self.maxAttempts = maxAttempts
        self.location = location
        self.upstreamClient = upstreamClient
        self.callers = callers
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case host, port, maxRequestBodyBytes = "max_request_body_bytes"
        case maxResponseBodyBytes = "max_response_body_bytes"
        case timeouts, maxConnectionsPerUpstream = "max_connections_per_upstream"
        case maxAttempts = "max_attempts"
        case location
        case upstreamClient = "upstream_client"
        case callers
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ServerSettings()
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? d.host
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? d.port
        maxRequestBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxRequestBodyBytes) ?? d.maxRequestBodyBytes
        maxResponseBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxResponseBodyBytes) ?? d.maxResponseBodyBytes
        timeouts = try c.decodeIfPresent(TimeoutSettings.self, forKey: .timeouts) ?? d.timeouts
        maxConnectionsPerUpstream =
            try c.decodeIfPresent(Int.self, forKey: .maxConnectionsPerUpstream) ?? d.maxConnectionsPerUpstream
        maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? d.maxAttempts
        location = try c.decodeIfPresent(Coordinates.self, forKey: .location)
        upstreamClient = try c.decodeIfPresent(UpstreamClientKind.self, forKey: .upstreamClient) ?? d.upstreamClient
        callers = try c.decodeIfPresent(CallerSettings.self, forKey: .callers) ?? d.callers
    }
}

/// The HTTP client for plain-HTTP upstreams.
public enum UpstreamClientKind: String, Codable, Sendable, CaseIterable {
    /// The gateway's own pooled HTTP/1.1 client: one write per request, no extra tasks.
    case pooled
    /// AsyncHTTPClient, as for HTTPS upstreams.
    case asyncHTTPClient = "async-http-client"
}

/// Deadlines on the way to and back from an upstream, in seconds.
public struct TimeoutSettings: Codable, Sendable, Equatable {
    /// Establishing the TCP connection to an upstream.
    public var connect: Double
    /// From sending the request to the first byte of the answer (for streams: the first event).
    public var firstByte: Double
    /// Longest silence allowed between two chunks of an answer.
    public var idle: Double
    /// The whole exchange, stream included.
    public var total: Double
    /// Added to `firstByte` per token a plain (not streamed) request may generate (`max_tokens`):
    /// such an answer only starts when generation ends. Without `max_tokens`, `total` bounds it.
    public var perOutputToken: Double
    /// On shutdown, how long in-flight requests may run before they are cancelled.
    public var shutdownGrace: Double

    public init(
        connect: Double = 5, firstByte: Double = 120, idle: Double = 60, total: Double = 900, perOutputToken: Double = 0.2,
        shutdownGrace: Double = 30
    ) {
        self.connect = connect
        self.firstByte = firstByte
        self.idle = idle
        self.total = total
        self.perOutputToken = perOutputToken
        self.shutdownGrace = shutdownGrace
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case connect, firstByte = "first_byte", idle, total, perOutputToken = "per_output_token", shutdownGrace = "shutdown_grace"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TimeoutSettings()
        connect = try c.decodeIfPresent(Double.self, forKey: .connect) ?? d.connect
        firstByte = try c.decodeIfPresent(Double.self, forKey: .firstByte) ?? d.firstByte
        idle = try c.decodeIfPresent(Double.self, forKey: .idle) ?? d.idle
        total = try c.decodeIfPresent(Double.self, forKey: .total) ?? d.total
        perOutputToken = try c.decodeIfPresent(Double.self, forKey: .perOutputToken) ?? d.perOutputToken
        shutdownGrace = try c.decodeIfPresent(Double.self, forKey: .shutdownGrace) ?? d.shutdownGrace
    }
}

/// A latitude/longitude pair in degrees.
public struct Coordinates: Codable, Sendable, Equatable, Hashable {
    public var latitude: Double
    public var longitude: Double

    /// `latitude,longitude` in degrees (spaces allowed around each), within range; nil otherwise.
    public init?(parsing text: String) {
        let parts = text[...].trimmingSpaces().split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2, let latitude = Double(parts[0].trimmingSpaces()), let longitude = Double(parts[1].trimmingSpaces()),
            (-90...90).contains(latitude), (-180...180).contains(longitude)
        else { return nil }
        self.init(latitude: latitude, longitude: longitude)
    }

    public init(latitude: Double, longitude: Double) {
        self.latitude = latitude
        self.longitude = longitude
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case latitude, longitude }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        latitude = try c.decode(Double.self, forKey: .latitude)
        longitude = try c.decode(Double.self, forKey: .longitude)
    }
}

/// A place where endpoints run: a region, a data centre, an edge site.
public struct SiteSettings: Codable, Sendable, Equatable {
    public var name: String
    public var latitude: Double
    public var longitude: Double
    /// Legal jurisdiction the site's data falls under, e.g. `DE`, `EU`, `US-CA`.
    public var jurisdiction: String?
    /// Who operates the site (a cloud, a colo, "self").
    public var provider: String?

    public init(name: String, latitude: Double, longitude: Double, jurisdiction: String? = nil, provider: String? = nil) {
        self.name = name
        self.latitude = latitude
        self.longitude = longitude
        self.jurisdiction = jurisdiction
        self.provider = provider
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, latitude, longitude, jurisdiction, provider }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        latitude = try c.decode(Double.self, forKey: .latitude)
        longitude = try c.decode(Double.self, forKey: .longitude)
        jurisdiction = try c.decodeIfPresent(String.self, forKey: .jurisdiction)
        provider = try c.decodeIfPresent(String.self, forKey: .provider)
    }
}

/// Which inference server software runs behind an endpoint; it decides how telemetry is read.
public enum EngineKind: String, Codable, Sendable, CaseIterable {
    case vllm, llamacpp, sglang, tgi, ollama, openai, emulated
}

/// One OpenAI-compatible inference server the gateway may send requests to.
public struct EndpointSettings: Codable, Sendable, Equatable {
    public var name: String
    /// OpenAI-compatible base URL, ending in `/v1` (e.g. `http://10.0.0.5:8000/v1`).
    public var url: String
    public var site: String?
    public var engine: EngineKind
    /// Models this endpoint serves: the logical name callers use, and the name the engine expects.
    public var models: [ServedModelSettings]
    /// Name of the environment variable that holds this endpoint's API key (never the key itself).
    public var apiKeyEnv: String?
    public var gpu: GPUSettings?
    public var pricing: PricingSettings?
    /// Requests this endpoint runs at once before it counts as saturated.
    public var maxConcurrency: Int?

    public init(
        name: String, url: String, site: String? = nil, engine: EngineKind = .openai,
        models: [ServedModelSettings] = [], apiKeyEnv: String? = nil, gpu: GPUSettings? = nil,
        pricing: PricingSettings? = nil, maxConcurrency: Int? = nil
    ) {
        self.name = name
        self.url = url
        self.site = site
        self.engine = engine
        self.models = models
        self.apiKeyEnv = apiKeyEnv
        self.gpu = gpu
        self.pricing = pricing
        self.maxConcurrency = maxConcurrency
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, url, site, engine, models, apiKeyEnv = "api_key_env", gpu, pricing
        case maxConcurrency = "max_concurrency"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        url = try c.decode(String.self, forKey: .url)
        site = try c.decodeIfPresent(String.self, forKey: .site)
        engine = try c.decodeIfPresent(EngineKind.self, forKey: .engine) ?? .openai
        models = try c.decodeIfPresent([ServedModelSettings].self, forKey: .models) ?? []
        apiKeyEnv = try c.decodeIfPresent(String.self, forKey: .apiKeyEnv)
        gpu = try c.decodeIfPresent(GPUSettings.self, forKey: .gpu)
        pricing = try c.decodeIfPresent(PricingSettings.self, forKey: .pricing)
        maxConcurrency = try c.decodeIfPresent(Int.self, forKey: .maxConcurrency)
    }
}

/// A model as an endpoint serves it. In YAML either a plain string (same name both sides) or
/// `{name: logical, upstream: engine-name}`.
public struct ServedModelSettings: Codable, Sendable, Equatable {
    public var name: String
    public var upstream: String

    public init(name: String, upstream: String? = nil) {
        self.name = name
        self.upstream = upstream ?? name
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, upstream }

    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let plain = try? single.decode(String.self) {
            self.init(name: plain)
            return
        }
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try c.decode(String.self, forKey: .name),
            upstream: try c.decodeIfPresent(String.self, forKey: .upstream))
    }
}

/// The accelerators behind an endpoint.
public struct GPUSettings: Codable, Sendable, Equatable {
    /// Profile name, e.g. `H100`, `H200`, `L40S`, `RTX-PRO-6000`.
    public var profile: String
    public var count: Int

    public init(profile: String, count: Int = 1) {
        self.profile = profile
        self.count = count
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case profile, count }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        profile = try c.decode(String.self, forKey: .profile)
        count = try c.decodeIfPresent(Int.self, forKey: .count) ?? 1
    }
}

/// What a request costs on an endpoint: per token (hosted APIs) or per GPU-hour (own fleet).
public struct PricingSettings: Codable, Sendable, Equatable {
    /// US dollars per million prompt tokens.
    public var inputPerMillion: Double?
    /// US dollars per million generated tokens.
    public var outputPerMillion: Double?
    /// US dollars per GPU-hour (multiplied by the GPU count).
    public var gpuHour: Double?

    public init(inputPerMillion: Double? = nil, outputPerMillion: Double? = nil, gpuHour: Double? = nil) {
        self.inputPerMillion = inputPerMillion
        self.outputPerMillion = outputPerMillion
        self.gpuHour = gpuHour
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case inputPerMillion = "input_per_million", outputPerMillion = "output_per_million", gpuHour = "gpu_hour"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inputPerMillion = try c.decodeIfPresent(Double.self, forKey: .inputPerMillion)
        outputPerMillion = try c.decodeIfPresent(Double.self, forKey: .outputPerMillion)
        gpuHour = try c.decodeIfPresent(Double.self, forKey: .gpuHour)
    }
}

/// A logical model callers name, with other names it answers to and where to fall back.
public struct ModelSettings: Codable, Sendable, Equatable {
    public var name: String
    public var aliases: [String]
    /// Logical models to use, in order, when no endpoint of this one can serve.
    public var fallbacks: [String]
    /// Longest context (prompt plus output tokens) the model accepts.
    public var contextLength: Int?
    /// Routing policy for this model's requests (unless a request names its own).
    public var policy: String?
    /// What the model does: chat and text generation (the default) or embeddings. Emulated endpoints
    /// serve `/v1/embeddings` for an embeddings model.
    public var kind: ModelKind

    public init(
        name: String, aliases: [String] = [], fallbacks: [String] = [], contextLength: Int? = nil, policy: String? = nil,
        kind: ModelKind = .chat
    ) {
        self.name = name
        self.aliases = aliases
        self.fallbacks = fallbacks
        self.contextLength = contextLength
        self.policy = policy
        self.kind = kind
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, aliases, fallbacks, contextLength = "context_length", policy, kind
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        aliases = try c.decodeIfPresent([String].self, forKey: .aliases) ?? []
        fallbacks = try c.decodeIfPresent([String].self, forKey: .fallbacks) ?? []
        contextLength = try c.decodeIfPresent(Int.self, forKey: .contextLength)
        policy = try c.decodeIfPresent(String.self, forKey: .policy)
        kind = try c.decodeIfPresent(ModelKind.self, forKey: .kind) ?? .chat
    }
}

/// What a logical model does.
public enum ModelKind: String, Codable, Sendable, CaseIterable {
    /// Generates text: chat and text completions.
    case chat
    /// Turns text into vectors: `/v1/embeddings`.
    case embeddings
}

/// Log output settings.
public struct LoggingSettings: Codable, Sendable, Equatable {
    /// trace, debug, info, notice, warning, error, critical
    public var level: String
    /// `text` or `json`
    public var format: String

    public init(level: String = "info", format: String = "text") {
        self.level = level
        self.format = format
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case level, format }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        level = try c.decodeIfPresent(String.self, forKey: .level) ?? "info"
        format = try c.decodeIfPresent(String.self, forKey: .format) ?? "text"
    }
}
