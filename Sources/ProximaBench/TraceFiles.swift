import Foundation
import ProximaCore

/// The real traces by name: `azure` and `mooncake` in a traces directory, or a file path
/// (`.jsonl` files are read in the Mooncake format, others in the Azure format).
public enum TraceFiles {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func path(of name: String, in directory: String) -> String {
        switch name {
        case "azure": directory + "/azure-llm-2023-code.csv"
        case "mooncake": directory + "/mooncake-conversation.jsonl"
        default: name
        }
    }

    public static func load(_ name: String, from directory: String) throws -> Trace {
        let path = path(of: name, in: directory)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Failure(description: "cannot read the trace at \(path)")
        }
        do {
            return path.hasSuffix(".jsonl") ? try Trace.parseMooncake(text, name: name) : try Trace.parseAzure(text, name: name)
        } catch {
            throw Failure(description: "\(path): \(error)")
        }
    }
}
