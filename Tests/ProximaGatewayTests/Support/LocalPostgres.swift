import Foundation

/// A private PostgreSQL 15 server for one test, started with `scripts/postgres` in a directory
/// under /tmp (the script's watcher stops it if the test process dies). ``stop()`` and
/// ``start()`` again keep the port and the data, as a database that goes away and comes back.
final class LocalPostgres: Sendable {
    let directory: String
    /// `postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable`
    let url: String

    private init(directory: String, url: String) {
        self.directory = directory
        self.url = url
    }

    static func start() throws -> LocalPostgres {
        var template = Array("/tmp/proxima-pg.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Failure(message: "mkdtemp failed") }
        let directory = String(cString: made)
        let url = try script(["start", directory, "--watch", String(getpid()), "--no-fsync"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard url.hasPrefix("postgres://") else { throw Failure(message: "scripts/postgres printed '\(url)'") }
        return LocalPostgres(directory: directory, url: url)
    }

    /// Starts the stopped server again, on the same port with the same data.
    func restart() throws {
        try Self.script(["start", directory, "--watch", String(getpid()), "--no-fsync"])
    }

    func stop() throws {
        try Self.script(["stop", directory])
    }

    /// Stops the server and removes its directory.
    func remove() {
        try? stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Runs `scripts/postgres` with `posix_spawn` and `waitpid` (Foundation's `Process` has missed
    /// children's exits here and waited forever) and returns what it printed.
    @discardableResult
    static func script(_ arguments: [String]) throws -> String {
        let output = NSTemporaryDirectory() + "proxima-pg-output-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command = ([repositoryRoot + "/scripts/postgres"] + arguments).map(quoted).joined(separator: " ")
            + " >\(quoted(output)) 2>/dev/null </dev/null"
        let words = ["/bin/bash", "-c", command]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp: [UnsafeMutablePointer<CChar>?] = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        // Its watcher must see `stop`'s SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        spawnWithDefaultSignals(&attributes)
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/bash", nil, &attributes, argv, envp) == 0 else { throw Failure(message: "cannot run scripts/postgres") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw Failure(message: "waitpid failed: \(errno)") }
        }
        guard status == 0 else { throw Failure(message: "scripts/postgres \(arguments.joined(separator: " ")) failed (\(status))") }
        return (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
    }
}

/// Makes a `posix_spawn` child start with no signal blocked and SIGTERM, SIGINT and SIGPIPE at
/// their default: the test's threads block most signals, and a spawned process inherits that mask,
/// so without this a child never sees the SIGTERM that should stop it.
func spawnWithDefaultSignals(_ attributes: inout posix_spawnattr_t) {
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGPIPE] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
}
