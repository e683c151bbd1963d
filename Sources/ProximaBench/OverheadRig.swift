#if canImport(Glibc)
import Glibc
#endif
import AsyncHTTPClient
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import ProximaCore

/// What a proxy adds on top of a fast upstream: latency of one request at a time over a kept-alive
/// connection, and what happens to many concurrent SSE streams (stalls, time added per chunk, the
/// proxy's memory). Targets are measured in alternation so that drifts of a shared machine fall on
/// all of them alike.
public enum OverheadRig {
    /// One path to measure: a base URL like `http://127.0.0.1:18181/v1`, an optional bearer key, and
    /// the PID whose memory to watch.
    public struct Target: Sendable {
        public var name: String
        public var host: String
        public var port: Int
        public var basePath: String
        public var bearer: String?
        public var pid: Int32?
        /// Bytes of filler appended to the prompt, to measure what the gateway's work on a long
        /// prompt (prefix hashing of its canonical form) costs.
        public var promptPadding = 0

        public init(name: String, url: String, bearer: String? = nil, pid: Int32? = nil) throws {
            guard let parsed = URL(string: url), parsed.scheme == "http", let host = parsed.host else {
                throw RigError(description: "target \(name): '\(url)' is not an http:// URL")
            }
            self.name = name
            self.host = host
            self.port = parsed.port ?? 80
            self.basePath = parsed.path.hasSuffix("/") ? String(parsed.path.dropLast()) : parsed.path
            self.bearer = bearer
            self.pid = pid
        }

        func request(model: String, stream: Bool) -> [UInt8] {
            let filler = String(repeating: " Fleet context.", count: promptPadding / 15)
            let body = #"{"model":""# + model + #"","messages":[{"role":"user","content":"Say hello."# + filler + #""}],"max_tokens":16"#
                + (stream ? #","stream":true}"# : "}")
            var head = "POST \(basePath)/chat/completions HTTP/1.1\r\nHost: \(host):\(port)\r\ncontent-type: application/json\r\n"
            if let bearer { head += "authorization: Bearer \(bearer)\r\n" }
            head += "content-length: \(body.utf8.count)\r\n\r\n"
            return Array((head + body).utf8)
        }
    }

    public struct RigError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Latency percentiles in microseconds.
    public struct Percentiles: Codable, Sendable {
        public var count: Int
        public var p50: Double
        public var p99: Double
        public var p999: Double
        public var mean: Double

        init(_ histogram: Histogram<UInt64>) {
            count = Int(histogram.totalCount)
            mean = histogram.mean / 1_000
            p50 = Double(histogram.valueAtPercentile(50)) / 1_000
            p99 = Double(histogram.valueAtPercentile(99)) / 1_000
            p999 = Double(histogram.valueAtPercentile(99.9)) / 1_000
        }
    }

    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    }

    // MARK: one request at a time

    /// Sends `requests` plain requests one after another on one kept-alive connection per target,
    /// `rounds` times in alternation (after `warmup` unmeasured ones), and returns each target's
    /// latency percentiles.
    public static func latency(
        targets: [Target], model: String, requests: Int, rounds: Int, warmup: Int = 200
    ) throws -> [String: Percentiles] {
        var connections = try targets.map { try BlockingConnection(host: $0.host, port: $0.port) }
        var histograms = targets.map { _ in histogram() }
        let payloads = targets.map { $0.request(model: model, stream: false) }
        for index in targets.indices {
            for _ in 0..<warmup {
                do {
                    _ = try connections[index].roundTrip(payloads[index], target: targets[index].name)
                } catch is ConnectionClosed {
                    connections[index] = try BlockingConnection(host: targets[index].host, port: targets[index].port)
                }
            }
        }
        for _ in 0..<rounds {
            for index in targets.indices {
                for _ in 0..<requests {
                    let started = DispatchTime.now().uptimeNanoseconds
                    do {
                        _ = try connections[index].roundTrip(payloads[index], target: targets[index].name)
                    } catch is ConnectionClosed {
                        // The server ended the kept-alive connection (a request limit): open another, send again.
                        connections[index] = try BlockingConnection(host: targets[index].host, port: targets[index].port)
                        _ = try connections[index].roundTrip(payloads[index], target: targets[index].name)
                    }
                    _ = histograms[index].record(DispatchTime.now().uptimeNanoseconds - started)
                }
            }
        }
        var result: [String: Percentiles] = [:]
        for (index, target) in targets.enumerated() { result[target.name] = Percentiles(histograms[index]) }
        return result
    }

