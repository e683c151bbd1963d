import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ProximaAudit
import ProximaCore
import ProximaStore
import ServiceLifecycle
import UnixSignals

/// The Proxima gateway: an OpenAI-compatible HTTP server in front of the fleet. Build it from a
/// configuration, then `run()` it; it stops gracefully on SIGTERM/SIGINT, letting in-flight requests
/// finish for the configured grace period before cancelling them.
public struct Gateway: Sendable {
    /// The configuration the gateway started with; admin changes and reloads live in `state`.
    public let configuration: ProximaConfiguration
    public let metrics: GatewayMetrics
    let state: RoutingState
    let client: HTTPClient
    /// AsyncHTTPClient for plain (not streamed) requests: without a read timeout, since an engine is
    /// silent until its whole answer is generated; the request's own deadline bounds the wait.
    let plainClient: HTTPClient
    /// The client for plain-HTTP upstreams, unless the configuration asks for AsyncHTTPClient.
    let pooledClient: PooledUpstreamClient?
    let logger: Logger
    let startedAt = Date()
    let requestIDs = RequestIDGenerator()
    let proxy: InferenceProxy
    /// The stages an inference request goes through (see `Pipeline/RequestPipeline.swift`).
    let pipeline: RequestPipeline
    /// The response cache (empty and unused while `cache.enabled` is false).
    let cache: ResponseCache
    /// Tenants, principals and keys callers are identified against.
    let directory: IdentityDirectory
    /// Checks bearer JWTs when the configuration has `auth.jwt`.
    let verifier: JWTVerifier?
    /// The identify stage (also used by `/v1/models`, `/v1/route/explain` and `/admin`).
    let identification: CallerIdentification
    /// The admission state of keys, principals and tenants kept in this process (all of it, or
    /// with `sharedLedger` the concurrency caps and the local view of budgets).
    let ledger: LocalAdmissionLedger
    /// Rate limits and budgets shared with other replicas through the store's counters, when the
    /// gateway was given them.
    let sharedLedger: SharedAdmissionLedger?
    let environment: [String: String]
    /// What caller connections share: their limits, the connection limiter, the body budget.
    let callers: CallerResources
    /// Where a reload (SIGHUP or the admin API) reads the configuration from, if from a file.
    let reloadSource: (@Sendable () throws -> ProximaConfiguration)?
    /// The store the gateway was opened with (``open(configuration:environment:logger:metrics:reloadSource:)``):
    /// identities, admin documents and the counters replicas share. `nil` for a gateway built
    /// without one (tests of the proxy alone): identities then come only from the file.
    public let store: (any ProximaStore)?
    /// Keeps ``directory`` in step with ``store``.
    let identitySync: IdentitySync?
    /// Admin changes kept in the store across restarts and reloads.
    let overrides: AdminOverrides
    /// The audit log, when `audit.enabled` (opened by ``Gateway/open(configuration:environment:logger:metrics:reloadSource:)``
    /// or given to `init`); closed by ``closeAudit()``.
    public let auditLog: AuditLog?
    let audit: AuditTrail?

