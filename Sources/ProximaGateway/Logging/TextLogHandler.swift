import Foundation
import Logging

/// Writes one plain-text line per log event to standard error: time, level, label, message and
/// metadata as `key=value`. Unlike swift-log's stream handler it formats metadata only when a line is
/// written: the server attaches a request id to a logger on every request, and formatting it then, as
/// the stream handler does, cost about 4% of the gateway's CPU per request even with nothing logged.
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
        var line = "\(JSONLogHandler.timestamp()) \(event.level) \(label): \(event.message)"
        for (key, value) in JSONLogHandler.merged(metadata, metadataProvider, event) { line += " \(key)=\(value)" }
        line += "\n"
        LogWriter.standardError.write(line)
    }
}
