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
        // Listed in order of precedence (the event's own, then the provider's, then the handler's)
        // and sorted stably by key: the first of each key wins. No dictionary is built or merged.
        let provided = provider?.get() ?? [:]
        let extra = event.metadata ?? [:]
        var all: [(key: String, value: Logger.Metadata.Value)] = []
        all.reserveCapacity(metadata.count + provided.count + extra.count)
        for pair in extra { all.append(pair) }
        for pair in provided { all.append(pair) }
        for pair in metadata { all.append(pair) }
        guard all.count > 1 else { return all }
        var order = Array(all.indices)
        order.sort { all[$0].key != all[$1].key ? all[$0].key < all[$1].key : $0 < $1 }
        var merged: [(key: String, value: Logger.Metadata.Value)] = []
        merged.reserveCapacity(all.count)
        for index in order where merged.last?.key != all[index].key { merged.append(all[index]) }
        return merged
    }

    static func timestamp() -> String { LogTimestamp.now() }
}
