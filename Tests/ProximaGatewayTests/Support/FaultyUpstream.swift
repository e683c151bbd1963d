import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A small OpenAI-compatible upstream on a loopback port, for behaviour that a real engine cannot be
/// made to show on demand: answers that fail, hang, stall or break off mid-stream. Each request's
/// behaviour is picked by the model name it carries (the gateway passes the model through).
///
/// Models: `ok` answers normally; `fail500` answers 500; `hang` never answers; `stream-abort` sends two
/// events then drops the connection; `stream-stall` sends one event then goes silent; `slow-stream`
/// sends an event every 200 ms for 5 s; `slow-plain` answers a plain request after 2 s; `big` answers with
/// 200 KB; `stream-error` sends an event then an error event; `stream-error-first` opens with an error
/// event; `stream-late` sends its first event after 50 ms; `stream-comment-first` sends a `:` keep-alive at once and its first data 1 s later.
final class FaultyUpstream: Sendable {
    let port: Int
    let received = Atomic<Int>(0)
    /// Streams currently being written (drops when the gateway cancels).
    let activeStreams = Atomic<Int>(0)
    /// The headers of the last request, to check what the gateway sends upstream.
    let lastHeaders = Mutex<HTTPFields>([:])
    let lastBody = Mutex<String>("")
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    static func start() async throws -> FaultyUpstream {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let box = Mutex<FaultyUpstream?>(nil)
        let router = Router()
        router.get("/v1/models") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(string: #"{"object":"list","data":[{"id":"ok","object":"model"},{"id":"fail500","object":"model"}]}"#)))
        }
        for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
            router.post(RouterPath(path)) { request, _ in
                var request = request
                let body = try await request.collectBody(upTo: 1 << 20)
                let upstream = box.withLock { $0 }!
                upstream.received.add(1, ordering: .relaxed)
                upstream.lastHeaders.withLock { $0 = request.headers }
                upstream.lastBody.withLock { $0 = String(buffer: body) }
                return try await upstream.respond(body: String(buffer: body))
            }
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: Logger(label: "faulty-upstream", factory: { _ in SwiftLogNoOpLogHandler() }))
        let group = ServiceGroup(services: [app], logger: Logger(label: "x", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        let upstream = FaultyUpstream(port: port, group: group, task: task)
        box.withLock { $0 = upstream }
        return upstream
    }

    private init(port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.group = group
        self.task = task
    }

    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    func stop() async {
        await group.triggerGracefulShutdown()
        task.cancel()
        _ = try? await task.value
    }

    static func chunk(_ text: String) -> String {
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(text)\"}}],\"usage\":null}\n\n"
    }

    static let plainAnswer = #"{"id":"x","object":"chat.completion","model":"ok","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#

    static let errorEvent = "data: {\"error\":{\"message\":\"engine overloaded\",\"type\":\"server_error\"}}\n\n"

    static let usageChunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}\n\n"

    func respond(body: String) async throws -> Response {
        let model = (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["model"] as? String ?? ""
        let stream = body.contains("\"stream\":true")
        switch model {
        case "fail500":
            return Response(status: .internalServerError, body: .init(byteBuffer: ByteBuffer(string: "engine exploded")))
        case "hang":
            try await Task.sleep(for: .seconds(600))
            return Response(status: .ok)
        case "stream-abort":
            return sse { writer in
                try await writer.write(ByteBuffer(string: Self.chunk("a") + Self.chunk("b")))
                try await Task.sleep(for: .milliseconds(50))
                throw CancellationError()
            }
        case "stream-stall":
            return sse { writer in
                try await writer.write(ByteBuffer(string: Self.chunk("a")))
                try await Task.sleep(for: .seconds(600))
            }
        case "slow-plain":
            try await Task.sleep(for: .seconds(2))
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: Self.plainAnswer)))
        case "big":
            let filler = String(repeating: "x", count: 200 * 1024)
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"id":"x","object":"chat.completion","filler":""# + filler + #""}"#)))
        case "stream-error":
            return sse { writer in
                try await writer.write(ByteBuffer(string: Self.chunk("a")))
                try await writer.write(ByteBuffer(string: Self.errorEvent + "data: [DONE]\n\n"))
                try await writer.finish(nil)
            }
        case "stream-error-first":
            return sse { writer in
                try await writer.write(ByteBuffer(string: Self.errorEvent))
                try await writer.finish(nil)
            }
        case "stream-late":
            return sse { writer in
                try await Task.sleep(for: .milliseconds(50))
                try await writer.write(ByteBuffer(string: Self.chunk("a") + "data: [DONE]\n\n"))
                try await writer.finish(nil)
            }
        case "stream-comment-first":
            return sse { writer in
                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                try await Task.sleep(for: .seconds(1))
                try await writer.write(ByteBuffer(string: Self.chunk("a") + "data: [DONE]\n\n"))
                try await writer.finish(nil)
            }
        case "slow-stream":
            return sse { writer in
                for index in 0..<25 {
                    try await writer.write(ByteBuffer(string: Self.chunk("t\(index)")))
                    try await Task.sleep(for: .milliseconds(200))
                }
                try await writer.write(ByteBuffer(string: Self.usageChunk + "data: [DONE]\n\n"))
                try await writer.finish(nil)
            }
        default:
            if stream {
                return sse { writer in
                    for text in ["Hel", "lo", "!"] { try await writer.write(ByteBuffer(string: Self.chunk(text))) }
                    if body.contains("\"include_usage\":true") { try await writer.write(ByteBuffer(string: Self.usageChunk)) }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                }
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: Self.plainAnswer)))
        }
    }

    private func sse(_ write: @escaping @Sendable (inout any ResponseBodyWriter) async throws -> Void) -> Response {
        let active = self
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream"],
            body: ResponseBody { writer in
                active.activeStreams.add(1, ordering: .relaxed)
                defer { active.activeStreams.subtract(1, ordering: .relaxed) }
                try await write(&writer)
            })
    }
}
