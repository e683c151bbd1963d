import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 13's acceptance test for shared limits, as an operator runs it: a real PostgreSQL, the
/// identities made with the `proxima` CLI, one `proxima bench upstream` and three `proxima serve`
/// processes on the same configuration, and a round-robin client driving one key faster than its
/// limit. The three replicas together admit what one limiter would, within 5% of the limit.
@Suite(.serialized) struct ReplicaLimitTests {
    /// The `proxima` executable of this build (beside the test bundle).
    static let executable: String = {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("proxima").path
    }()

    static let urlVariable = "PROXIMA_REPLICA_TEST_DATABASE_URL"

    @Test func threeReplicasBehindRoundRobinAdmitOneLimit() async throws {
        let limit = 600
        let window = 20.0
        let workers = 6

        let server = try LocalPostgres.start()
        defer { server.remove() }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let environment = [Self.urlVariable: server.url]

        // Identities through the CLI, on the same database the gateways open.
        let database = ["--database-url-env", Self.urlVariable]
        let tenant = try await Self.run(["tenants", "create", "acme", "--model", "bench", "--requests-per-minute", String(limit)] + database, environment, in: directory)
        #expect(tenant.status == 0, "\(tenant.errors)")
        let principal = try await Self.run(["principals", "create", "acme", "load"] + database, environment, in: directory)
        #expect(principal.status == 0, "\(principal.errors)")
        let created = try await Self.run(["keys", "create", "acme", "load", "--name", "replicas"] + database, environment, in: directory)
        let token = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(created.status == 0 && token.hasPrefix("pxk_"), "\(created.errors)")

        var children: [Child] = []
        // On a failure: SIGKILL and reap at once (no waiting on the cooperative pool).
        defer { for child in children { child.kill() } }
        // The upstream answers before any gateway starts; a port taken meanwhile by another process
        // (it was free when chosen) gets another try on a new one.
        var upstreamPort = 0
        for attempt in 0..<3 {
            upstreamPort = try await onThread { try freeLoopbackPort() }
            let upstream = try Child.spawn(
                Self.executable, ["bench", "upstream", "--port", String(upstreamPort)], environment, log: directory + "/upstream-\(attempt).log")
            children.append(upstream)
            if try await Self.waitUntilAnswering(port: upstreamPort, child: upstream) { break }
            upstream.kill()
            try #require(attempt < 2, "the upstream never answered: \(upstream.logTail())")
        }

        let config = directory + "/proxima.yaml"
        try """
            data_dir: \(directory)/data
            endpoints:
              - {name: bench, url: "http://127.0.0.1:\(upstreamPort)/v1", models: [bench]}
            auth: {mode: keys}
            limits:
              leases: {replicas: 3}
            store: {kind: postgres, url_env: \(Self.urlVariable)}
            logging: {level: warning}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        var ports: [Int] = []
        let firstGateway = children.count
        for index in 0..<3 {
            let port = try await onThread { try freeLoopbackPort() }
            ports.append(port)
            children.append(
                try Child.spawn(
                    Self.executable, ["serve", "--config", config, "--port", String(port), "--log-level", "warning"], environment,
                    log: directory + "/gateway-\(index).log"))
        }
        for (index, port) in ports.enumerated() {
            try await Self.waitUntilReady(port: port, child: children[firstGateway + index])
        }

        let replicaPorts = ports
        // Round-robin over the three from a few concurrent workers, until the window closes.
        let body = #"{"model":"bench","messages":[{"role":"user","content":"hi"}],"max_tokens":8}"#
        let headers = [("authorization", "Bearer \(token)")]
        let started = Date()
        let tallies = try await withThrowingTaskGroup(of: Tally.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var tally = Tally()
                    // Each worker cycles through the three, starting at its own.
                    var turn = worker
                    while Date().timeIntervalSince(started) < window {
                        let port = replicaPorts[turn % replicaPorts.count]
                        turn += 1
                        let reply = try await TestHTTP.post("http://127.0.0.1:\(port)/v1/chat/completions", json: body, headers: headers)
                        tally.count(reply)
                    }
                    return tally
                }
            }
            return try await group.reduce(into: [Tally]()) { $0.append($1) }
        }
        let elapsed = Date().timeIntervalSince(started)
        let total = tallies.reduce(into: Tally()) { $0.merge($1) }

        // A fresh limit is a full bucket: N at once, then N per minute of the window.
        let expected = Double(limit) + Double(limit) * elapsed / 60
        let summary = "admitted \(total.admitted), refused \(total.refused) in \(String(format: "%.2f", elapsed)) s; expected \(String(format: "%.1f", expected)); other \(total.other)"
        print("ReplicaLimitTests: \(summary)")
        #expect(abs(Double(total.admitted) - expected) <= 0.05 * Double(limit), "\(summary)")
        #expect(total.refused > 0, "the client never went past the limit: \(summary)")
        #expect(total.refusedWithoutHeaders == 0, "429s without x-ratelimit-limit-requests or Retry-After: \(summary)")
        #expect(total.serverErrors == 0 && total.other.isEmpty, "\(summary)")

        // Everything started here ends here: no gateway, upstream or database process is left.
        let running = children
        children = []
        let stopping = Date()
        try await onThread { for child in running { child.stop() } }
        let stopped = Date().timeIntervalSince(stopping)
        #expect(stopped < 10, "the processes took \(stopped) s to stop after SIGTERM")
        server.remove()
        let upstreamPattern = "bench upstream --port \(upstreamPort)"
        let leftover = try await onThread { () -> [String] in
            let deadline = Date().addingTimeInterval(10)
            while true {
                let patterns = [directory, upstreamPattern, server.directory]
                let found = patterns.flatMap { Self.processes(matching: $0) }
                if found.isEmpty || Date() > deadline { return found }
                usleep(100_000)
            }
        }
        #expect(leftover.isEmpty, "processes still running for \(leftover)")
    }

    /// The answers one worker saw.
    struct Tally: Sendable {
        var admitted = 0
        var refused = 0
        var refusedWithoutHeaders = 0
        var serverErrors = 0
        var other: [Int: Int] = [:]

        mutating func count(_ reply: TestHTTP.Reply) {
            switch reply.status {
            case 200:
                admitted += 1
            case 429:
                refused += 1
                if reply.headers.first(name: "x-ratelimit-limit-requests") == nil || reply.headers.first(name: "retry-after") == nil {
                    refusedWithoutHeaders += 1
                }
            default:
                if reply.status >= 500 { serverErrors += 1 }
                other[reply.status, default: 0] += 1
            }
        }

        mutating func merge(_ tally: Tally) {
            admitted += tally.admitted
            refused += tally.refused
            refusedWithoutHeaders += tally.refusedWithoutHeaders
            serverErrors += tally.serverErrors
            other.merge(tally.other, uniquingKeysWith: +)
        }
    }

    /// Whether the upstream on `port` answers its model list within 20 s (false when it exited).
    static func waitUntilAnswering(port: Int, child: Child) async throws -> Bool {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let reply = try? await TestHTTP.get("http://127.0.0.1:\(port)/v1/models"), reply.status == 200 {
                return !child.exited()
            }
            if child.exited() { return false }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    static func waitUntilReady(port: Int, child: Child) async throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let reply = try? await TestHTTP.get("http://127.0.0.1:\(port)/readyz"), reply.status == 200 { return }
            if child.exited() {
                throw TestFailure("gateway on port \(port) exited: \(child.logTail())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("gateway on port \(port) not ready within 60 s: \(child.logTail())")
    }

    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/proxima-replicas.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
        return String(cString: made)
    }

    struct CommandResult {
        var status: Int32
        var output: String
        var errors: String
    }

    /// Runs `proxima` to its end on a thread of its own.
    static func run(_ arguments: [String], _ environment: [String: String], in directory: String) async throws -> CommandResult {
        try await onThread {
            let name = UUID().uuidString
            let output = directory + "/\(name).out"
            let errors = directory + "/\(name).err"
            defer {
                try? FileManager.default.removeItem(atPath: output)
                try? FileManager.default.removeItem(atPath: errors)
            }
            let child = try Child.spawn(executable, arguments, environment, log: errors, output: output)
            let status = child.wait()
            return CommandResult(
                status: status,
                output: (try? String(contentsOfFile: output, encoding: .utf8)) ?? "",
                errors: (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")
        }
    }

    /// The processes (`pgrep -af`: pid and command line) whose command line contains `pattern`;
    /// pgrep never lists itself.
    static func processes(matching pattern: String) -> [String] {
        let output = NSTemporaryDirectory() + "proxima-pgrep-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        guard let child = try? Child.spawn("/usr/bin/pgrep", ["-af", "--", pattern], [:], log: "/dev/null", output: output) else {
            return ["pgrep could not be run"]
        }
        _ = child.wait()
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    /// A process started with `posix_spawn` (Foundation's `Process` has missed children's exits
    /// here), its output in files. Blocking calls: use them off the cooperative pool, or briefly.
    final class Child: @unchecked Sendable {
        let pid: pid_t
        let log: String
        private let lock = NSLock()
        private var status: Int32?

        private init(pid: pid_t, log: String) {
            self.pid = pid
            self.log = log
        }

        static func spawn(_ executable: String, _ arguments: [String], _ environment: [String: String], log: String, output: String? = nil) throws -> Child {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output ?? log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            if output == nil {
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            } else {
                posix_spawn_file_actions_addopen(&actions, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            }
            let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            var variables = ProcessInfo.processInfo.environment
            for (name, value) in environment { variables[name] = value }
            let envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { for pointer in envp { free(pointer) } }
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            spawnWithDefaultSignals(&attributes)
            var pid: pid_t = 0
            let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
            guard spawned == 0 else { throw TestFailure("cannot start \(executable): error \(spawned)") }
            return Child(pid: pid, log: log)
        }

        /// Whether it has ended (reaping it when it has).
        func exited() -> Bool {
            lock.withLock {
                if status != nil { return true }
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid {
                    status = Self.decode(raw)
                    return true
                }
                return false
            }
        }

        /// Waits for its end; the exit status, or 128 + the signal that ended it.
        func wait() -> Int32 {
            lock.withLock {
                if let status { return status }
                var raw: Int32 = 0
                while waitpid(pid, &raw, 0) == -1 {
                    guard errno == EINTR else {
                        status = -1
                        return -1
                    }
                }
                status = Self.decode(raw)
                return status ?? -1
            }
        }

        /// SIGTERM, then SIGKILL after 5 s; returns when it has been reaped.
        func stop() {
            if exited() { return }
            Glibc.kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                if exited() { return }
                usleep(20_000)
            }
            kill()
        }

        /// SIGKILL and reap.
        func kill() {
            if exited() { return }
            Glibc.kill(pid, SIGKILL)
            _ = wait()
        }

        func logTail() -> String {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            return String(text.suffix(2_000))
        }

        private static func decode(_ raw: Int32) -> Int32 {
            let signal = raw & 0x7f
            return signal == 0 ? (raw >> 8) & 0xff : 128 + signal
        }
    }
}
