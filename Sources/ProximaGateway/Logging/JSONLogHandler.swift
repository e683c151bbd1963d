import Foundation
import Logging

/// Writes one JSON object per log line to standard error: time, level, label, message, metadata.
/// The gateway logs ids, names, counts and timings only; prompt text and keys never reach a logger.
public struct JSONLogHandler: LogHandler {
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
        var line = "{\"time\":\"\(Self.timestamp())\",\"level\":\"\(event.level)\",\"label\":\(Self.quoted(label)),\"message\":\(Self.quoted("\(event.message)"))"
        for (key, value) in Self.merged(metadata, metadataProvider, event) {
            line += ",\(Self.quoted(key)):\(Self.quoted("\(value)"))"
        }
        line += "}\n"
        LogWriter.standardError.write(line)
    }

    static func quoted(_ text: String) -> String { JSONScanner.quoted(text) }

    /// A handler's metadata, then its provider's, then the event's (later ones win), sorted by key.
    static func merged(
        _ metadata: Logger.Metadata, _ provider: Logger.MetadataProvider?, _ event: LogEvent
    ) -> [(key: String, value: Logger.Metadata.Value)] {
        var merged = metadata
        if let provided = provider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        return merged.sorted { $0.key < $1.key }
    }

    static func timestamp() -> String {
        Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}
