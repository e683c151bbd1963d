import Glibc
import NIOCore
import Testing
@testable import ProximaBench

/// The rig's fast upstream and its measuring clients, against each other on loopback.
@Suite struct OverheadRigTests {
    @Test func theUpstreamAnswersPlainAndStreamedRequestsAndTheRigReadsBoth() async throws {
        let upstream = try await FastUpstream(settings: .init(port: 0, chunks: 4, pacing: .milliseconds(20)))
        let target = try OverheadRig.Target(name: "direct", url: "http://127.0.0.1:\(upstream.port)/v1", pid: getpid())
        let latency = try OverheadRig.latency(targets: [target], model: "bench", requests: 50, rounds: 2, warmup: 5)
        #expect(latency["direct"]?.count == 100)
        #expect((latency["direct"]?.p50 ?? 0) > 0)
        let streams = try await OverheadRig.streams(target: target, model: "bench", streams: 40, pacing: 0.02)
        #expect(streams.completed == 40 && streams.failed == 0)
        #expect(streams.chunkDelay.count == 40 * 4 && streams.events == 40 * 6, "four paced events with send times, the usage event and [DONE] each")
        #expect((streams.peakRSSMiB ?? 0) > 1, "the rig reads a process's memory from /proc")
        try await upstream.shutdown()
    }

    @Test func targetsMustBePlainHTTPURLs() throws {
        for bad in ["https://127.0.0.1:8080/v1", "127.0.0.1:8080", "", "ftp://host/v1"] {
            #expect(throws: OverheadRig.RigError.self, "\(bad)") { try OverheadRig.Target(name: "x", url: bad) }
        }
        let target = try OverheadRig.Target(name: "x", url: "http://127.0.0.1:18181/v1/")
        #expect(target.port == 18181 && target.basePath == "/v1")
    }

    @Test func aClosedPortIsAClearErrorNotACrash() {
        #expect(throws: OverheadRig.RigError.self) {
            _ = try OverheadRig.latency(
                targets: [try OverheadRig.Target(name: "direct", url: "http://127.0.0.1:1/v1")], model: "bench", requests: 1, rounds: 1)
        }
    }

    @Test func streamRequestsAreRecognisedWhateverTheSpacing() {
        for body in [#"{"stream":true}"#, #"{"model":"m", "stream" : true}"#, #"{"stream": true, "x": 1}"#] {
            #expect(FastUpstream.mentionsStreamTrue(Array(body.utf8)), "\(body)")
        }
        for body in [#"{"stream":false}"#, #"{"model":"stream true"}"#, "{}"] {
            #expect(!FastUpstream.mentionsStreamTrue(Array(body.utf8)), "\(body)")
        }
    }
}

/// The open-loop sweep against the fast upstream on loopback.
@Suite struct OpenLoopSweepTests {
    @Test func aModestRateIsSustainedAndEveryRequestAnswered() async throws {
        let upstream = try await FastUpstream(settings: .init(port: 0, chunks: 4, pacing: .milliseconds(20)))
        let target = try OverheadRig.Target(name: "direct", url: "http://127.0.0.1:\(upstream.port)/v1")
        let step = try await OpenLoopSweep.run(target: target, model: "bench", rate: 400, seconds: 0.5, connections: 8)
        #expect(step.completed == 200 && step.failed == 0)
        #expect(step.achieved > 350 && step.achieved <= 401)
        #expect(step.p50 > 0 && step.p99 >= step.p50)
        #expect(OpenLoopSweep.passes(step, limitMilliseconds: 1_000))
        try await upstream.shutdown()
    }

    @Test func aRequestDueWhileEveryConnectionIsBusyWaitsAndTheWaitCounts() async throws {
        // One connection offered 100,000 requests/s: far more than one loopback connection answers
        // one at a time, so the requests queue and their latency (from when they were due) grows
        // far beyond one answer's time.
        let upstream = try await FastUpstream(settings: .init(port: 0))
        let target = try OverheadRig.Target(name: "direct", url: "http://127.0.0.1:\(upstream.port)/v1")
        let step = try await OpenLoopSweep.run(target: target, model: "bench", rate: 100_000, seconds: 0.1, connections: 1)
        #expect(!OpenLoopSweep.passes(step, limitMilliseconds: 20))
        #expect(step.achieved < 0.95 * 100_000)
        #expect(step.p99 > 20_000, "the last requests waited for the one connection")
        try await upstream.shutdown()
    }

    @Test func aStepWithoutRateTimeOrConnectionsIsRefused() async throws {
        let target = try OverheadRig.Target(name: "direct", url: "http://127.0.0.1:1/v1")
        for (rate, seconds, connections) in [(0.0, 1.0, 1), (10, 0, 1), (10, 1, 0), (-5, 1, 1)] {
            await #expect(throws: OverheadRig.RigError.self) {
                _ = try await OpenLoopSweep.run(target: target, model: "bench", rate: rate, seconds: seconds, connections: connections)
            }
        }
    }

    @Test func responsesAreFramedByContentLength() {
        let whole = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
        #expect(OpenLoopSweep.ResponseReader.completeResponse(in: ByteBuffer(string: whole))! == (whole.utf8.count, true))
        #expect(OpenLoopSweep.ResponseReader.completeResponse(in: ByteBuffer(string: String(whole.dropLast()))) == nil)
        #expect(OpenLoopSweep.ResponseReader.completeResponse(in: ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Len")) == nil)
        let failed = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}"
        #expect(OpenLoopSweep.ResponseReader.completeResponse(in: ByteBuffer(string: failed))! == (failed.utf8.count, false))
    }
}
