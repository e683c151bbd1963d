import Foundation

/// Runs a program to its end and returns its exit status and output. Spawned and awaited with
/// `posix_spawn` and `waitpid`: Foundation's `Process` missed the exit of children started from
/// two threads at once here and waited forever.
enum Subprocess {
    struct Result {
        /// The exit status, or 128 + the signal that ended it.
        var status: Int32
        var output: String
        var errors: String
    }

    /// Runs the program on a thread of its own, so that waiting for it never holds one of the few
    /// threads Swift's tasks run on (two on this machine): tests that block those stall every other.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Swift.Result { try runBlocking(executable, arguments, environment: environment) })
            }
            thread.start()
        }
    }

    /// Runs the program and waits for it on the calling thread.
    static func runBlocking(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> Result {
        let directory = try TestPostgres.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command =
            ([executable] + arguments).map(quoted).joined(separator: " ")
            + " >\(quoted(directory + "/out")) 2>\(quoted(directory + "/err")) </dev/null"
        let words: [String] = ["/bin/bash", "-c", command]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var variables = ProcessInfo.processInfo.environment
        for (name, value) in extra { variables[name] = value }
        let envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/bash", nil, nil, argv, envp)
        guard spawned == 0 else { throw TestPostgres.Failure(message: "cannot start \(executable): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw TestPostgres.Failure(message: "waitpid failed: \(errno)") }
        }
        let output = (try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? ""
        let errors = (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? ""
        // The low 7 bits hold the signal that ended it, the next 8 its exit status.
        let signal = status & 0x7f
        return Result(status: signal == 0 ? (status >> 8) & 0xff : 128 + signal, output: output, errors: errors)
    }
}
