import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Blocking socket work on a thread of its own, off the cooperative pool (which also runs the
/// gateways' handlers: two blocked pool threads on a 2-core machine stall every test in the process).
func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// A caller on a raw TCP socket, for what an HTTP client will not send: partial heads, bytes one
/// at a time, bad framing, many connections at once. Blocking calls; use from a detached task.
final class RawCaller: @unchecked Sendable {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw TestFailure("connect: errno \(errno)")
        }
    }

    deinit { close(fd) }

    /// Sends everything; false when the gateway closed the connection meanwhile.
    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Closes with a reset (SO_LINGER 0) rather than a FIN.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Bytes read until the gateway closes the connection (or resets it), or `timeout` seconds
    /// pass; `closed` tells which.
    func readUntilClosed(timeout: Double) -> (text: String, closed: Bool) {
        // Starting with what `readAnswer` read past its answer.
        var received = pending
        pending = []
        let end = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let left = end.timeIntervalSinceNow
            if left <= 0 { return (String(decoding: received, as: UTF8.self), false) }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(max(1, left * 1000)))
            if ready <= 0 { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received += buffer[0..<count]
        }
    }

    /// One answer with a `Content-Length` (or chunked) body; nil when the connection closed first
    /// or nothing complete came within `timeout` seconds.
    func readAnswer(timeout: Double = 10) -> (status: Int, head: String, body: String)? {
        let end = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            if let answer = takeAnswer() { return answer }
            let left = end.timeIntervalSinceNow
            if left <= 0 { return nil }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, Int32(max(1, left * 1000))) <= 0 { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { return takeAnswer() }
            pending += buffer[0..<count]
        }
    }

    private var pending: [UInt8] = []

    private func takeAnswer() -> (status: Int, head: String, body: String)? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = pending.firstRange(of: separator) else { return nil }
        let head = String(decoding: pending[..<headEnd.lowerBound], as: UTF8.self)
        let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        let lines = head.lowercased().split(separator: "\r\n")
        var bodyStart = headEnd.upperBound
        if status < 200 {
            pending.removeSubrange(..<bodyStart)
            return takeAnswer()
        }
        if let line = lines.first(where: { $0.hasPrefix("content-length:") }),
            let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
        {
            guard pending.count >= bodyStart + length else { return nil }
            let body = String(decoding: pending[bodyStart..<(bodyStart + length)], as: UTF8.self)
            pending.removeSubrange(..<(bodyStart + length))
            return (status, head, body)
        }
        if lines.contains(where: { $0.hasPrefix("transfer-encoding:") && $0.contains("chunked") }) {
            var body: [UInt8] = []
            while true {
                guard let sizeEnd = pending[bodyStart...].firstRange(of: [13, 10]) else { return nil }
                let size = Int(String(decoding: pending[bodyStart..<sizeEnd.lowerBound], as: UTF8.self), radix: 16) ?? 0
                let dataStart = sizeEnd.upperBound
                guard pending.count >= dataStart + size + 2 else { return nil }
                body += pending[dataStart..<(dataStart + size)]
                bodyStart = dataStart + size + 2
                if size == 0 {
                    pending.removeSubrange(..<bodyStart)
                    return (status, head, String(decoding: body, as: UTF8.self))
                }
            }
        }
        // No length: the body runs to the close.
        return nil
    }
}
