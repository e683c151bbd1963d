import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ProximaCore
import ProximaEmulator
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// The gateway in front of emulated endpoints over real HTTP.
@Suite(.serialized) struct GatewayOverEmulatorTests {
    @Test func emulatedSitesSeeTheCallersLocationThroughTheGateway() async throws {
        let configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "frankfurt", latitude: 50.11, longitude: 8.68)],
            endpoints: [
                EndpointSettings(
                    name: "fra-1", url: "http://127.0.0.1:\(try freeLoopbackPort())/v1", site: "frankfurt", engine: .emulated,
                    models: [.init(name: "llama-8b")], gpu: .init(profile: "H100-8B"))
            ])
        let fleet = try await EmulatorFleet.start(
            configuration: configuration, logger: Logger(label: "emu", factory: { _ in SwiftLogNoOpLogHandler() }))
        let gateway = try await RunningGateway.start(configuration)
        func timeToFirstByte(from location: String) async throws -> Duration {
            var request = HTTPClientRequest(url: gateway.baseURL + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "x-proxima-client-location", value: location)
            request.body = .bytes(ByteBuffer(string: #"{"model":"llama-8b","messages":[{"role":"user","content":"a b c"}],"max_tokens":2,"stream":true}"#))
            let start = ContinuousClock.now
            let response = try await TestHTTP.client.execute(request, timeout: .seconds(30))
            var first: Duration?
            for try await _ in response.body where first == nil { first = ContinuousClock.now - start }
            return first ?? .seconds(999)
        }
        _ = try await timeToFirstByte(from: "50.11,8.68")
        // The quickest of three each: a busy machine only ever adds time, the round trip is the floor.
        var near = Duration.seconds(999)
        var far = Duration.seconds(999)
        for _ in 0..<3 {
            near = min(near, try await timeToFirstByte(from: "50.11,8.68"))
            far = min(far, try await timeToFirstByte(from: "-33.87,151.21"))
        }
        await gateway.stop()
        await fleet.stop()
        #expect(far - near > .milliseconds(250))
    }
}
