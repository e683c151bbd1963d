import Foundation
import Logging
import Testing
@testable import ProximaGateway

#if canImport(Glibc)
import Glibc
#endif

/// Logging never blocks the request path: lines go to a bounded buffer written by a thread of its own.
@Suite struct LogWriterTests {
    @Test func aStalledReaderDropsLinesInsteadOfBlockingTheWriter() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let writer = LogWriter(descriptor: fds[1], capacityBytes: 64 * 1024)
        // Nobody reads the pipe: once its 64 KB kernel buffer and the writer's 64 KB are full, a
        // blocking logger would hang here for good.
        let line = String(repeating: "x", count: 99) + "\n"
        for _ in 0..<10_000 { writer.write(line) }
        #expect(writer.droppedLines > 0, "lines beyond the buffer are dropped and counted")
        // A reader that catches up gets whole lines and the count of those dropped.
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let flags = fcntl(fds[0], F_GETFL)
        _ = fcntl(fds[0], F_SETFL, flags | O_NONBLOCK)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let count = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if count > 0 { received += buffer[0..<count] } else { usleep(10_000) }
            if String(decoding: received, as: UTF8.self).contains("could not keep up\n") { break }
        }
        let text = String(decoding: received, as: UTF8.self)
        #expect(text.contains("lines dropped, the log's reader could not keep up"))
        // Every line read whole; the read may stop inside a later batch, so the piece after the last
        // newline is not a line yet.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.allSatisfy { $0.count == 99 || $0.hasPrefix("log: ") })
    }
}

@Suite struct TextLogHandlerTests {
    /// Text from outside (an upstream's error text, a caller's header) stays on one line and cannot
    /// pass for more `key=value` pairs.
    @Test func aTextLogLineStaysOneLineWhateverItCarries() {
        var handler = TextLogHandler(label: "gateway")
        handler.metadata = ["endpoint": "ep0"]
        let upstreamText = "engine exploded\r\n2030-01-01T00:00:00Z critical gateway: forged line\u{1B}[31m\u{2028}end\ttab"
        let event = LogEvent(
            level: .warning, message: "upstream failed: \(upstreamText)",
            metadata: ["reason": .string(upstreamText), "status": "502", "empty": ""], source: nil, file: #fileID, function: #function,
            line: #line)
        let line = handler.line(for: event)
        #expect(line.hasSuffix("\n"))
        #expect(line.dropLast().allSatisfy { !$0.isNewline }, "\(line)")
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || $0.value == 0x1B || $0.value == 0x2028 })
        #expect(line.contains(#"upstream failed: engine exploded\r\n2030-01-01T00:00:00Z critical gateway: forged line\u{1B}[31m\u{2028}end\ttab"#))
        #expect(line.contains(#" reason="engine exploded\r\n2030-01-01T00:00:00Z critical gateway: forged line\u{1B}[31m\u{2028}end\ttab""#))
        #expect(line.contains(" status=502") && line.contains(" endpoint=ep0") && line.contains(#" empty="""#))
        #expect(TextLogHandler.value(#"a="b" c=d"#) == #""a=\"b\" c=d""#)
    }
}

@Suite struct LogTimestampTests {
    @Test func formatsUTCWithMilliseconds() {
        #expect(LogTimestamp.format(seconds: 0, milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(LogTimestamp.format(seconds: 951_782_400, milliseconds: 7) == "2000-02-29T00:00:00.007Z")
        #expect(LogTimestamp.format(seconds: 1_796_606_277, milliseconds: 994) == "2026-12-07T01:17:57.994Z")
        #expect(LogTimestamp.format(seconds: Int.max, milliseconds: 5_000) == "9999-12-31T23:59:59.999Z")
        #expect(LogTimestamp.format(seconds: Int.min, milliseconds: -1) == "0000-01-01T00:00:00.000Z")
    }

    @Test func nowHasTheShapeOfTheOthers() {
        let now = LogTimestamp.now()
        #expect(now.utf8.count == 24)
        #expect(now.hasSuffix("Z"))
        #expect(now.hasPrefix("20"))
    }
}

@Suite struct LogLineTests {
    @Test func theEventsMetadataWinsOverTheHandlersAndKeysAreSorted() {
        var handler = TextLogHandler(label: "proxima")
        handler.metadata = ["request_id": "from-handler", "b": "2"]
        let line = handler.line(
            for: LogEvent(
                level: .info, message: "request", metadata: ["request_id": "from-event", "a": "x y", "c": "1"], source: "s",
                file: "f", function: "g", line: 1))
        #expect(line.hasSuffix(#" info proxima: request a="x y" b=2 c=1 request_id=from-event"# + "\n"))
        #expect(!line.contains("from-handler"))
    }
}
