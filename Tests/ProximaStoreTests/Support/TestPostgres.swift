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
    static func start() throws -> TestPostgres {
        _ = registerExitHandler
        let directory = try makeDirectory()
        let output = try script(["start", directory, "--watch", String(getpid()), "--no-fsync"])
        let url = output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard url.hasPrefix("postgres://") else { throw Failure(message: "scripts/postgres printed '\(output)'") }
        started.withLock { $0.append(directory) }
        return TestPostgres(directory: directory, url: url)
    }

    func stop() throws {
        _ = try Self.script(["stop", directory])
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

    /// Runs `scripts/postgres` and returns what it printed. Spawned and awaited with
    /// `posix_spawn` and `waitpid`: Foundation's `Process` missed the exit of children started from
    /// two threads at once here and waited forever.
    @discardableResult
    static func script(_ arguments: [String]) throws -> String {
        let directory = try makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command =
            ([repositoryRoot + "/scripts/postgres"] + arguments).map(quoted).joined(separator: " ")
            + " >\(quoted(directory + "/out")) 2>\(quoted(directory + "/err")) </dev/null"
        let words: [String] = ["/bin/bash", "-c", command]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/bash", nil, nil, argv, environ)
        guard spawned == 0 else { throw Failure(message: "cannot start scripts/postgres: error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw Failure(message: "waitpid failed: \(errno)") }
        }
        let output = (try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? ""
        let errors = (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? ""
        // Exited normally with status 0: the low 7 bits hold the signal, the next 8 the status.
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw Failure(message: "scripts/postgres \(arguments.joined(separator: " ")) failed (wait status \(status)): \(errors)")
        }
        return output
    }

    private static func makeDirectory() throws -> String {
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
                _ = try? TestPostgres.script(["stop", directory])
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
    }()

    private actor SharedServer {
        static let instance = SharedServer()
        private var running: TestPostgres?

        func server() throws -> TestPostgres {
            if let running { return running }
            let server = try TestPostgres.start()
            running = server
            return server
        }
    }
}
