import Foundation
import ProximaCore

/// The real traces by name: `azure` and `mooncake` in a traces directory, or a file path
/// (`.jsonl` files are read in the Mooncake format, others in the Azure format).
public enum TraceFiles {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Where the traces shipped with the project are: `data/traces` in the working directory when run
    /// from the project's root, else beside the executable's build folder (`.build/<config>/proxima`).
    public static var shippedDirectory: String {
        let local = "data/traces"
        if FileManager.default.fileExists(atPath: local + "/azure-llm-2023-code.csv") { return local }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        var root = executable.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = root.appendingPathComponent(local).path
            if FileManager.default.fileExists(atPath: candidate + "/azure-llm-2023-code.csv") { return candidate }
            root = root.deletingLastPathComponent()
        }
        return local
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