    struct ConnectionClosed: Error {}

    /// A plain blocking HTTP/1.1 client connection: the least a measuring client can add.
    struct BlockingConnection {
        let descriptor: Int32
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var pending: [UInt8] = []

        init(host: String, port: Int) throws {
            descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw RigError(description: "socket: \(errno)") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { throw RigError(description: "cannot connect to \(host):\(port) (errno \(errno))") }
            var one: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }

        /// Sends a request and reads the whole response; returns its status.
        mutating func roundTrip(_ request: [UInt8], target: String) throws -> Int {
            var sent = 0
            while sent < request.count {
                let count = request[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard count > 0 else { throw ConnectionClosed() }
                sent += count
            }
            // Head.
            var headEnd: Int?
            while headEnd == nil {
                headEnd = Self.find([13, 10, 13, 10], in: pending)
                if headEnd == nil { try fill(target) }
            }
            let head = String(decoding: pending[..<headEnd!], as: UTF8.self).lowercased()
            pending.removeFirst(headEnd! + 4)
            let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
            if let range = head.range(of: "content-length:") {
                let digits = head[range.upperBound...].drop { $0 == " " }.prefix { $0.isNumber }
                let length = Int(digits) ?? 0
                while pending.count < length { try fill(target) }
                pending.removeFirst(length)
            } else if head.contains("transfer-encoding: chunked") {
                while true {
                    var lineEnd = Self.find([13, 10], in: pending)
                    while lineEnd == nil {
                        try fill(target)
                        lineEnd = Self.find([13, 10], in: pending)
                    }
                    let size = Int(String(decoding: pending[..<lineEnd!], as: UTF8.self).split(separator: ";")[0], radix: 16) ?? 0
                    while pending.count < lineEnd! + 2 + size + 2 { try fill(target) }
                    pending.removeFirst(lineEnd! + 2 + size + 2)
                    if size == 0 { break }
                }
            }
            return status
        }

        private mutating func fill(_ target: String) throws {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else {
                close(descriptor)
                throw ConnectionClosed()
            }
            pending.append(contentsOf: buffer[0..<count])
        }

        static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
            guard haystack.count >= needle.count else { return nil }
            for index in 0...(haystack.count - needle.count) where haystack[index] == needle[0] {
                if haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            }
            return nil
        }
    }

    // MARK: many streams at once

    /// What `streams` concurrent SSE streams saw through one target.
    public struct StreamResult: Codable, Sendable {
        public var streams: Int
        public var completed: Int
        public var failed: Int
        /// Streams with at least one gap between events beyond the pacing plus 50 ms.
        public var stalled: Int
        /// Events read over all streams.
        public var events: Int
        /// Time from the upstream sending a chunk to the client reading it, in microseconds (empty
        /// when the path rewrites events and drops the upstream's send time).
        public var chunkDelay: Percentiles
        /// Peak resident memory of the target's process while the streams ran, in MiB.
        public var peakRSSMiB: Double?
        public var seconds: Double
    }

