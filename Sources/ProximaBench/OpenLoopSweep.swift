import Foundation
import Histogram
import NIOCore
import NIOPosix

/// Sustained throughput measured open-loop: requests are due at a fixed rate whatever the answers
/// do, and each one's latency runs from the moment it was due, not from when a connection was free
/// to send it (a closed-loop tool such as wrk slows down with the server and hides that wait). The
/// rate rises step by step; the figure is the highest rate the path sustains with its p99 within a
/// limit.
///
/// Everything runs on one event loop: a ticker issues the requests due every 100 µs over a pool
/// of kept-alive connections; a request due while every connection is busy waits for the first
/// connection to free, and that wait counts in its latency.
public enum OpenLoopSweep {
    public struct Step: Codable, Sendable, Equatable {
        public var rate: Double
        public var achieved: Double
        public var completed: Int
        public var failed: Int
        /// Latency percentiles in microseconds, from when each request was due.
        public var p50: Double
        public var p99: Double
        public var p999: Double
    }

    public struct Settings: Sendable {
        public var rates: [Double]
        public var seconds: Double
        public var connections: Int
        /// A step passes when its p99 is within this and it achieved 95% of its rate.
        public var p99LimitMilliseconds: Double

        public init(rates: [Double], seconds: Double = 5, connections: Int = 128, p99LimitMilliseconds: Double = 20) {
            self.rates = rates
            self.seconds = seconds
            self.connections = connections
            self.p99LimitMilliseconds = p99LimitMilliseconds
        }
    }

    /// Whether a step sustained its rate within the latency limit.
    public static func passes(_ step: Step, limitMilliseconds: Double) -> Bool {
        step.failed == 0 && step.p99 <= limitMilliseconds * 1_000 && step.achieved >= 0.95 * step.rate
    }

