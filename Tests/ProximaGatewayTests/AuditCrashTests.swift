import AsyncHTTPClient
import Foundation
import NIOCore
import ProximaAudit
import ProximaCore
import Synchronization
import Testing

/// The audit log's durability promise, against a real process and a real `kill -9`
/// (docs/governance.md): a request's record is on disk before the last byte of its answer leaves,
/// so after any crash the log verifies and every request a client saw answered is in it.
@Suite(.serialized) struct AuditCrashTests {
    static let binary = RealEngines.repositoryRoot + "/.build/debug/proxima"

    /// Requests answered whole (a JSON body) or to the end of their stream (`[DONE]`), by request id.
    final class Answered: Sendable {
        let ids = Mutex<Set<String>>([])
        let failed = Atomic<Int>(0)
        /// Set once the gateway was killed: clients stop asking.
        let stopped = Atomic<Bool>(false)
    }

    static func configuration(upstream: String, dataDirectory: String, port: Int) -> String {
        """
        server: { host: 127.0.0.1, port: \(port) }
        data_dir: \(dataDirectory)
        logging: { level: error }
        sites: [{ name: lab, latitude: 1, longitude: 2, jurisdiction: DE }]
        endpoints:
          - { name: ep, url: "\(upstream)", site: lab, engine: openai, models: [{ name: chat, upstream: counted }] }
        audit: { enabled: true, origin: crash-test/gateway, checkpoint_every_records: 50, checkpoint_every_seconds: 0.2 }
        """
    }

    /// One client: requests in a loop (every third streamed) until the gateway dies under it.
    /// A client of its own per round, with short deadlines: the shared test client's pool backs off
    /// after refused connections, and a dead gateway must not hold the next round for seconds.
    static func makeClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .milliseconds(100), read: .seconds(5))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    static func client(
        _ base: String, http: HTTPClient, number: Int, answered: Answered, until deadline: ContinuousClock.Instant
    ) async {
        var index = 0
        while ContinuousClock.now < deadline && !answered.stopped.load(ordering: .relaxed) {
            index += 1
            let id = "crash-\(number)-\(index)-\(UInt32.random(in: 0...UInt32.max))"
            let stream = index % 3 == 0
            let body = #"{"model":"chat","messages":[{"role":"user","content":"request \#(index)"}]\#(stream ? #","stream":true"# : "")}"#
            do {
                var request = HTTPClientRequest(url: base + "/v1/chat/completions")
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/json")
                request.headers.add(name: "x-request-id", value: id)
                request.body = .bytes(ByteBuffer(string: body))
                let response = try await http.execute(request, timeout: .seconds(5))
                let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
                let complete =
                    stream
                    ? text.hasSuffix("data: [DONE]\n\n")
                    : (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["choices"] != nil
                if response.status.code == 200 && complete {
                    answered.ids.withLock { _ = $0.insert(id) }
                } else {
                    answered.failed.add(1, ordering: .relaxed)
                }
            } catch {
                answered.failed.add(1, ordering: .relaxed)
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// Every request id in the log's request records (read from the files, as an auditor would).
    static func loggedRequestIDs(_ directory: String) throws -> Set<String> {
        var ids: Set<String> = []
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { AuditFiles.firstSeq(ofSegment: $0) != nil }
        for name in names {
            let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
            for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
                if let record = try? AuditRecord.decode(line: line), let id = record.requestID { ids.insert(id) }
            }
        }
        return ids
    }

    @Test func aHundredKillNineUnderLoadLoseNoAnsweredRequestAndTheLogVerifies() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw TestFailure("\(Self.binary) is missing; build with `swift build --build-tests`")
        }
        let rounds = Int(ProcessInfo.processInfo.environment["PROXIMA_CRASH_ROUNDS"] ?? "") ?? 100
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("proxima-crash-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let answered = Answered()
        var killedMidLoad = 0
        for round in 0..<rounds {
            let config = root + "/proxima.yaml"
            let server = try await ManagedServer.launch("proxima-crash", binary: Self.binary, arguments: { port in
                try? Self.configuration(upstream: upstream.baseURL, dataDirectory: root + "/data", port: port)
                    .write(toFile: config, atomically: true, encoding: .utf8)
                return ["serve", "--config", config]
            }, healthPath: "/healthz", startTimeout: .seconds(30), pollInterval: .milliseconds(20))
            let base = "http://127.0.0.1:\(server.port)"
            answered.stopped.store(false, ordering: .relaxed)
            // Load for a random while, then kill -9 in the middle of it.
            let loadFor = Duration.milliseconds(Int.random(in: 150...400))
            let deadline = ContinuousClock.now + loadFor + .seconds(2)
            let http = Self.makeClient()
            await withTaskGroup(of: Void.self) { group in
                for number in 0..<8 {
                    group.addTask { await Self.client(base, http: http, number: round * 100 + number, answered: answered, until: deadline) }
                }
                try? await Task.sleep(for: loadFor)
                server.crash()
                answered.stopped.store(true, ordering: .relaxed)
                if !server.process.isRunning { killedMidLoad += 1 }
                await group.waitForAll()
            }
            try await http.shutdown()
        }
        // After the last crash: the log opens (torn lines cut), verifies, and holds every answer.
        let directory = root + "/data/" + AuditSettings.defaultDirectoryName
        let restarted = try await AuditLog.open(
            directory: directory, origin: "crash-test/gateway", settings: AuditSettings(enabled: true), logger: .init(label: "crash-test"))
        let key = try NoteVerifier(verifierKey: restarted.verifierKey)
        await restarted.close()
        let report = try AuditVerifier.verify(directory: directory, keys: [key])
        #expect(report.problems.isEmpty, "\(report.problems.prefix(5))")
        #expect(report.checkpointsVerified > rounds / 2)
        let logged = try Self.loggedRequestIDs(directory)
        let seen = answered.ids.withLock { $0 }
        let missing = seen.subtracting(logged)
        #expect(killedMidLoad == rounds)
        #expect(seen.count > rounds * 10, "enough requests were answered to mean something (\(seen.count))")
        #expect(missing.isEmpty, "answered but not in the log: \(missing.prefix(5))")
    }
}
