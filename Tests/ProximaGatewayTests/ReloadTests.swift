import AsyncHTTPClient
import Foundation
import NIOCore
import ProximaCore
import Synchronization
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// A reload applies every setting it can, and refuses (naming the keys) one that changes what is
/// fixed at start, instead of silently keeping the old value.
@Suite(.serialized) struct ReloadTests {
    @Test func aReloadAppliesLimitsDeadlinesAndTheAdminTokenAndRefusesRestartOnlyKeys() async throws {
        let upstream = try await FaultyUpstream.start()
        defer { Task { await upstream.stop() } }
        var initial = GatewayProxyTests.configuration([(upstream.baseURL, "ok")])
        initial.server.port = 0  // as the test gateway listens
        let file = Mutex(initial)
        let gateway = try await RunningGateway.start(
            file.withLock { $0 }, environment: ["UPSTREAM_KEY": "k", "PROXIMA_ADMIN_TOKEN": "old", "OTHER_TOKEN": "new"],
            reloadSource: { file.withLock { $0 } })
        defer { Task { await gateway.stop() } }
        let url = gateway.baseURL + "/v1/chat/completions"
        let padded = #"{"model":"chat","messages":[{"role":"user","content":""# + String(repeating: "a", count: 4_000) + #""}]}"#
        #expect(try await TestHTTP.post(url, json: padded).status == 200)

        file.withLock {
            $0.server.maxRequestBodyBytes = 1_024
            $0.server.maxAttempts = 1
            $0.server.timeouts.firstByte = 7
            $0.admin.tokenEnv = "OTHER_TOKEN"
        }
        let snapshot = try gateway.gateway.reload()
        #expect(snapshot.proxy.maxAttempts == 1 && snapshot.proxy.firstByte == .seconds(7))
        #expect(try await TestHTTP.post(url, json: padded).status == 413, "the new body limit applies")
        var admin = HTTPClientRequest(url: gateway.baseURL + "/admin/fleet")
        admin.headers.add(name: "authorization", value: "Bearer new")
        #expect(try await TestHTTP.send(admin).status == 200, "the admin token is read from the new variable")

        file.withLock {
            $0.server.maxRequestBodyBytes = 1 << 20
            $0.server.timeouts.connect = 9
            $0.server.maxConnectionsPerUpstream = 3
        }
        do {
            _ = try gateway.gateway.reload()
            Issue.record("a change to a restart-only key was accepted")
        } catch {
            #expect(error.code == "restart_required")
            #expect(error.message.contains("server.timeouts.connect") && error.message.contains("server.max_connections_per_upstream"))
        }
        #expect(try await TestHTTP.post(url, json: padded).status == 413, "a refused reload changes nothing")
    }
}
