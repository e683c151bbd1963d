import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ProximaCore
import ServiceLifecycle
import Synchronization
import Testing
@testable import ProximaBench

/// A streaming OpenAI-style upstream on a loopback port that answers every chat request with
/// exactly `max_tokens` content events 2 ms apart, and records the client-location headers.
final class PacedUpstream: Sendable {
    let port: Int
    private let log: LocationLog
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    static func start() async throws -> PacedUpstream {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let shared = LocationLog()
        let router = Router()
        router.post("/v1/chat/completions") { request, _ in
            var request = request
            let body = String(buffer: try await request.collectBody(upTo: 16 << 20))
            let location = request.headers[HTTPField.Name("x-proxima-client-location")!] ?? ""
            shared.append(location)
            let maxTokens = Int(body.split(separator: "\"max_tokens\":").last?.prefix { $0.isNumber } ?? "1") ?? 1
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream"],
                body: ResponseBody { writer in
                    for index in 0..<maxTokens {
                        try await writer.write(ByteBuffer(string: "data: {\"choices\":[{\"delta\":{\"content\":\"t\(index)\"}}]}\n\n"))
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    try await writer.write(
                        ByteBuffer(string: "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":\(maxTokens)}}\n\ndata: [DONE]\n\n"))
                    try await writer.finish(nil)
                })
        }
        let quiet = Logger(label: "paced", factory: { _ in SwiftLogNoOpLogHandler() })
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
        return PacedUpstream(port: port, log: shared, group: group, task: task)
    }

    private init(port: Int, log: LocationLog, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.log = log
        self.group = group
        self.task = task
    }

    var receivedLocations: [String] { log.all() }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

/// The client locations an upstream was told.
final class LocationLog: Sendable {
    private let locations = Mutex<[String]>([])
    func append(_ value: String) { locations.withLock { $0.append(value) } }
    func all() -> [String] { locations.withLock { $0 } }
}

@Suite struct LoadGeneratorTests {
    @Test func replaysAPlanOpenLoopAndMeasuresEveryRequest() async throws {
        let upstream = try await PacedUpstream.start()
        let metros = Array(Metro.world.prefix(3))
        let trace = Trace(name: "t", requests: (0..<30).map { TraceRequest(time: Double($0) * 0.02, inputTokens: 50, outputTokens: 8) })
        let plan = LoadPlan(trace: trace, metros: metros)
        let generator = LoadGenerator(settings: .init(baseURL: "http://127.0.0.1:\(upstream.port)/v1", model: "m"))
        let outcomes = await generator.run(plan)
        await upstream.stop()

        #expect(outcomes.count == 30)
        #expect(outcomes.allSatisfy { $0.error == nil })
        #expect(outcomes.allSatisfy { $0.outputTokens == 8 })
        #expect(outcomes.allSatisfy { ($0.timeToFirstToken ?? 1) < $0.endToEnd })
        let locations = Set(upstream.receivedLocations)
        #expect(locations.isSubset(of: Set(metros.map { "\($0.location.latitude),\($0.location.longitude)" })))
        #expect(generator.progress.completed == 30)
        let report = LoadReport(target: "t", workload: "w", outcomes: outcomes, metros: metros, wallSeconds: 1)
        #expect(report.overall.timePerOutputToken.p50 > 1)
    }

    @Test func recordsFailuresByKind() async throws {
        let closed = LoadGenerator(settings: .init(baseURL: "http://127.0.0.1:1/v1", model: "m"))
        let plan = LoadPlan(trace: Trace(name: "t", requests: [TraceRequest(time: 0, inputTokens: 1, outputTokens: 1)]), metros: Metro.world)
        let outcomes = await closed.run(plan)
        #expect(outcomes.map(\.error) == ["transport"])
    }
}
