import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes log lines to a file descriptor from a thread of its own, so that the request path never
/// blocks on a slow terminal or a full pipe: a log handler only appends its line to a bounded buffer.
/// When the buffer is full (the reader of the log cannot keep up), lines are dropped and counted, and
/// the count is written as a line of its own once there is room: memory stays bounded and the event
/// loops keep serving. Lines still buffered when the process exits are written by an exit hook.
final class LogWriter: Sendable {
    /// The writer for standard error, used by the gateway's log handlers.
    static let standardError = LogWriter(descriptor: 2, capacityBytes: 4 << 20)

    private struct State {
        var pending: [UInt8] = []
        /// The buffer last written, emptied with its capacity kept, to become `pending` again: lines
        /// are appended without growing a new buffer from nothing after every write.
        var spare: [UInt8] = []
        var dropped = 0
        var started = false
    }

    private let descriptor: Int32
    private let capacityBytes: Int
    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)

    init(descriptor: Int32, capacityBytes: Int) {
        self.descriptor = descriptor
        self.capacityBytes = capacityBytes
    }

    /// Lines dropped so far because the buffer was full.
    var droppedLines: Int { state.withLock { $0.dropped } }

    /// Queues one line (with its newline); never blocks on I/O.
    func write(_ line: String) {
        let (wake, start) = state.withLock { state -> (Bool, Bool) in
            guard state.pending.count + line.utf8.count <= capacityBytes else {
                state.dropped += 1
                return (false, false)
            }
            let wasEmpty = state.pending.isEmpty
            state.pending.append(contentsOf: line.utf8)
            let start = !state.started
            state.started = true
            return (wasEmpty, start)
        }
        if start { startThread() }
        if wake { wakeUp.signal() }
    }

    /// Writes whatever is buffered now, from the calling thread.
    func drain() {
        var bytes = take()
        while !bytes.isEmpty {
            writeAll(bytes)
            bytes.removeAll(keepingCapacity: true)
            let written = bytes
            state.withLock { state in if state.spare.capacity < written.capacity { state.spare = written } }
            bytes = take()
        }
    }

    private func take() -> [UInt8] {
        state.withLock { state in
            var bytes: [UInt8] = []
            swap(&bytes, &state.spare)
            swap(&bytes, &state.pending)
            if state.dropped > 0 {
                bytes += Array("log: \(state.dropped) lines dropped, the log's reader could not keep up\n".utf8)
                state.dropped = 0
            }
            return bytes
        }
    }

    private func startThread() {
        if self === LogWriter.standardError { atexit { LogWriter.standardError.drain() } }
        let thread = Thread { [self] in
            while true {
                wakeUp.wait()
                // Lines that come within a moment are written together: under load the thread wakes
                // once per batch, not once per request.
                usleep(2_000)
                drain()
            }
        }
        thread.name = "proxima-log"
        thread.start()
    }

    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = systemWrite(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return  // the log is gone (closed descriptor): nothing more can be done
                }
            }
        }
    }
}

/// The system's `write(2)`, out of reach of `LogWriter.write` by name.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
