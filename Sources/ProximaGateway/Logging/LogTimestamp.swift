import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The time of a log line in UTC, ISO 8601 with milliseconds (`2026-12-06T23:37:57.994Z`), formatted
/// by hand: Foundation's date formatting cost more than the rest of a request's log line together.
enum LogTimestamp {
    static func now() -> String {
        // Reading the clock through Date is cheap; only Foundation's formatting was slow.
        let now = Date().timeIntervalSince1970
        let seconds = now.rounded(.down)
        return format(seconds: Int(seconds), milliseconds: Int((now - seconds) * 1000))
    }

    /// `seconds` since the Unix epoch; dates before year 0 or after 9999 are clamped to those years' ends.
    static func format(seconds: Int, milliseconds: Int) -> String {
        let clamped = min(max(seconds, -62_167_219_200), 253_402_300_799)
        var time = time_t(clamped)
        var parts = tm()
        gmtime_r(&time, &parts)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { buffer in
            func put(_ value: Int, _ width: Int, at offset: Int) {
                var value = value
                for index in stride(from: offset + width - 1, through: offset, by: -1) {
                    buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            put(Int(parts.tm_year) + 1900, 4, at: 0)
            buffer[4] = UInt8(ascii: "-")
            put(Int(parts.tm_mon) + 1, 2, at: 5)
            buffer[7] = UInt8(ascii: "-")
            put(Int(parts.tm_mday), 2, at: 8)
            buffer[10] = UInt8(ascii: "T")
            put(Int(parts.tm_hour), 2, at: 11)
            buffer[13] = UInt8(ascii: ":")
            put(Int(parts.tm_min), 2, at: 14)
            buffer[16] = UInt8(ascii: ":")
            put(min(Int(parts.tm_sec), 60), 2, at: 17)
            buffer[19] = UInt8(ascii: ".")
            put(min(max(milliseconds, 0), 999), 3, at: 20)
            buffer[23] = UInt8(ascii: "Z")
            return String(decoding: UnsafeBufferPointer(buffer), as: UTF8.self)
        }
    }
}