    /// Opens `streams` streaming requests through `target` (at most `openPerSecond` new connections a
    /// second), reads every event, and reports stalls, per-chunk delay and the target's peak memory.
    public static func streams(
        target: Target, model: String, streams: Int, pacing: Double, openPerSecond: Int = 2_000, timeout: Double = 120
    ) async throws -> StreamResult {
        raiseOpenFileLimit()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let tally = StreamTally(pacingMicroseconds: Int64(pacing * 1_000_000), loop: loop)
        let request = target.request(model: model, stream: true)
        let started = ContinuousClock.now
        let initial: Double? = target.pid.flatMap(residentMiB)
        let pid = target.pid
        let watcher = Task {
            var highest = initial
            while !Task.isCancelled {
                if let pid, let now = residentMiB(pid) { highest = max(highest ?? 0, now) }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return highest
        }
        var opened = 0
        while opened < streams {
            let batch = min(streams - opened, max(1, openPerSecond / 10))
            for _ in 0..<batch {
                ClientBootstrap(group: loop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.pipeline.addHandler(StreamClientHandler(request: request, tally: tally))
                    }
                    .connect(host: target.host, port: target.port)
                    .whenFailure { _ in tally.fail() }
            }
            opened += batch
            try await Task.sleep(for: .milliseconds(100))
        }
        while try await loop.submit({ tally.completed + tally.failed }).get() < streams, (ContinuousClock.now - started) < .seconds(clampedSeconds: timeout) {
            try await Task.sleep(for: .milliseconds(100))
        }
        watcher.cancel()
        let peak = await watcher.value
        let seconds = (ContinuousClock.now - started).seconds
        defer { group.shutdownGracefully { _ in } }
        return try await loop.submit {
            StreamResult(
                streams: streams, completed: tally.completed, failed: streams - tally.completed, stalled: tally.stalled, events: tally.events,
                chunkDelay: Percentiles(tally.delays), peakRSSMiB: peak, seconds: seconds)
        }.get()
    }

    /// Resident memory of a process in MiB, from /proc.
    /// Proxima's own overhead histogram from its `/metrics`: the sum in seconds and the count.
    public static func gatewayOverhead(metricsURL: String) async throws -> (sum: Double, count: Double) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: metricsURL), timeout: .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 16 << 20))
        func value(_ name: String) -> Double {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
        return (value("proxima_gateway_overhead_seconds_sum"), value("proxima_gateway_overhead_seconds_count"))
    }

    public static func residentMiB(_ pid: Int32) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kilobytes = line.split(separator: " ").compactMap { Double($0) }.first
            return kilobytes.map { $0 / 1_024 }
        }
        return nil
    }

    public static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// Counts of all streams, touched only on their one event loop.
    final class StreamTally: @unchecked Sendable {
        let pacingMicroseconds: Int64
        let loop: any EventLoop
        var completed = 0
        var failed = 0
        var stalled = 0
        var delays = OverheadRig.histogram()
        var events = 0

        init(pacingMicroseconds: Int64, loop: any EventLoop) {
            self.pacingMicroseconds = pacingMicroseconds
            self.loop = loop
        }

        func fail() {
            loop.execute { self.failed += 1 }
        }
    }

    /// Sends one streaming request on raw TCP and reads its SSE events (HTTP/1.1, chunked or not).
    final class StreamClientHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let request: [UInt8]
        let tally: StreamTally
        private var lastEvent: Int64?
        private var sawStall = false
        private var done = false
        private var carry: [UInt8] = []

        init(request: [UInt8], tally: StreamTally) {
            self.request = request
            self.tally = tally
        }

        func channelActive(context: ChannelHandlerContext) {
            var buffer = context.channel.allocator.buffer(capacity: request.count)
            buffer.writeBytes(request)
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            carry.append(contentsOf: buffer.readableBytesView)
            let now = FastUpstream.wallMicroseconds()
            // Every `data:` line is one event; those carrying `"sent_us":` (the upstream's send time,
            // kept by proxies that pass events through unchanged) also give the path's delay.
            let data = Array("data:".utf8)
            let key = Array(#""sent_us":"#.utf8)
            var index = 0
            var consumed = 0
            while index + data.count < carry.count {
                guard carry[index] == data[0], carry[index..<(index + data.count)].elementsEqual(data) else {
                    index += 1
                    continue
                }
                // An event is complete once its blank line has arrived.
                guard let end = BlockingConnection.find([10, 10], in: Array(carry[index...])) else { break }
                let event = carry[index..<(index + end)]
                if let position = BlockingConnection.find(key, in: Array(event)) {
                    var cursor = event.startIndex + position + key.count
                    var value: Int64 = 0
                    while cursor < event.endIndex, event[cursor] >= 0x30, event[cursor] <= 0x39 {
                        value = value * 10 + Int64(event[cursor] - 0x30)
                        cursor += 1
                    }
                    _ = tally.delays.record(UInt64(max(0, now - value)) * 1_000)
                }
                if let lastEvent, now - lastEvent > tally.pacingMicroseconds + 50_000 { sawStall = true }
                lastEvent = now
                tally.events += 1
                index += end + 2
                consumed = index
            }
            if Self.contains(Array("[DONE]".utf8), in: carry) {
                finish(context: context, succeeded: true)
                return
            }
            if consumed > 0 { carry.removeFirst(consumed) }
            if carry.count > 4_096 { carry.removeFirst(carry.count - 4_096) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            finish(context: context, succeeded: false)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            finish(context: context, succeeded: false)
            context.close(promise: nil)
        }

        private func finish(context: ChannelHandlerContext, succeeded: Bool) {
            guard !done else { return }
            done = true
            if succeeded {
                tally.completed += 1
                if sawStall { tally.stalled += 1 }
                context.close(promise: nil)
            } else {
                tally.failed += 1
            }
        }

        static func contains(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
            BlockingConnection.find(needle, in: haystack) != nil
        }
    }
}
