import Foundation
import Synchronization

/// A real PostgreSQL 15 server started with `scripts/postgres` in a directory under /tmp. The
/// shared one starts at the first test that needs it and stops when the test process exits
/// (an `atexit` handler; the script's watcher stops it too if the process is killed). Tests that
/// stop their server on purpose start a private one.
final class TestPostgres: Sendable {
    let directory: String
    /// `postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable`
    let url: String

    private init(directory: String, url: String) {
        self.directory = directory
        self.url = url
    }

    /// The URL of database `name` on this server.
    func url(database name: String) -> String {
        url.replacingOccurrences(of: "/postgres?", with: "/\(name)?")
    }

    /// The server shared by every test of the process.
    static func shared() async throws -> TestPostgres {
        try await SharedServer.instance.server()
    }

    /// A server of the caller's own; stop it with ``stop()``.
    static func start() async throws -> TestPostgres {
        _ = registerExitHandler
        let directory = try makeDirectory()
        let output = try await script(["start", directory, "--watch", String(getpid()), "--no-fsync"])
        let url = output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard url.hasPrefix("postgres://") else { throw Failure(message: "scripts/postgres printed '\(output)'") }
        started.withLock { $0.append(directory) }
        return TestPostgres(directory: directory, url: url)
    }

    func stop() async throws {
        _ = try await Self.script(["stop", directory])
    }

    /// Starts this server again, on the port it had.
    func restart() async throws {
        _ = try await Self.script(["start", directory, "--no-fsync"])
    }

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// The repository's root, from this file's place in it.
    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Runs `scripts/postgres` and returns what it printed.
    @discardableResult
    static func script(_ arguments: [String]) async throws -> String {
        try check(try await Subprocess.run("/bin/bash", [repositoryRoot + "/scripts/postgres"] + arguments), arguments)
    }

    private static func check(_ result: Subprocess.Result, _ arguments: [String]) throws -> String {
        guard result.status == 0 else {
            throw Failure(message: "scripts/postgres \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.errors)")
        }
        return result.output
    }

    static func makeDirectory() throws -> String {
        var template = Array("/tmp/proxima-pg.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Failure(message: "mkdtemp failed") }
        return String(cString: made)
    }

    /// Every directory a server was started in, stopped and removed at exit.
    static let started = Mutex<[String]>([])
    private static let registerExitHandler: Void = {
        atexit {
            let directories = TestPostgres.started.withLock { directories in
                defer { directories.removeAll() }
                return directories
            }
            for directory in directories {
                _ = try? Subprocess.runBlocking("/bin/bash", [repositoryRoot + "/scripts/postgres", "stop", directory])
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
    }()

    private actor SharedServer {
        static let instance = SharedServer()
        /// One start for every caller, also those that ask while it is under way.
        private var starting: Task<TestPostgres, any Error>?

        func server() async throws -> TestPostgres {
            if let starting { return try await starting.value }
            let task = Task { try await TestPostgres.start() }
            starting = task
            return try await task.value
        }
    }
}
