import Foundation
import ProximaCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import ProximaGateway

/// Crawlers through a running gateway: callers on distinct loopback source addresses (127.0.0.x)
/// claim Googlebot, and the gateway proves or refutes each claim against a real DNS server
/// (dnsmasq); the class reaches the response header, the policy and the metrics.
@Suite(.serialized) struct CrawlerEdgeHTTPTests {
    static let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    static let question = #"{"model":"chat","messages":[{"role":"user","content":"What are your opening hours?"}]}"#

    /// Sends one HTTP/1.1 request from a socket bound to `source` and returns the whole answer.
    static func send(from source: String, port: Int, userAgent: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        defer { close(fd) }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestFailure("bind \(source): errno \(errno)") }
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestFailure("connect: errno \(errno)") }
        let body = question
        let request = "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nUser-Agent: \(userAgent)\r\nAccept: */*\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        let bytes = Array(request.utf8)
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw TestFailure("send: errno \(errno)") }
            offset += sent
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    static func header(_ name: String, in answer: String) -> String? {
        for line in answer.split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == name { return parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    @Test func realSpoofedAndSelfDeclaredCrawlersGetTheirClassesOverHTTP() async throws {
        let dns = try LocalDNS.start(
            hosts: ["127.0.0.2 crawl-127-0-0-2.googlebot.com"],
            pointerRecords: [(address: "127.0.0.3", name: "crawl-127-0-0-3.googlebot.com")],
            hostRecords: [(name: "crawl-127-0-0-3.googlebot.com", address: "127.0.0.99")])
        defer { dns.stop() }
        let upstream = try await FaultyUpstream.start()
        var configuration = EdgePolicyTests.configuration(upstream: upstream) { configuration in
            configuration.edge.crawlers.dnsServers = [dns.server]
            configuration.edge.crawlers.dnsTimeoutSeconds = 5
        }
        configuration.edge.policies["declared_bot"] = EdgePolicy(.rateLimit, requestsPerMinute: 1)
        let gateway = try await RunningGateway.start(configuration)
        try await gateway.run(stoppingAfter: upstream) {
            let port = gateway.port
            let real = try await onThread { try Self.send(from: "127.0.0.2", port: port, userAgent: Self.googlebot) }
            #expect(real.hasPrefix("HTTP/1.1 200"), "\(real.prefix(300))")
            #expect(Self.header("x-proxima-caller-class", in: real) == "verified_crawler")

            let spoofed = try await onThread { try Self.send(from: "127.0.0.3", port: port, userAgent: Self.googlebot) }
            #expect(spoofed.hasPrefix("HTTP/1.1 403"), "\(spoofed.prefix(300))")
            #expect(Self.header("x-proxima-caller-class", in: spoofed) == "impersonator")
            #expect(spoofed.contains("caller_blocked"))

            let unlisted = try await onThread { try Self.send(from: "127.0.0.4", port: port, userAgent: Self.googlebot) }
            #expect(unlisted.hasPrefix("HTTP/1.1 403"))

            // A bot that names itself meets the declared_bot policy: its own rate.
            for attempt in 0..<2 {
                let bot = try await onThread { try Self.send(from: "127.0.0.5", port: port, userAgent: "python-requests/2.32.3") }
                #expect(Self.header("x-proxima-caller-class", in: bot) == "declared_bot")
                #expect(bot.hasPrefix(attempt == 0 ? "HTTP/1.1 200" : "HTTP/1.1 429"), "attempt \(attempt): \(bot.prefix(200))")
            }
            // The real crawler again: answered from the verdict cache, no new lookup.
            let queries = dns.queryCount
            let again = try await onThread { try Self.send(from: "127.0.0.2", port: port, userAgent: Self.googlebot) }
            #expect(Self.header("x-proxima-caller-class", in: again) == "verified_crawler")
            #expect(dns.queryCount == queries)
            #expect(upstream.received.load(ordering: .relaxed) == 3)

            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics")
            #expect(metrics.body.contains(#"proxima_edge_requests_total{class="verified_crawler",action="allow"} 2"#))
            #expect(metrics.body.contains(#"proxima_edge_requests_total{class="impersonator",action="block"} 2"#))
            #expect(metrics.body.contains(#"proxima_edge_verification_failures_total{kind="crawler",reason="forward_mismatch"} 1"#))
            #expect(metrics.body.contains(#"proxima_edge_verification_failures_total{kind="crawler",reason="no_ptr"} 1"#))
        }
    }
}
