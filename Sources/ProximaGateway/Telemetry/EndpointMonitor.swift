import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import ProximaCore
import ServiceLifecycle

/// Reads every endpoint's engine metrics on an interval and checks that it is up, feeding the
/// router's telemetry: engine load (vLLM, SGLang, llama.cpp and the emulator's Prometheus metrics;
/// llama.cpp's `/slots` when its metrics are off) and active health (a failed check opens the
/// endpoint's breaker, a good one lets an open breaker probe). Hosted APIs are checked with
/// `GET /models`; their limits come from the configuration.
struct EndpointMonitor: Service {
    let state: RoutingState
    let client: HTTPClient
    let logger: Logger

    /// What one check of an endpoint found.
    enum Reading: Sendable, Equatable {
        /// Up, with its load when the engine reports one.
        case up(EngineLoadSnapshot?)
        case down(String)
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let snapshot = state.snapshot
                let interval = snapshot.configuration.routing.telemetry.scrapeIntervalSeconds
                guard interval > 0 else {
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                await checkAll(snapshot, timeout: .seconds(clampedSeconds: min(max(interval, 1), 5)))
                try? await Task.sleep(for: .seconds(clampedSeconds: interval))
            }
        }
    }

    /// Checks every endpoint of a snapshot at once and records the results.
    func checkAll(_ snapshot: RoutingSnapshot, timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            for endpoint in snapshot.fleet.endpoints {
                group.addTask {
                    let reading = await check(endpoint, authorization: snapshot.authorizations[endpoint.index], timeout: timeout)
                    let ref = EndpointRef(index: endpoint.index, name: endpoint.name, generation: snapshot.generation)
                    switch reading {
                    case .up(let load):
                        if let load { state.recordEngineRead(ref, snapshot: load) }
                        state.recordCheck(ref, succeeded: true)
                    case .down(let reason):
                        state.recordCheck(ref, succeeded: false)
                        logger.debug("endpoint check failed", metadata: ["endpoint": "\(endpoint.name)", "reason": "\(reason)"])
                    }
                }
            }
        }
    }

    /// One check of one endpoint.
    func check(_ endpoint: Endpoint, authorization: String?, timeout: Duration) async -> Reading {
        let root = endpoint.url.serverRoot
        switch endpoint.engine {
        case .vllm, .sglang, .tgi, .emulated, .llamacpp:
            switch await get(root + "/metrics", authorization: authorization, timeout: timeout) {
            case .success(let (status, body)) where status == 200:
                let load = EngineLoadSnapshot(samples: PrometheusText.parse(String(buffer: body)))
                return .up(load.running == nil && load.kvCacheUsage == nil ? nil : load)
            case .success(let (status, _)):
                // Metrics switched off: llama.cpp still tells its slots; anyone else, its health.
                if endpoint.engine == .llamacpp, case .success(let (200, body)) = await get(root + "/slots", authorization: authorization, timeout: timeout) {
                    return .up(Self.slotsLoad(body))
                }
                if status >= 500 { return .down("GET /metrics answered \(status)") }
                return await simpleCheck(root + "/health", authorization: authorization, timeout: timeout)
            case .failure(let reason):
                return .down(reason)
            }
        case .ollama, .openai:
            return await simpleCheck(endpoint.url.appending("/models"), authorization: authorization, timeout: timeout)
        }
    }

    /// Up when the URL answers anything but a server error (a 401 still proves the server is there).
    private func simpleCheck(_ url: String, authorization: String?, timeout: Duration) async -> Reading {
        switch await get(url, authorization: authorization, timeout: timeout) {
        case .success(let (status, _)): status < 500 ? .up(nil) : .down("answered \(status)")
        case .failure(let reason): .down(reason)
        }
    }

    enum Fetch: Sendable {
        case success((Int, ByteBuffer))
        case failure(String)
    }

    private func get(_ url: String, authorization: String?, timeout: Duration) async -> Fetch {
        var request = HTTPClientRequest(url: url)
        if let authorization { request.headers.add(name: "authorization", value: authorization) }
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            let body = try await response.body.collect(upTo: 4 << 20)
            return .success((Int(response.status.code), body))
        } catch {
            return .failure(String(describing: type(of: error)))
        }
    }

    /// Load from llama.cpp's `/slots`: a JSON array with one object per slot, `"is_processing": true`
    /// on the busy ones.
    static func slotsLoad(_ body: ByteBuffer) -> EngineLoadSnapshot? {
        let text = String(buffer: body)
        guard text.hasPrefix("[") else { return nil }
        let busy = text.split(separator: "\"is_processing\":").dropFirst().filter { $0.drop(while: { $0 == " " }).hasPrefix("true") }.count
        return EngineLoadSnapshot(running: Double(busy), waiting: 0)
    }
}

extension UpstreamURL {
    /// The server's root (scheme, host, port, and the base path without a trailing `/v1`), where
    /// engines serve `/metrics`, `/health` and `/slots`.
    var serverRoot: String {
        var path = basePath
        if path.hasSuffix("/v1") { path.removeLast(3) }
        return "\(scheme)://\(host):\(port)\(path)"
    }
}
