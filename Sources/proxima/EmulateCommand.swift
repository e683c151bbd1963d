import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ProximaCore
import ProximaEmulator
import ProximaGateway

struct Emulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the emulated endpoints of a fleet file (engine: emulated) on their loopback ports.",
        discussion: """
            Each endpoint speaks the OpenAI API, runs a continuous-batching engine model of its GPU profile in
            real time, delays answers by the network distance to the caller named in the header
            x-proxima-client-location: LATITUDE,LONGITUDE, and exposes vLLM-format metrics at /metrics.
            Faults are set at run time on the control port: PUT /admin/endpoints/NAME/faults with a JSON body
            such as {"crash": true}, {"slowdown": 4}, {"error_rate": 0.2}, {"abort_rate": 0.1},
            {"hang": true} or {"partition_seconds": 30}; GET /admin/endpoints lists them.
            """)

    @Option(help: "Fleet file (the gateway's configuration format).")
    var fleet: String

    @Option(help: "Port of the control API.")
    var adminPort: Int = 9900

    func run() async throws {
        let configuration = try ConfigurationLoader.load(path: fleet, environment: ProcessInfo.processInfo.environment)
        LoggingSystem.bootstrap { label in
            var handler = TextLogHandler(label: label)
            handler.logLevel = .notice
            return handler
        }
        let logger = Logger(label: "proxima-emulator")
        let emulated = try await EmulatorFleet.start(configuration: configuration, logger: logger)
        for name in emulated.endpointNames {
            logger.notice("emulated endpoint \(name) at \(emulated.baseURL(of: name) ?? "?")")
        }
        let control = Application(
            router: emulated.controlRouter(), configuration: .init(address: .hostname("127.0.0.1", port: adminPort)), logger: logger)
        logger.notice("control API at http://127.0.0.1:\(adminPort)/admin/endpoints")
        try await control.runService()
        await emulated.stop()
    }
}
