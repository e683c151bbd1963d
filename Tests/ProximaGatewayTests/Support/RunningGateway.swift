import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ProximaCore
import ServiceLifecycle
@_spi(Benchmarks) @testable import ProximaGateway

/// A gateway running in this process on a loopback port chosen at run time. Stop it with `stop()`,
/// which shuts it down the graceful way, as SIGTERM would.
final class RunningGateway: Sendable {
    let gateway: Gateway
    let port: Int
    let group: ServiceGroup
    let task: Task<Void, any Error>

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// - Parameter monitor: also run the endpoint monitor (metrics reads and health checks).
    /// - Parameter openStore: open the configuration's store as `proxima serve` does
    ///   (`Gateway.open`), poll it, and close it in `stop()`.
    static func start(
        _ configuration: ProximaConfiguration, environment: [String: String] = [:], monitor: Bool = false,
        reloadSource: (@Sendable () throws -> ProximaConfiguration)? = nil, openStore: Bool = false
    ) async throws -> RunningGateway {
        var configuration = configuration
        configuration.server.host = "127.0.0.1"
        configuration.server.port = 0
        var logger = Logger(label: "test-gateway")
        logger.logLevel = ProcessInfo.processInfo.environment["PROXIMA_TEST_LOG"] == nil ? .critical : .debug
        let gateway =
            openStore
            ? try await Gateway.open(configuration: configuration, environment: environment, logger: logger, reloadSource: reloadSource)
            : try Gateway(
                configuration: configuration, environment: environment, logger: logger, reloadSource: reloadSource,
                auditLog: try await Gateway.openAuditLog(configuration: configuration, logger: logger))
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let application = gateway.makeApplication { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
            portContinuation.finish()
        }
        let group = ServiceGroup(
            configuration: gateway.serviceGroupConfiguration(
                services: [gateway.upstreamClientService()] + (monitor ? [gateway.endpointMonitor()] : []) + gateway.credentialServices()
                    + [application],
                signals: []))
        let task = Task { try await group.run() }
        var iterator = portStream.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            await gateway.closeAudit()
            await gateway.store?.close()
            throw TestFailure("the gateway did not start")
        }
        return RunningGateway(gateway: gateway, port: port, group: group, task: task)
    }

    private init(gateway: Gateway, port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.gateway = gateway
        self.port = port
        self.group = group
        self.task = task
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        await gateway.closeAudit()
        await gateway.store?.close()
    }

    /// Runs `body`, then stops this gateway and `upstream`, whether `body` threw or not.
    func run<T>(stoppingAfter upstream: FaultyUpstream, _ body: () async throws -> T) async throws -> T {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        await stop()
        await upstream.stop()
        return try result.get()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A plain HTTP client for tests, with a pool large enough for concurrent streams.
enum TestHTTP {
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(120))
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }()

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: String
        var json: [String: Any]? {
            try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        }
        var errorObject: [String: Any]? { json?["error"] as? [String: Any] }
    }

    static func post(_ url: String, json: String, headers: [(String, String)] = []) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: json))
        return try await send(request)
    }

    static func get(_ url: String) async throws -> Reply {
        try await send(HTTPClientRequest(url: url))
    }

    static func send(_ request: HTTPClientRequest) async throws -> Reply {
        let response = try await client.execute(request, timeout: .seconds(120))
        let body = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: body))
    }
}

/// A free loopback TCP port (bound and released; the tiny race is acceptable in tests).
func freeLoopbackPort() throws -> Int {
    let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).wait()
    let port = channel.localAddress?.port ?? 0
    try channel.close().wait()
    return port
}