    /// Builds the gateway. Fails with ``InvalidConfiguration`` when the configuration is not usable,
    /// including an endpoint whose key variable is not set.
    public init(
        configuration: ProximaConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger, metrics: GatewayMetrics = GatewayMetrics(),
        reloadSource: (@Sendable () throws -> ProximaConfiguration)? = nil, store: (any ProximaStore)? = nil,
        sharedCounters: (any SharedCounters)? = nil, auditLog: AuditLog? = nil
    ) throws {
        self.auditLog = auditLog
        let audit = auditLog.map { AuditTrail(log: $0, settings: configuration.audit, metrics: metrics, logger: logger) }
        self.audit = audit
        self.configuration = configuration
        self.store = store
        self.environment = environment
        self.reloadSource = reloadSource
        self.metrics = metrics
        self.logger = logger
        self.state = try RoutingState(configuration: configuration, environment: environment)
        self.callers = CallerResources(configuration.server.callers)
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.decompression = .disabled
        clientConfiguration.timeout = .init(
            connect: .seconds(clampedSeconds: configuration.server.timeouts.connect),
            read: .seconds(clampedSeconds: configuration.server.timeouts.idle))
        clientConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.server.maxConnectionsPerUpstream)
        // A refused connection must fail at once so the next endpoint is tried, not be retried
        // until the connect timeout.
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        clientConfiguration.httpVersion = .http1Only
        // No spans per upstream request: nothing consumes them, and creating them cost ~2.6% of CPU.
        clientConfiguration.tracing.tracer = nil
        self.client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: clientConfiguration)
        clientConfiguration.timeout.read = nil
        self.plainClient = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: clientConfiguration)
        let server = configuration.server
        self.pooledClient =
            server.upstreamClient == .pooled
            ? PooledUpstreamClient(
                group: MultiThreadedEventLoopGroup.singleton,
                settings: .init(
                    connectTimeout: .seconds(clampedSeconds: server.timeouts.connect),
                    idleTimeout: .seconds(clampedSeconds: server.timeouts.idle),
                    maxConnectionsPerHost: server.maxConnectionsPerUpstream, maxIdleTime: .seconds(60)))
            : nil
        self.proxy = InferenceProxy(
            state: state, client: client, plainClient: plainClient, pooled: pooledClient, metrics: metrics, watch: ConnectionCloseWatch(), logger: logger)
        let directory = IdentityDirectory(configured: configuration.auth.identities, defaults: configuration.limits)
        self.directory = directory
        self.identitySync = store.map { IdentitySync(store: $0, directory: directory, metrics: metrics, logger: logger) }
        self.overrides = AdminOverrides(store: store, logger: logger)
        self.verifier = configuration.auth.jwt.map(JWTVerifier.init(settings:))
        self.identification = CallerIdentification(directory: directory, verifier: verifier, metrics: metrics)
        let ledger = LocalAdmissionLedger()
        self.ledger = ledger
        // With the store's counters, limits hold across the replicas that share them.
        var sharedLedger: SharedAdmissionLedger?
        if let sharedCounters {
            sharedLedger = SharedAdmissionLedger(counters: sharedCounters, settings: configuration.limits.leases, local: ledger, logger: logger)
        }
        self.sharedLedger = sharedLedger
        let routeStage = RouteStage(state: state, metrics: metrics)
        // The cache's bounds are fixed at start; whether it applies, its tiers and thresholds follow reloads.
        let cache = ResponseCache(settings: configuration.cache, metrics: metrics)
        self.cache = cache
        // The edge's verifiers and their caches are built at start; its policies follow reloads.
        let edge: EdgeStage
        do {
            edge = EdgeStage(
                agents: SignedAgentVerifier(settings: configuration.edge.agents, client: plainClient, logger: logger),
                crawlers: try CrawlerVerifier(settings: configuration.edge.crawlers, logger: logger),
                unknown: UnknownCallerScorer(settings: configuration.edge.unknown), limiter: EdgeRateLimiter(), metrics: metrics)
        } catch let error as InvalidConfiguration {
            throw error
        } catch {
            throw InvalidConfiguration(problems: [.init("edge.crawlers", "\(error)")])
        }
        self.pipeline = RequestPipeline(
            identify: identification, edge: edge, admit: AdmissionStage(ledger: sharedLedger ?? ledger, metrics: metrics),
            guards: GuardStage(metrics: metrics), route: routeStage,
            cache: CacheStage(cache: cache, route: routeStage, proxy: proxy, metrics: metrics, logger: logger),
            proxy: proxy, metrics: metrics, logger: logger, audit: audit)
        if !configuration.auth.mode.isRequired && !Self.isLoopback(configuration.server.host) {
            logger.warning(
                "authentication is off (auth.mode: none) on a listener that is not loopback-only: anyone who reaches it may use every model",
                metadata: ["host": "\(configuration.server.host)"])
        }
    }

    /// The HTTP routes of the gateway.
    public func makeRouter() -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: RequestIDMiddleware(generator: requestIDs, logger: logger))
        for operation in InferenceOperation.allCases {
            let path: RouterPath =
                switch operation {
                case .chatCompletions: "/v1/chat/completions"
                case .completions: "/v1/completions"
                case .embeddings: "/v1/embeddings"
                }
            router.post(path) { request, context in
                // In a child task of its own: a task keeps the memory its deepest await needed until
                // it ends, and the connection's task lives as long as the connection. Run inline, a
                // keep-alive connection that has served one inference request kept about 70 KB
                // (1,000 idle connections: 130 MB instead of 60); the child costs about 4% of
                // throughput.
                async let response = pipeline.handle(operation, request: request, context: context)
                return try await response
            }
        }
        router.get("/v1/models") { request, _ in
            let snapshot = state.snapshot
            let identity = try identification.identity(
                request.headers, mode: snapshot.trust.mode, publicTenant: snapshot.trust.publicTenant, at: Date().timeIntervalSince1970)
            return modelList(snapshot.fleet.models.filter { identity.models.allows($0.name) })
        }
        router.get("/v1/models/{id}") { request, context in
            let snapshot = state.snapshot
            let identity = try identification.identity(
                request.headers, mode: snapshot.trust.mode, publicTenant: snapshot.trust.publicTenant, at: Date().timeIntervalSince1970)
            let id = context.parameters.get("id") ?? ""
            guard let model = snapshot.fleet.model(named: id) else { throw GatewayError.modelNotFound(id) }
            guard identity.models.allows(id) || identity.models.allows(model.name) else { throw GatewayError.modelNotAllowed(id) }
            return jsonResponse(modelObject(model.name))
        }
        router.post("/v1/route/explain") { request, context in try await explainRoute(request, context: context) }
        addAdminRoutes(to: router)
        router.get("/healthz") { _, _ in jsonResponse("{\"status\":\"ok\"}") }
        router.get("/readyz") { _, _ in readiness() }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        return router
    }

    /// The Hummingbird application serving the routes; `onServerRunning` receives the bound channel.
    public func makeApplication(
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let metrics = self.metrics
        let watch = proxy.watch
        let callers = self.callers
        let logger = self.logger
        return Application(
            router: makeRouter(),
            server: HTTPServerBuilder { responder in
                GatewayHTTPChannel(responder: responder, resources: callers, metrics: metrics, watch: watch)
            },
            configuration: .init(
                address: .hostname(configuration.server.host, port: configuration.server.port), serverName: nil,
                backlog: 1024, availableConnectionsDelegate: AcceptGate(limiter: callers.connections)),
            onServerRunning: { channel in
                try? await channel.eventLoop.submit {
                    try channel.pipeline.syncOperations.addHandler(AcceptPauseOnExhaustion(logger: logger), position: .first)
                }.get()
                await onServerRunning(channel)
            },
            logger: logger)
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully. SIGHUP reloads the configuration.
    public func run(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) async throws {
        let group = ServiceGroup(
            configuration: serviceGroupConfiguration(services: services(onServerRunning: onServerRunning), signals: [.sigterm, .sigint]))
        try await group.run()
    }

    /// Everything the gateway runs, in start order (they stop in reverse): the upstream client, the
    /// endpoint monitor, the reload-on-SIGHUP listener and the HTTP server.
    public func services(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> [any Service] {
        [UpstreamClientService(clients: [client, plainClient], pooled: pooledClient), endpointMonitor()] + credentialServices()
            + (sharedLedger.map { [SharedLedgerService(ledger: $0)] } ?? [])
            + [ReloadOnHangup(gateway: self), makeApplication(onServerRunning: onServerRunning)]
    }

    /// The services that keep credentials current: the store's identity poller when there is a
    /// store, the JWKS reader when JWTs are accepted.
    public func credentialServices() -> [any Service] {
        var services: [any Service] = []
        if let identitySync {
            let state = self.state
            services.append(IdentityPoller(sync: identitySync) { state.snapshot.configuration.store.refreshSeconds })
        }
        if let verifier { services.append(JWKSRefresher(verifier: verifier, client: client, logger: logger)) }
        return services
    }

    /// The service that reads engine metrics and checks endpoints on an interval.
    public func endpointMonitor() -> some Service { EndpointMonitor(state: state, client: client, logger: logger) }

    /// The service group configuration: services shut down in reverse order (server first, then the
    /// upstream client), in-flight work gets the grace period, then is cancelled.
    public func serviceGroupConfiguration(services: [any Service], signals: [UnixSignal]) -> ServiceGroupConfiguration {
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: signals, logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(clampedSeconds: self.configuration.server.timeouts.shutdownGrace)
        configuration.maximumCancellationDuration = .seconds(5)
        return configuration
    }

    /// Reloads the configuration on SIGHUP; a configuration that cannot be used is logged and ignored.
struct ReloadOnHangup: Service {
    let gateway: Gateway

    func run() async throws {
        // A service that returns ends the whole group: without a file, just wait for the shutdown.
        guard gateway.reloadSource != nil else {
            try? await gracefulShutdown()
            return
        }
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hangups {
                do {
                    let snapshot = try gateway.reload()
                    try? await gateway.audit?.admin(
                        action: "config.reloaded", actor: "sighup", target: nil, detail: "generation \(snapshot.generation)")
                } catch {
                    gateway.logger.error("reload refused; the running configuration stays", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// A service that owns the upstream HTTP client and shuts it down last.
    public func upstreamClientService() -> some Service { UpstreamClientService(clients: [client, plainClient], pooled: pooledClient) }

    // MARK: handlers

    /// Loads the store's identities into the directory now (at start, and after an admin write so
    /// that the gateway that took it does not wait for the next poll). Without a store, nothing.
    public func loadIdentities() async throws(StoreError) {
        try await identitySync?.load()
    }

    /// Reloads identities if the store's version moved; a failure keeps the last ones (see
    /// ``IdentitySync/poll()``).
    func refreshIdentities() async {
        await identitySync?.poll()
    }

    /// Replaces the tenants, principals and keys from the store (its `identitySnapshot()`); the
    /// configuration's own tenants and principals stay beneath them. Takes effect with the next
    /// request.
    public func replaceIdentities(with snapshot: IdentitySnapshot) {
        directory.replace(with: snapshot)
    }

    /// Whether a listener address accepts loopback connections only.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        guard let address = IPAddress(host) else { return false }
        return (try? IPNetwork(parsing: "127.0.0.0/8"))?.contains(address) == true || address == IPAddress(high: 0, low: 1)
    }

    func modelList(_ models: [LogicalModel]) -> Response {
        let data = models.map { modelObject($0.name) }.joined(separator: ",")
        return jsonResponse("{\"object\":\"list\",\"data\":[\(data)]}")
    }

    func modelObject(_ name: String) -> String {
        "{\"id\":\(JSONScanner.quoted(name)),\"object\":\"model\",\"created\":\(Int(startedAt.timeIntervalSince1970)),\"owned_by\":\"proxima\"}"
    }

    /// Ready while at least one endpoint can take requests (not drained, breaker not open) and, when
    /// only JWTs are accepted, the JWKS's keys are current.
    func readiness() -> Response {
        let (snapshot, telemetry, now) = state.current()
        var availableCount = 0
        let endpoints = snapshot.fleet.endpoints.map { endpoint -> String in
            let status = telemetry[endpoint.index]
            let available = !status.drained && status.breaker.allowsRequest(at: now)
            if available { availableCount += 1 }
            var item = JSONObjectWriter()
            item.string("name", endpoint.name)
            item.string("site", endpoint.siteName)
            item.bool("healthy", available)
            item.string("breaker", status.breaker.state(at: now).rawValue)
            item.bool("drained", status.drained)
            return item.finished()
        }
        var ready = availableCount > 0
        var jwks = ""
        if let verifier, snapshot.trust.mode.jwt {
            // Without current signing keys every JWT is refused: a gateway that accepts nothing
            // else is not ready.
            let loaded = verifier.currentKeys(at: Date().timeIntervalSince1970) != nil
            jwks = ",\"jwks\":\"\(loaded ? "loaded" : "unavailable")\""
            if !loaded && !snapshot.trust.mode.keys { ready = false }
        }
        let body = "{\"status\":\"\(ready ? "ready" : "unavailable")\"\(jwks),\"endpoints\":[\(endpoints.joined(separator: ","))]}"
        return jsonResponse(body, status: ready ? .ok : .serviceUnavailable)
    }

    func jsonResponse(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Keeps the upstream HTTP client alive while the gateway runs and shuts it down after the server.
struct UpstreamClientService: Service {
    let clients: [HTTPClient]
    let pooled: PooledUpstreamClient?

    func run() async throws {
        try? await gracefulShutdown()
        pooled?.closeIdle()
        for client in clients { try await client.shutdown() }
    }
}
