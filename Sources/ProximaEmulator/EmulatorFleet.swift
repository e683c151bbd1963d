import Foundation
import Hummingbird
import Logging
import NIOCore
import ProximaCore
import ServiceLifecycle
import Synchronization

/// The emulated endpoints of a fleet file, each served on its own loopback port by its own server,
/// so that a crash fault really refuses connections (the server stops) and recovery restarts it on
/// the same port.
public final class EmulatorFleet: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private final class Running: Sendable {
        let endpoint: EmulatedEndpoint
        let host: String
        let port: Int
        let task: Mutex<Task<Void, Never>?>

        init(endpoint: EmulatedEndpoint, host: String, port: Int, task: Task<Void, Never>?) {
            self.endpoint = endpoint
            self.host = host
            self.port = port
            self.task = Mutex(task)
        }
    }

    private let endpoints: [String: Running]
    private let order: [String]
    private let engineTasks: [Task<Void, Never>]
    private let logger: Logger

    /// Starts every endpoint of `configuration` whose engine is `emulated`, on the host and port of its
    /// URL (port 0 picks a free port). Profiles come from `gpu.profile` (a catalog name such as
    /// `H100-70B`; default `H100-8B`).
    public static func start(configuration: ProximaConfiguration, logger: Logger) async throws -> EmulatorFleet {
        let fleet = try Fleet(configuration: configuration)
        let embeddingsModels = Set(configuration.models.filter { $0.kind == .embeddings }.map(\.name))
        var running: [String: Running] = [:]
        var order: [String] = []
        var engineTasks: [Task<Void, Never>] = []
        for (index, settings) in configuration.endpoints.enumerated() where settings.engine == .emulated {
            let profileName = settings.gpu?.profile ?? "H100-8B"
            guard let profile = GPUProfile.named(profileName) else {
                throw Failure(
                    description: "endpoints[\(index)].gpu.profile: unknown profile '\(profileName)' (known: \(GPUProfile.catalog.keys.sorted().joined(separator: ", ")))")
            }
            let endpoint = fleet.endpoints[index]
            let emulated = EmulatedEndpoint(
                name: endpoint.name, models: settings.models.map(\.upstream),
                embeddingModels: Set(settings.models.filter { embeddingsModels.contains($0.name) }.map(\.upstream)),
                site: fleet.site(of: endpoint), profile: profile)
            engineTasks.append(Task { await emulated.driver.run() })
            let (task, port) = try await serve(emulated, host: endpoint.url.host, port: endpoint.url.port == 80 ? 0 : endpoint.url.port, logger: logger)
            running[endpoint.name] = Running(endpoint: emulated, host: endpoint.url.host, port: port, task: task)
            order.append(endpoint.name)
        }
        return EmulatorFleet(endpoints: running, order: order, engineTasks: engineTasks, logger: logger)
    }

    private init(endpoints: [String: Running], order: [String], engineTasks: [Task<Void, Never>], logger: Logger) {
        self.endpoints = endpoints
        self.order = order
        self.engineTasks = engineTasks
        self.logger = logger
    }

    /// Runs an endpoint's server in a task; returns it with the bound port once it listens.
    private static func serve(_ endpoint: EmulatedEndpoint, host: String, port: Int, logger: Logger) async throws -> (Task<Void, Never>, Int) {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        // Stopping a server (the crash fault, stop()) cancels it with connections open, which the
        // server logs as errors; that is the emulated crash working, so its logger keeps quiet.
        var logger = logger
        logger.logLevel = .critical
        let app = Application(
            router: endpoint.router(), configuration: .init(address: .hostname(host, port: port), serverName: nil, reuseAddress: true),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: logger)
        let task = Task {
            do { try await app.run() } catch { continuation.finish() }
        }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next(), bound > 0 else {
            task.cancel()
            throw Failure(description: "endpoint \(endpoint.name) could not listen on \(host):\(port)")
        }
        return (task, bound)
    }

    /// Endpoint names in fleet-file order.
    public var endpointNames: [String] { order }

    /// The port an endpoint listens on.
    public func port(of name: String) -> Int? { endpoints[name]?.port }

    /// The OpenAI base URL of an endpoint.
    public func baseURL(of name: String) -> String? {
        endpoints[name].map { "http://\($0.host):\($0.port)/v1" }
    }

    public func faults(of name: String) -> FaultSettings? { endpoints[name]?.endpoint.currentFaults }

    /// Sets an endpoint's faults; `crash` stops its server (connections are refused) and clearing it
    /// starts the server again on the same port.
    public func setFaults(_ faults: FaultSettings, on name: String) async throws {
        guard let running = endpoints[name] else { throw Failure(description: "unknown endpoint '\(name)'") }
        let problems = faults.problems(at: "faults")
        guard problems.isEmpty else { throw Failure(description: problems.map(\.description).joined(separator: "; ")) }
        let wasCrashed = running.endpoint.currentFaults.crash
        running.endpoint.setFaults(faults)
        if faults.crash && !wasCrashed {
            let task = running.task.withLock { task in
                defer { task = nil }
                return task
            }
            task?.cancel()
            await task?.value
        } else if !faults.crash && wasCrashed {
            let (task, _) = try await Self.serve(running.endpoint, host: running.host, port: running.port, logger: logger)
            running.task.withLock { $0 = task }
        }
    }

    /// Stops every endpoint.
    public func stop() async {
        for name in order {
            let task = endpoints[name]?.task.withLock { task in
                defer { task = nil }
                return task
            }
            task?.cancel()
            await task?.value
        }
        for task in engineTasks { task.cancel() }
    }

    /// The control API: `GET /admin/endpoints` lists endpoints with their faults and engine state;
    /// `PUT /admin/endpoints/{name}/faults` with a JSON body of fault settings replaces them.
    public func controlRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/admin/endpoints") { _, _ in
            let items = self.order.compactMap { name -> String? in
                guard let running = self.endpoints[name] else { return nil }
                let snapshot = running.endpoint.driver.snapshot()
                let faults = (try? String(decoding: JSONEncoder().encode(running.endpoint.currentFaults), as: UTF8.self)) ?? "{}"
                return "{\"name\":\"\(name)\",\"port\":\(running.port),\"site\":\"\(running.endpoint.site.name)\",\"profile\":\"\(running.endpoint.driver.profile.name)\",\"running\":\(snapshot.running),\"waiting\":\(snapshot.waiting),\"faults\":\(faults)}"
            }
            return EmulatedEndpoint.json("{\"endpoints\":[\(items.joined(separator: ","))]}")
        }
        router.put("/admin/endpoints/{name}/faults") { request, context in
            var request = request
            let name = context.parameters.get("name") ?? ""
            let body = try await request.collectBody(upTo: 1 << 16)
            let faults: FaultSettings
            do {
                faults = try JSONDecoder().decode(FaultSettings.self, from: Data(body.readableBytesView))
            } catch {
                return EmulatedEndpoint.error("invalid fault settings: \(error)", status: .badRequest)
            }
            do {
                try await self.setFaults(faults, on: name)
            } catch let failure as Failure {
                return EmulatedEndpoint.error(failure.description, status: self.endpoints[name] == nil ? .notFound : .badRequest)
            }
            return EmulatedEndpoint.json("{\"endpoint\":\"\(name)\",\"applied\":true}")
        }
        return router
    }
}
