import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ProximaCore
import ProximaGateway
import ProximaStore

/// The entry point. `serve` runs Swift concurrency on the network event loops, so that a request's
/// tasks, its caller's connection and its upstream connection share one thread and hand work to
/// each other without waking another thread; `PROXIMA_EXECUTOR=dispatch` keeps Swift's own pool.
/// The executor can only be chosen before any task has run, hence this synchronous `main`.
@main
enum ProximaEntry {
    static func main() {
        let environment = ProcessInfo.processInfo.environment
        if CommandLine.arguments.dropFirst().first == "serve" {
            // One event loop per CPU the process may run on (taskset), not per CPU of the machine.
            if let loops = environment["PROXIMA_EVENT_LOOPS"].flatMap(Int.init) ?? allowedCPUCount(), loops > 0 {
                NIOSingletons.groupLoopCountSuggestion = loops
            }
            if environment["PROXIMA_EXECUTOR"] != "dispatch" {
                NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
            }
        }
        Task {
            await Proxima.main()
            exit(0)
        }
        dispatchMain()
    }
}

/// The CPUs this process may run on, from the affinity mask in `/proc/self/status`; nil where that
/// cannot be read.
func allowedCPUCount() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
    else { return nil }
    let count = line.dropFirst("Cpus_allowed:".count).reduce(0) { count, character in
        count + (character.hexDigitValue?.nonzeroBitCount ?? 0)
    }
    return count > 0 ? count : nil
}

struct Proxima: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxima",
        abstract: "Proxima: a distributed AI-inference orchestrator with an OpenAI-compatible gateway.",
        subcommands: [
            Serve.self, CheckConfig.self, Tenants.self, Principals.self, Keys.self, Bench.self, Emulate.self, Demo.self, Simulate.self,
            Evidence.self, Audit.self,
        ])
}

struct ServerOptions: ParsableArguments {
    @Option(name: .long, help: "YAML configuration file.")
    var config: String?

    @Option(name: .long, help: "Quick mode: an OpenAI-compatible base URL to proxy to (repeatable); models come from its /v1/models.")
    var upstream: [String] = []

    @Option(name: .long, help: "Address to listen on (overrides the file and PROXIMA_HOST).")
    var host: String?

    @Option(name: .long, help: "Port to listen on (overrides the file and PROXIMA_PORT).")
    var port: Int?

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    @Option(name: .long, help: "text or json.")
    var logFormat: String?

    /// File, then environment, then these flags; quick-mode upstreams are added as endpoints.
    /// Returns the configuration and the endpoints discovered from `--upstream`.
    func resolve() async throws -> (ProximaConfiguration, [EndpointSettings]) {
        if config == nil && upstream.isEmpty {
            throw ValidationError("give --config FILE or at least one --upstream URL")
        }
        let discovered = upstream.isEmpty ? [] : try await UpstreamDiscovery.endpoints(for: upstream)
        let configuration = try Self.fileConfiguration(
            file: config, host: host, port: port, logLevel: logLevel, logFormat: logFormat, adding: discovered)
        return (configuration, discovered)
    }

    /// The configuration from the file (if any), the environment and the flags, plus `endpoints`;
    /// also what a reload reads.
    static func fileConfiguration(
        file: String?, host: String?, port: Int?, logLevel: String?, logFormat: String?, adding endpoints: [EndpointSettings]
    ) throws -> ProximaConfiguration {
        var configuration = ProximaConfiguration()
        if let file {
            configuration = try ConfigurationLoader.parse(yaml: try String(contentsOfFile: file, encoding: .utf8))
        }
        try ConfigurationLoader.applyEnvironment(ProcessInfo.processInfo.environment, to: &configuration)
        if let host { configuration.server.host = host }
        if let port { configuration.server.port = port }
        if let logLevel { configuration.logging.level = logLevel }
        if let logFormat { configuration.logging.format = logFormat }
        configuration.endpoints += endpoints
        try configuration.validate()
        return configuration
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway.")

    @OptionGroup var options: ServerOptions

    func run() async throws {
        let configuration: ProximaConfiguration
        let discovered: [EndpointSettings]
        do {
            (configuration, discovered) = try await options.resolve()
        } catch let error as InvalidConfiguration {
            FileHandle.standardError.write(Data("proxima: \(error)\n".utf8))
            throw ExitCode(78)
        } catch let error as UpstreamDiscovery.Failure {
            FileHandle.standardError.write(Data("proxima: \(error)\n".utf8))
            throw ExitCode(69)
        }
        let level = Logger.Level(rawValue: configuration.logging.level) ?? .info
        let json = configuration.logging.format == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : TextLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "proxima")
        let (file, host, port, logLevel, logFormat) = (options.config, options.host, options.port, options.logLevel, options.logFormat)
        var reloadSource: (@Sendable () throws -> ProximaConfiguration)?
        if file != nil {
            reloadSource = { @Sendable in
                try ServerOptions.fileConfiguration(
                    file: file, host: host, port: port, logLevel: logLevel, logFormat: logFormat, adding: discovered)
            }
        }
        // The store is opened (and its identities loaded) before anything listens; quick mode
        // included, where it is a SQLite file under data_dir that needs nothing installed.
        let gateway: Gateway
        do {
            gateway = try await Gateway.open(configuration: configuration, logger: logger, reloadSource: reloadSource)
        } catch let failure as GatewayAuditFailure {
            FileHandle.standardError.write(Data("proxima: \(failure)\n".utf8))
            throw ExitCode(73)
        } catch let failure as GatewayStoreFailure {
            FileHandle.standardError.write(Data("proxima: \(failure)\n".utf8))
            throw ExitCode(failure.isConfigurationProblem ? 78 : 69)
        } catch let error as InvalidConfiguration {
            FileHandle.standardError.write(Data("proxima: \(error)\n".utf8))
            throw ExitCode(78)
        }
        let models = gateway.configuration.endpoints.flatMap { $0.models.map(\.name) }
        do {
            try await gateway.run { channel in
                let address = channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
                logger.notice(
                    "proxima listening",
                    metadata: [
                        "address": "\(address)", "endpoints": "\(configuration.endpoints.count)",
                        "models": "\(Array(Set(models)).sorted().joined(separator: ","))",
                    ])
            }
        } catch {
            await gateway.closeAudit()
            await gateway.store?.close()
            throw error
        }
        await gateway.closeAudit()
        await gateway.store?.close()
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a configuration file and print the fleet it describes.")

    @Option(name: .long, help: "YAML configuration file.")
    var config: String

    func run() async throws {
        do {
            let configuration = try ConfigurationLoader.load(path: config, environment: ProcessInfo.processInfo.environment)
            let fleet = try Fleet(configuration: configuration)
            print("configuration OK: \(fleet.sites.count) sites, \(fleet.endpoints.count) endpoints, \(fleet.models.count) models")
            for model in fleet.models {
                let serving = fleet.endpointIndices(serving: model.name).map { fleet.endpoints[$0].name }
                let fallbacks = model.fallbacks.isEmpty ? "" : " (falls back to \(model.fallbacks.joined(separator: ", ")))"
                print("  \(model.name): \(serving.joined(separator: ", "))\(fallbacks)")
            }
        } catch {
            FileHandle.standardError.write(Data("proxima: \(error)\n".utf8))
            throw ExitCode(78)
        }
    }
}

/// Writes `value` as pretty, key-sorted JSON to the file at `path`.
func writeJSON(_ value: some Encodable, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(value).write(to: URL(fileURLWithPath: path))
}
