import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization
@testable import ProximaGateway

/// A small OpenAI-compatible upstream on a loopback port, for behaviour that a real engine cannot be
/// made to show on demand: answers that fail, hang, stall or break off mid-stream. Each request's
/// behaviour is picked by the model name it carries (the gateway passes the model through).
///
/// Models: `ok` answers normally; `fail500` answers 500; `hang` never answers; `stream-abort` sends two
/// events then drops the connection; `stream-stall` sends one event then goes silent; `slow-stream`
/// sends an event every 200 ms for 5 s; `slow-plain` answers a plain request after 2 s; `big` answers with
/// 200 KB; `stream-error` sends an event then an error event; `stream-error-first` opens with an error
/// event; `stream-late` sends its first event after 50 ms; `stream-comment-first` sends a `:` keep-alive at once and its first data 1 s later; `many-events` sends 40 events 20 ms apart (`many-events-stall`: then goes silent).
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

    static let finishChunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"

    /// A deterministic stand-in for an embeddings model: each lower-cased word adds to 16 hashed
    /// dimensions, so texts sharing most words are close and identical texts are equal.
    static func embedding(_ text: String) -> [Float] {
        var vector = [Float](repeating: 0, count: 16)
        for word in text.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }) {
            var hash: UInt64 = 1469598103934665603
            for byte in word.utf8 { hash = (hash ^ UInt64(byte)) &* 1099511628211 }
            vector[Int(hash % 16)] += 1
        }
        return vector
    }

    static let plainAnswer = #"{"id":"x","object":"chat.completion","model":"ok","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#

    static let errorEvent = "data: {\"error\":{\"message\":\"engine overloaded\",\"type\":\"server_error\"}}\n\n"

    static let usageChunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}\n\n"

    func respond(body: String) async throws -> Response {
        let model = (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["model"] as? String ?? ""
        let stream = body.contains("\"stream\":true")
        switch model {
        case "embed", "embed-slow", "embed-bad", "embed-ragged":
            if model == "embed-slow" { try await Task.sleep(for: .seconds(3)) }
            let input = (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["input"] as? String ?? ""
            // `embed-ragged`: one more dimension for inputs of odd length.
            var values = Self.embedding(input)
            if model == "embed-ragged", input.count % 2 == 1 { values.append(1) }
            let vector = model == "embed-bad" ? "[\"x\",1]" : "[" + values.map { String($0) }.joined(separator: ",") + "]"
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"# + vector + "}]}")))
        case "echo":
            // Answers with the last message's text; a stream sends it three characters per event, so a
            // secret in it arrives split across events.
            let messages = (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["messages"] as? [[String: Any]]
            let text = messages?.last?["content"] as? String ?? ""
            if stream {
                return sse { writer in
                    let characters = Array(text)
                    var start = 0
                    while start < characters.count {
                        let piece = String(characters[start..<min(start + 3, characters.count)])
                        try await writer.write(
                            ByteBuffer(
                                string: "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                                    + JSONScanner.quoted(piece) + "}}]}\n\n"))
                        start += 3
                    }
                    try await writer.write(ByteBuffer(string: Self.finishChunk + "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                }
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        string: Self.plainAnswer.replacingOccurrences(of: "\"Hello!\"", with: JSONScanner.quoted(text)))))
        case "counted":
            // Every answer differs, so a test can tell an answer from the cache from a fresh one.
            let answer = "answer \(received.load(ordering: .relaxed))"
            if stream {
                return sse { writer in
                    try await writer.write(ByteBuffer(string: Self.chunk(answer) + Self.finishChunk))
                    if body.contains("\"include_usage\":true") { try await writer.write(ByteBuffer(string: Self.usageChunk)) }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                }
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: Self.plainAnswer.replacingOccurrences(of: "Hello!", with: answer))))
        case "counted-slow":
            try await Task.sleep(for: .milliseconds(600))
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: Self.plainAnswer.replacingOccurrences(of: "Hello!", with: "slow \(received.load(ordering: .relaxed))"))))
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
        case "many-events", "many-events-stall":
            return sse { writer in
                for index in 0..<40 {
                    try await writer.write(ByteBuffer(string: Self.chunk("e\(index)")))
                    try await Task.sleep(for: .milliseconds(20))
                }
                if model == "many-events-stall" { try await Task.sleep(for: .seconds(600)) }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
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

/// An upstream that reads requests like a server and answers with raw bytes scripted per request:
/// what no well-behaved server sends (short bodies, bad chunks, unfinished or huge heads, trickles,
/// early answers, closes after reading a request). Counts what it received, per request, so tests
/// can tell a request sent once from one sent twice.
final class ScriptedUpstream: Sendable {
    enum Step: Sendable {
        /// Write these bytes at once.
        case send(String)
        /// Write these bytes one at a time, `every` apart.
        case trickle(String, every: TimeAmount)
        case pause(TimeAmount)
        /// Close the connection.
        case close
    }

    /// When a request's script starts: after the whole request, or as soon as its head arrived (an
    /// early answer, after which the connection reads nothing more).
    enum Moment: Sendable {
        case afterRequest
        case atHead
    }

    /// A keep-alive answer with a length.
    static func answer(_ body: String, status: String = "200 OK", headers: String = "") -> String {
        "HTTP/1.1 \(status)\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\(headers)\r\n\(body)"
    }

    let port: Int
    let connections = Atomic<Int>(0)
    let closedConnections = Atomic<Int>(0)
    /// Request heads read, and whole requests (head, body and end) read.
    let heads = Atomic<Int>(0)
    let requests = Atomic<Int>(0)
    private let channel: any Channel

    /// - Parameter script: the steps for the `request`-th request (from 0) on its connection.
    static func start(
        moment: Moment = .afterRequest, script: @escaping @Sendable (_ request: Int) -> [Step]
    ) async throws -> ScriptedUpstream {
        let box = Mutex<ScriptedUpstream?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                    try channel.pipeline.syncOperations.addHandler(
                        Handler(owner: { box.withLock { $0 } }, moment: moment, script: script))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let upstream = ScriptedUpstream(port: channel.localAddress?.port ?? 0, channel: channel)
        box.withLock { $0 = upstream }
        return upstream
    }

    private init(port: Int, channel: any Channel) {
        self.port = port
        self.channel = channel
    }

    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    func stop() async throws { try await channel.close() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = ByteBuffer
        let owner: @Sendable () -> ScriptedUpstream?
        let moment: Moment
        let script: @Sendable (Int) -> [Step]
        var index = 0

        init(owner: @escaping @Sendable () -> ScriptedUpstream?, moment: Moment, script: @escaping @Sendable (Int) -> [Step]) {
            self.owner = owner
            self.moment = moment
            self.script = script
        }

        func channelActive(context: ChannelHandlerContext) {
            owner()?.connections.add(1, ordering: .relaxed)
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            owner()?.closedConnections.add(1, ordering: .relaxed)
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head:
                owner()?.heads.add(1, ordering: .relaxed)
                if moment == .atHead {
                    // Answer now and read nothing more: the request's body stays unread.
                    context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
                    startScript(context: context)
                }
            case .body:
                break
            case .end:
                owner()?.requests.add(1, ordering: .relaxed)
                if moment == .afterRequest { startScript(context: context) }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        private func startScript(context: ChannelHandlerContext) {
            let steps = script(index)
            index += 1
            run(steps[...], context: context)
        }

        private func run(_ steps: ArraySlice<Step>, context: ChannelHandlerContext) {
            guard let step = steps.first, context.channel.isActive else { return }
            let rest = steps.dropFirst()
            switch step {
            case .send(let text):
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
                run(rest, context: context)
            case .trickle(let text, let every):
                guard let first = text.utf8.first else { return run(rest, context: context) }
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: [first])), promise: nil)
                let remaining = String(decoding: text.utf8.dropFirst(), as: UTF8.self)
                later(every, ArraySlice([Step.trickle(remaining, every: every)] + rest), context: context)
            case .pause(let amount):
                later(amount, rest, context: context)
            case .close:
                context.close(promise: nil)
            }
        }

        private func later(_ delay: TimeAmount, _ steps: ArraySlice<Step>, context: ChannelHandlerContext) {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: delay) {
                let (handler, context) = bound.value
                handler.run(steps, context: context)
            }
        }
    }
}
