import Foundation
import NIOCore
import NIOPosix
import ProximaCore

/// A real DNS server for one test: dnsmasq on a free loopback UDP port, answering only from its own
/// records (a hosts file gives A and PTR; `ptr_records` and `host_records` build spoofed cases), in a
/// private directory under /tmp. A small bash watcher stops it when the test process dies; ``stop()``
/// stops it at once. `--log-queries` writes every query to `queries.log` (``queryCount``).
final class LocalDNS: Sendable {
    let directory: String
    let port: Int
    private let pid: pid_t

    var server: String { "127.0.0.1:\(port)" }

    private init(directory: String, port: Int, pid: pid_t) {
        self.directory = directory
        self.port = port
        self.pid = pid
    }

    /// Starts dnsmasq with `hosts` lines (`IP name`: A and PTR), `--ptr-record=PTRNAME,TARGET` and
    /// `--host-record=NAME,IP` (A only, no PTR unless the IP has none), then waits until it answers.
    /// A start that fails (the free port taken again before dnsmasq bound it, on UDP or on TCP, which
    /// dnsmasq also binds) is retried on another port, three times in all.
    static func start(hosts: [String] = [], pointerRecords: [(address: String, name: String)] = [], hostRecords: [(name: String, address: String)] = [])
        throws -> LocalDNS
    {
        var attempt = 1
        while true {
            do {
                return try startOnce(hosts: hosts, pointerRecords: pointerRecords, hostRecords: hostRecords)
            } catch {
                if attempt == 3 { throw error }
                attempt += 1
            }
        }
    }

    private static func startOnce(hosts: [String], pointerRecords: [(address: String, name: String)], hostRecords: [(name: String, address: String)])
        throws -> LocalDNS
    {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/dnsmasq") else {
            throw LocalPostgres.Failure(message: "dnsmasq is missing: run scripts/dnsmasq install")
        }
        var template = Array("/tmp/proxima-dns.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw LocalPostgres.Failure(message: "mkdtemp failed") }
        let directory = String(cString: made)
        try (hosts.joined(separator: "\n") + "\n").write(toFile: directory + "/hosts", atomically: true, encoding: .utf8)
        var configuration = ""
        for record in pointerRecords {
            guard let address = IPAddress(record.address) else { throw LocalPostgres.Failure(message: "bad address \(record.address)") }
            configuration += "ptr-record=\(reversePointer(address)),\(record.name)\n"
        }
        for record in hostRecords { configuration += "host-record=\(record.name),\(record.address)\n" }
        try configuration.write(toFile: directory + "/records.conf", atomically: true, encoding: .utf8)
        let port = try freeUDPPort()
        let dnsmasq = [
            "/usr/sbin/dnsmasq", "-k", "--user=root", "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1", "--bind-interfaces",
            "--port=\(port)", "--addn-hosts=\(directory)/hosts", "--local=/#/", "--local-ttl=300", "--conf-file=\(directory)/records.conf",
            "--log-queries", "--log-facility=\(directory)/queries.log", "--pid-file=",
        ].map { "'" + $0 + "'" }.joined(separator: " ")
        // The watcher: dnsmasq in the background, stopped when the test process or the watcher ends.
        let script = """
            \(dnsmasq) & child=$!
            trap 'kill $child 2>/dev/null; wait $child; exit 0' TERM INT
            while kill -0 \(getpid()) 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5 & wait $!; done
            kill $child 2>/dev/null; wait $child
            """
        let words = ["/bin/bash", "-c", script]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        spawnWithDefaultSignals(&attributes)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, directory + "/dnsmasq.out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/bash", &actions, &attributes, argv, environ) == 0 else {
            throw LocalPostgres.Failure(message: "cannot start dnsmasq")
        }
        let dns = LocalDNS(directory: directory, port: port, pid: pid)
        // Ready when it answers (NXDOMAIN for a name it does not have is an answer).
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if Self.answers(port: port) { return dns }
            usleep(20_000)
        }
        let output = ((try? String(contentsOfFile: directory + "/dnsmasq.out", encoding: .utf8)) ?? "")
            + ((try? String(contentsOfFile: directory + "/queries.log", encoding: .utf8)) ?? "")
        dns.stop()
        throw LocalPostgres.Failure(message: "dnsmasq did not answer within 10 s: \(output)")
    }

    /// Stops dnsmasq (and its watcher) and removes the directory.
    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Queries dnsmasq has logged (`query[...]` lines), not counting the readiness probes.
    var queryCount: Int {
        let log = (try? String(contentsOfFile: directory + "/queries.log", encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { $0.contains("query[") && !$0.contains("ready.test") }.count
    }

    static func reversePointer(_ address: IPAddress) -> String {
        let value = UInt32(truncatingIfNeeded: address.low)
        return "\(value & 0xFF).\(value >> 8 & 0xFF).\(value >> 16 & 0xFF).\(value >> 24).in-addr.arpa"
    }

    /// A loopback UDP port free a moment ago.
    static func freeUDPPort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw LocalPostgres.Failure(message: "socket failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        guard bound == 0 else { throw LocalPostgres.Failure(message: "bind failed") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw LocalPostgres.Failure(message: "getsockname failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether a DNS server on the port answers a query for `ready.test` within 0.2 s.
    static func answers(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        // id 0x0101, RD, one question: ready.test A IN.
        let query: [UInt8] = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5] + Array("ready".utf8) + [4] + Array("test".utf8) + [0, 0, 1, 0, 1]
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(descriptor, query, query.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard sent == query.count else { return false }
        var buffer = [UInt8](repeating: 0, count: 512)
        return recv(descriptor, &buffer, buffer.count, 0) > 0
    }
}

/// A UDP socket on loopback that never reads: a DNS server that does not answer.
final class SilentUDPServer: Sendable {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw LocalPostgres.Failure(message: "socket failed") }
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    var server: String { "127.0.0.1:\(port)" }

    func close() { _ = Glibc.close(descriptor) }
}