    /// Runs the rates in order and stops after the first step that fails (and the one after it, in
    /// case the failure was a blip).
    public static func sweep(target: OverheadRig.Target, model: String, settings: Settings) async throws -> [Step] {
        var steps: [Step] = []
        var failures = 0
        for rate in settings.rates {
            let step = try await run(target: target, model: model, rate: rate, seconds: settings.seconds, connections: settings.connections)
            steps.append(step)
            if !passes(step, limitMilliseconds: settings.p99LimitMilliseconds) {
                failures += 1
                if failures == 2 { break }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        return steps
    }

    /// One step: `rate` requests per second for `seconds`.
    public static func run(target: OverheadRig.Target, model: String, rate: Double, seconds: Double, connections: Int) async throws -> Step {
        guard rate > 0, seconds > 0, connections > 0 else {
            throw OverheadRig.RigError(description: "a sweep step needs a positive rate, duration and connection count")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let step = try await run(on: group.next(), target: target, model: model, rate: rate, seconds: seconds, connections: connections)
            try await group.shutdownGracefully()
            return step
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func run(
        on loop: any EventLoop, target: OverheadRig.Target, model: String, rate: Double, seconds: Double, connections: Int
    ) async throws -> Step {
        let request = ByteBuffer(bytes: target.request(model: model, stream: false))
        let state = try await loop.submit { State(loop: loop, request: request, rate: rate) }.get()
        var channels: [any Channel] = []
        defer { for channel in channels { channel.close(promise: nil) } }
        for _ in 0..<connections {
            let channel = try await ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ResponseReader(state: state))
                    }
                }
                .connect(host: target.host, port: target.port).get()
            channels.append(channel)
        }
        let opened = channels
        try await loop.submit { () -> EventLoopFuture<Void> in
            state.start(channels: opened, duration: .nanoseconds(Int64(seconds * 1e9)))
            return state.done.futureResult
        }.get().get()
        return try await loop.submit { state.step() }.get()
    }

    /// The step's bookkeeping, touched only on its event loop.
    final class State: @unchecked Sendable {
        let loop: any EventLoop
        let request: ByteBuffer
        let rate: Double
        let done: EventLoopPromise<Void>
        var free: [any Channel] = []
        /// When each request still waiting for a connection was due.
        var waiting = CircularBuffer<NIODeadline>()
        /// When the request in flight on each connection was due.
        var inFlight: [ObjectIdentifier: NIODeadline] = [:]
        var start = NIODeadline.now()
        var end = NIODeadline.now()
        var issued = 0
        var completed = 0
        var failed = 0
        var lastAnswer = NIODeadline.now()
        var ticker: RepeatedTask?
        var latencies = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

        init(loop: any EventLoop, request: ByteBuffer, rate: Double) {
            self.loop = loop
            self.request = request
            self.rate = rate
            self.done = loop.makePromise()
        }

        func start(channels: [any Channel], duration: TimeAmount) {
            free = channels
            start = .now()
            end = start + duration
            let loopBound = NIOLoopBound(self, eventLoop: loop)
            ticker = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .microseconds(100)) { _ in loopBound.value.tick() }
        }

        private func tick() {
            let now = NIODeadline.now()
            // Request i is due at start + i/rate, so by `now` the first ⌊elapsed × rate⌋ + 1 are.
            let total = Int(Double((end - start).nanoseconds) / 1e9 * rate)
            let due = min(total, Int(Double((now - start).nanoseconds) / 1e9 * rate) + 1)
            while issued < due {
                let dueAt = start + .nanoseconds(Int64(Double(issued) / rate * 1e9))
                issued += 1
                if let channel = free.popLast() {
                    send(on: channel, dueAt: dueAt)
                } else {
                    waiting.append(dueAt)
                }
            }
            if now >= end {
                // Stragglers get five seconds; then whatever is still out counts as failed.
                if inFlight.isEmpty && waiting.isEmpty || now >= end + .seconds(5) {
                    ticker?.cancel()
                    failed += inFlight.count + waiting.count
                    done.succeed(())
                }
            }
        }

        private func send(on channel: any Channel, dueAt: NIODeadline) {
            inFlight[ObjectIdentifier(channel)] = dueAt
            channel.writeAndFlush(request, promise: nil)
        }

        func answered(on channel: any Channel, ok: Bool) {
            guard let dueAt = inFlight.removeValue(forKey: ObjectIdentifier(channel)) else { return }
            let now = NIODeadline.now()
            lastAnswer = now
            if ok {
                completed += 1
                latencies.record(UInt64(max(0, (now - dueAt).nanoseconds)))
            } else {
                failed += 1
            }
            if let next = waiting.popFirst() {
                send(on: channel, dueAt: next)
            } else {
                free.append(channel)
            }
        }

        func lost(_ channel: any Channel) {
            if inFlight.removeValue(forKey: ObjectIdentifier(channel)) != nil { failed += 1 }
            free.removeAll { $0 === channel }
        }

        func step() -> Step {
            let elapsed = Double((lastAnswer - start).nanoseconds) / 1e9
            return Step(
                rate: rate, achieved: elapsed > 0 ? Double(completed) / max(elapsed, Double((end - start).nanoseconds) / 1e9) : 0,
                completed: completed, failed: failed,
                p50: Double(latencies.valueAtPercentile(50)) / 1_000, p99: Double(latencies.valueAtPercentile(99)) / 1_000,
                p999: Double(latencies.valueAtPercentile(99.9)) / 1_000)
        }
    }

    /// Reads one HTTP/1.1 answer at a time (with `content-length`) and reports it to the state.
    final class ResponseReader: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let state: State
        private var buffer = ByteBuffer()

        init(state: State) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var chunk = unwrapInboundIn(data)
            buffer.writeBuffer(&chunk)
            while let (length, ok) = Self.completeResponse(in: buffer) {
                buffer.moveReaderIndex(forwardBy: length)
                state.answered(on: context.channel, ok: ok)
            }
            buffer.discardReadBytes()
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.lost(context.channel)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        /// The length of the first complete response in `buffer` and whether its status was 2xx.
        static func completeResponse(in buffer: ByteBuffer) -> (Int, Bool)? {
            buffer.withUnsafeReadableBytes { bytes -> (Int, Bool)? in
                guard bytes.count >= 16 else { return nil }
                var headerEnd: Int?
                var index = 0
                while index + 3 < bytes.count {
                    if bytes[index] == 13, bytes[index + 1] == 10, bytes[index + 2] == 13, bytes[index + 3] == 10 {
                        headerEnd = index + 4
                        break
                    }
                    index += 1
                }
                guard let headerEnd else { return nil }
                let head = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<headerEnd]), as: UTF8.self).lowercased()
                let ok = head.hasPrefix("http/1.1 2") || head.hasPrefix("http/1.0 2")
                guard let range = head.range(of: "\r\ncontent-length:") else { return (headerEnd, false) }
                let digits = head[range.upperBound...].drop { $0 == " " }.prefix { $0.isNumber }
                guard let length = Int(digits) else { return (headerEnd, false) }
                guard bytes.count >= headerEnd + length else { return nil }
                return (headerEnd + length, ok)
            }
        }
    }
}
