import Foundation
import Logging

/// Writes one plain-text line per log event to standard error: time, level, label, message and
/// metadata as `key=value`. Unlike swift-log's stream handler it formats metadata only when a line is
/// written: the server attaches a request id to a logger on every request, and formatting it then, as
/// the stream handler does, cost about 4% of the gateway's CPU per request even with nothing logged.
///
/// Messages and values may carry text from outside (an upstream's error, a caller's header): control
/// characters are escaped (`\n`, `\r`, `\t`, `\u{1B}`) so that one event stays one line and no one can
/// forge a line, and a value holding spaces, `=` or quotes is quoted so that it cannot pass for more
/// `key=value` pairs.
public struct TextLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        LogWriter.standardError.write(line(for: event))
    }

    /// The line written for an event, newline included.
    func line(for event: LogEvent) -> String {
        var line = ""
        line.reserveCapacity(256)
        line += JSONLogHandler.timestamp()
        line += " "
        line += event.level.rawValue
        line += " "
        line += Self.escaped(label)
        line += ": "
        line += Self.escaped("\(event.message)")
        for (key, value) in JSONLogHandler.merged(metadata, metadataProvider, event) {
            line += " "
            line += Self.escaped(key)
            line += "="
            if case .string(let text) = value { line += Self.value(text) } else { line += Self.value("\(value)") }
        }
        line += "\n"
        return line
    }

    /// A metadata value, quoted when it holds what separates pairs.
    static func value(_ text: String) -> String {
        let needsQuotes = text.isEmpty || text.utf8.contains { $0 == 0x20 || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\"") }
        guard needsQuotes else { return escaped(text) }
        return "\"" + escaped(text).replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// The text with control characters and Unicode line separators escaped.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where needsEscape(scalar): result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }
}
