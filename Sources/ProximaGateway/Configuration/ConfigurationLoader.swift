import Foundation
import ProximaCore
import Yams

/// Reads a configuration: the YAML file, then environment variables, then command-line flags, each
/// overriding the one before. Every failure names the key at fault.
public enum ConfigurationLoader {
    /// Environment variables that override file settings.
    public static let environmentOverrides: [(variable: String, key: String)] = [
        ("PROXIMA_HOST", "server.host"), ("PROXIMA_PORT", "server.port"),
        ("PROXIMA_MAX_REQUEST_BODY_BYTES", "server.max_request_body_bytes"),
        ("PROXIMA_LOG_LEVEL", "logging.level"), ("PROXIMA_LOG_FORMAT", "logging.format"),
    ]

    /// Parses YAML text into a configuration (not yet validated as a whole).
    public static func parse(yaml: String) throws(InvalidConfiguration) -> ProximaConfiguration {
        if yaml.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return ProximaConfiguration() }
        do {
            return try YAMLDecoder().decode(ProximaConfiguration.self, from: yaml)
        } catch let error as DecodingError {
            throw InvalidConfiguration(problems: [problem(from: error)])
        } catch {
            throw InvalidConfiguration(problems: [.init("(file)", "not valid YAML: \(error)")])
        }
    }

    /// Loads the file at `path`, applies environment overrides, and validates the result.
    public static func load(path: String?, environment: [String: String]) throws(InvalidConfiguration) -> ProximaConfiguration {
        var configuration = ProximaConfiguration()
        if let path {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw InvalidConfiguration(problems: [.init("(file)", "cannot read '\(path)': \(error.localizedDescription)")])
            }
            configuration = try parse(yaml: text)
        }
        try applyEnvironment(environment, to: &configuration)
        try configuration.validate()
        return configuration
    }

    /// Applies the `PROXIMA_*` variables that are set.
    public static func applyEnvironment(_ environment: [String: String], to configuration: inout ProximaConfiguration) throws(InvalidConfiguration) {
        var problems: [ConfigurationProblem] = []
        if let host = environment["PROXIMA_HOST"] { configuration.server.host = host }
        if let port = environment["PROXIMA_PORT"] {
            if let value = Int(port) { configuration.server.port = value } else {
                problems.append(.init("server.port", "PROXIMA_PORT must be an integer, got '\(port)'"))
            }
        }
        if let limit = environment["PROXIMA_MAX_REQUEST_BODY_BYTES"] {
            if let value = Int(limit) { configuration.server.maxRequestBodyBytes = value } else {
                problems.append(.init("server.max_request_body_bytes", "PROXIMA_MAX_REQUEST_BODY_BYTES must be an integer, got '\(limit)'"))
            }
        }
        if let level = environment["PROXIMA_LOG_LEVEL"] { configuration.logging.level = level }
        if let format = environment["PROXIMA_LOG_FORMAT"] { configuration.logging.format = format }
        if !problems.isEmpty { throw InvalidConfiguration(problems: problems) }
    }

    /// Turns a decoding error into a problem located by its key path.
    static func problem(from error: DecodingError) -> ConfigurationProblem {
        func path(_ codingPath: [any CodingKey]) -> String {
            var result = ""
            for key in codingPath {
                if let index = key.intValue {
                    result += "[\(index)]"
                } else {
                    result += result.isEmpty ? key.stringValue : ".\(key.stringValue)"
                }
            }
            return result.isEmpty ? "(top level)" : result
        }
        switch error {
        case .keyNotFound(let key, let context):
            return .init(path(context.codingPath + [key]), "is required")
        case .typeMismatch(let type, let context):
            return .init(path(context.codingPath), "must be \(describe(type)) (\(context.debugDescription))")
        case .valueNotFound(let type, let context):
            return .init(path(context.codingPath), "must be \(describe(type)), found nothing")
        case .dataCorrupted(let context):
            return .init(path(context.codingPath), context.debugDescription)
        @unknown default:
            return .init("(file)", "\(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default: "\(type)".hasPrefix("Array") ? "a list" : "a mapping"
        }
    }
}
