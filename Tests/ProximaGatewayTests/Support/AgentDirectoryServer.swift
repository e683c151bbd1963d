import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A signed agent's origin on loopback: serves `/.well-known/http-message-signatures-directory` as
/// told (a JWKS with a max-age, garbage, 404, or an answer too slow to wait for) and counts fetches.
final class AgentDirectoryServer: Sendable {
    enum Mode: Sendable {
        case keys(json: String, maxAge: Int?)
        case garbage
        case notFound
        case slow(seconds: Double)
    }

    let port: Int
    let fetches = Atomic<Int>(0)
    private let mode: Mutex<Mode>
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    var origin: String { "http://127.0.0.1:\(port)" }

    func serve(_ mode: Mode) { self.mode.withLock { $0 = mode } }

    static func start(_ mode: Mode) async throws -> AgentDirectoryServer {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let state = Mutex<AgentDirectoryServer?>(nil)
        let router = Router()
        router.get("/.well-known/http-message-signatures-directory") { _, _ -> Response in
            let server = state.withLock { $0 }!
            server.fetches.add(1, ordering: .relaxed)
            switch server.mode.withLock({ $0 }) {
            case .keys(let json, let maxAge):
                var headers: HTTPFields = [.contentType: "application/http-message-signatures-directory+json"]
                if let maxAge { headers[.cacheControl] = "public, max-age=\(maxAge)" }
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
            case .garbage:
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"keys\": [ {\"kty\"")))
            case .notFound:
                return Response(status: .notFound)
            case .slow(let seconds):
                try await Task.sleep(for: .seconds(seconds))
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "{\"keys\": []}")))
            }
        }
        let quiet = Logger(label: "agent-directory", factory: { _ in SwiftLogNoOpLogHandler() })
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: quiet)
        let group = ServiceGroup(services: [app], logger: quiet)
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        let server = AgentDirectoryServer(port: port, mode: mode, group: group, task: task)
        state.withLock { $0 = server }
        return server
    }

    private init(port: Int, mode: Mode, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.mode = Mutex(mode)
        self.group = group
        self.task = task
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        task.cancel()
        _ = try? await task.value
    }
}
