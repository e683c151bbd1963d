import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ProximaCore
import ProximaStore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// The gateway with its store: identities created through the admin API open models to a key,
/// revocation through one gateway reaches another sharing the store within a few polls, a store
/// that cannot be opened stops the start with a message naming it, hostile admin bodies get 400,
/// and identities outlive a restart. Real SQLite files in a temporary directory.
@Suite(.serialized) struct StoreWiringTests {
    static let adminToken = "test-admin-token-123"
    static let environment = ["PROXIMA_ADMIN_TOKEN": adminToken]

    /// Keys mode, models `chat` and `other` on one upstream, the store a SQLite file in `directory`.
    static func configuration(upstream: String, directory: String) -> ProximaConfiguration {
        var configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "lab", latitude: 1, longitude: 2)],
            endpoints: [
                EndpointSettings(
                    name: "ep0", url: upstream, site: "lab", engine: .openai,
                    models: [.init(name: "chat", upstream: "ok"), .init(name: "other", upstream: "ok")])
            ])
        configuration.auth = AuthSettings(mode: .keys)
        configuration.dataDirectory = directory
        configuration.store.refreshSeconds = 0.1
        return configuration
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "proxima-wiring-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func admin(_ method: HTTPMethod, _ url: String, json: String? = nil, token: String = adminToken) async throws -> TestHTTP.Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        if let json {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        return try await TestHTTP.send(request)
    }

    static func chat(_ gateway: RunningGateway, model: String = "chat", token: String) async throws -> TestHTTP.Reply {
        try await TestHTTP.post(
            gateway.baseURL + "/v1/chat/completions", json: #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}]}"#,
            headers: [("authorization", "Bearer \(token)")])
    }

    /// Creates tenant `acme` (model `chat` only), principal `dev` and a key through the admin API;
    /// returns the token.
    static func provision(_ gateway: RunningGateway) async throws -> (token: String, keyID: String) {
        let base = gateway.baseURL + "/admin"
        let tenant = try await admin(.POST, base + "/tenants", json: #"{"id":"acme","name":"Acme","models":["chat"]}"#)
        #expect(tenant.status == 201, "\(tenant.body)")
        let principal = try await admin(.POST, base + "/tenants/acme/principals", json: #"{"id":"dev","roles":[]}"#)
        #expect(principal.status == 201, "\(principal.body)")
        let key = try await admin(
            .POST, base + "/keys", json: #"{"tenant":"acme","principal":"dev","name":"ci","limits":{"requests_per_minute":1000}}"#)
        #expect(key.status == 201, "\(key.body)")
        let token = try #require(key.json?["token"] as? String)
        let keyID = try #require((key.json?["key"] as? [String: Any])?["id"] as? String)
        return (token, keyID)
    }

    @Test func aKeyCreatedThroughTheAdminAPIOpensItsModelsAndNoOthers() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let upstream = try await FaultyUpstream.start()
        let gateway = try await RunningGateway.start(
            Self.configuration(upstream: upstream.baseURL, directory: directory), environment: Self.environment, openStore: true)
        do {
            #expect(gateway.gateway.store != nil)
            let (token, keyID) = try await Self.provision(gateway)
            // No wait for a poll: the gateway that took the write reloaded at once.
            #expect(try await Self.chat(gateway, token: token).status == 200)
            let refused = try await Self.chat(gateway, model: "other", token: token)
            #expect(refused.status == 403)
            #expect(refused.errorObject?["code"] as? String == "model_not_allowed")
            // Listing keys shows neither the token nor a hash.
            let list = try await Self.admin(.GET, gateway.baseURL + "/admin/keys?tenant=acme")
            #expect(list.status == 200)
            #expect(list.body.contains(keyID))
            #expect(!list.body.contains(token) && !list.body.contains(String(token.suffix(52))))
            #expect(!list.body.contains("hash"))
            let tenants = try await Self.admin(.GET, gateway.baseURL + "/admin/tenants")
            #expect((tenants.json?["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["acme"])
            // Duplicates, unknown identities and a missing store answer in the OpenAI format.
            let duplicate = try await Self.admin(.POST, gateway.baseURL + "/admin/tenants", json: #"{"id":"acme"}"#)
            #expect(duplicate.status == 409)
            #expect(duplicate.errorObject?["code"] as? String == "already_exists")
            #expect(try await Self.admin(.GET, gateway.baseURL + "/admin/tenants/nobody").status == 404)
            #expect(try await Self.admin(.DELETE, gateway.baseURL + "/admin/keys/aaaaaaaaaaaa").status == 404)
            #expect(try await Self.admin(.GET, gateway.baseURL + "/admin/tenants", token: "wrong").status == 401)
            // A tenant disabled through PATCH is refused at once.
            let patched = try await Self.admin(.PATCH, gateway.baseURL + "/admin/tenants/acme", json: #"{"disabled":true}"#)
            #expect(patched.status == 200)
            #expect(patched.json?["disabled"] as? Bool == true)
            #expect(try await Self.chat(gateway, token: token).status == 401)
        } catch {
            await gateway.stop()
            await upstream.stop()
            throw error
        }
        await gateway.stop()
        await upstream.stop()
    }

    @Test func aKeyRevokedThroughOneGatewayStopsWorkingOnAnotherSharingTheStore() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let upstream = try await FaultyUpstream.start()
        let configuration = Self.configuration(upstream: upstream.baseURL, directory: directory)
        let first = try await RunningGateway.start(configuration, environment: Self.environment, openStore: true)
        let second = try await RunningGateway.start(configuration, environment: Self.environment, openStore: true)
        do {
            let (token, keyID) = try await Self.provision(first)
            // The second gateway learns of the new key by polling.
            #expect(try await eventually(timeout: .seconds(5)) { try await Self.chat(second, token: token).status == 200 })
            let revoked = try await Self.admin(.DELETE, first.baseURL + "/admin/keys/\(keyID)")
            #expect(revoked.status == 200)
            #expect(revoked.json?["status"] as? String == "revoked")
            #expect(try await Self.chat(first, token: token).status == 401, "the gateway that revoked refuses at once")
            #expect(try await eventually(timeout: .seconds(5)) { try await Self.chat(second, token: token).status == 401 })
        } catch {
            await first.stop()
            await second.stop()
            await upstream.stop()
            throw error
        }
        await first.stop()
        await second.stop()
        await upstream.stop()
    }

    @Test func identitiesSurviveARestart() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let upstream = try await FaultyUpstream.start()
        let configuration = Self.configuration(upstream: upstream.baseURL, directory: directory)
        let first = try await RunningGateway.start(configuration, environment: Self.environment, openStore: true)
        let token: String
        do {
            token = try await Self.provision(first).token
        } catch {
            await first.stop()
            await upstream.stop()
            throw error
        }
        await first.stop()
        let second = try await RunningGateway.start(configuration, environment: Self.environment, openStore: true)
        // Loaded before the gateway listened: the first request after the restart works.
        let reply = try await Self.chat(second, token: token)
        await second.stop()
        await upstream.stop()
        #expect(reply.status == 200)
    }

    @Test func adminChangesSurviveARestartAndAReload() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let upstream = try await FaultyUpstream.start()
        let file = Self.configuration(upstream: upstream.baseURL, directory: directory)
        let added =
            #"{"name":"ep1","url":"\#(upstream.baseURL)","site":"lab","engine":"openai","models":[{"name":"chat","upstream":"ok"}]}"#
        let first = try await RunningGateway.start(file, environment: Self.environment, openStore: true)
        do {
            #expect(try await Self.admin(.PATCH, first.baseURL + "/admin/routing", json: #"{"policy":"round-robin"}"#).status == 200)
            #expect(try await Self.admin(.POST, first.baseURL + "/admin/endpoints", json: added).status == 201)
            #expect(try await Self.admin(.POST, first.baseURL + "/admin/endpoints/ep0/drain").status == 200)
        } catch {
            await first.stop()
            await upstream.stop()
            throw error
        }
        await first.stop()
        // The same file: the store's changes win over it at start.
        var reloaded = file
        reloaded.server.host = "127.0.0.1"
        reloaded.server.port = 0
        let second = try await RunningGateway.start(file, environment: Self.environment, reloadSource: { [reloaded] in reloaded }, openStore: true)
        do {
            let routing = try await Self.admin(.GET, second.baseURL + "/admin/routing")
            #expect(routing.body.contains(#""policy":"round-robin""#))
            let fleet = try await Self.admin(.GET, second.baseURL + "/admin/fleet")
            #expect(fleet.body.contains(#""name":"ep1""#))
            #expect(fleet.body.contains(#""name":"ep0","site":"lab""#))
            #expect(second.gateway.state.current().1[0].drained)
            // A reload of the file keeps them too.
            #expect(try await Self.admin(.POST, second.baseURL + "/admin/reload").status == 200)
            #expect(try await Self.admin(.GET, second.baseURL + "/admin/routing").body.contains(#""policy":"round-robin""#))
            #expect(try await Self.admin(.GET, second.baseURL + "/admin/fleet").body.contains(#""name":"ep1""#))
            #expect(second.gateway.state.current().1[0].drained)
            // Undrained and removed through the API: the next start follows that, not the file.
            #expect(try await Self.admin(.POST, second.baseURL + "/admin/endpoints/ep0/undrain").status == 200)
            #expect(try await Self.admin(.DELETE, second.baseURL + "/admin/endpoints/ep1").status == 200)
        } catch {
            await second.stop()
            await upstream.stop()
            throw error
        }
        await second.stop()
        let third = try await RunningGateway.start(file, environment: Self.environment, openStore: true)
        let fleet = try await Self.admin(.GET, third.baseURL + "/admin/fleet")
        let drained = third.gateway.state.current().1[0].drained
        await third.stop()
        await upstream.stop()
        #expect(!fleet.body.contains(#""name":"ep1""#))
        #expect(!drained)
    }

    @Test func aStoreThatCannotBeOpenedStopsTheStartNamingIt() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A directory where the SQLite file should be: the file cannot be opened.
        var configuration = Self.configuration(upstream: "http://127.0.0.1:9/v1", directory: directory)
        configuration.store.path = directory
        do {
            _ = try await Gateway.open(configuration: configuration, environment: [:], logger: .init(label: "test"))
            Issue.record("the gateway started without its store")
        } catch let failure as GatewayStoreFailure {
            #expect(failure.description.contains(directory))
            #expect(!failure.isConfigurationProblem)
        }
        // PostgreSQL whose URL holds a password, at a port nothing listens on: the message names the
        // database but not the password.
        let port = try freeLoopbackPort()
        configuration.store = StoreSettings(kind: .postgres, urlEnv: "TEST_DATABASE_URL", timeoutSeconds: 1)
        let environment = ["TEST_DATABASE_URL": "postgres://proxima:hunter2secret@127.0.0.1:\(port)/fleet?sslmode=disable"]
        do {
            _ = try await Gateway.open(configuration: configuration, environment: environment, logger: .init(label: "test"))
            Issue.record("the gateway started without its store")
        } catch let failure as GatewayStoreFailure {
            #expect(failure.description.contains("proxima@127.0.0.1:\(port)/fleet"))
            #expect(!failure.description.contains("hunter2secret"))
        }
        // The variable not set: a configuration problem, named.
        do {
            _ = try await Gateway.open(configuration: configuration, environment: [:], logger: .init(label: "test"))
            Issue.record("the gateway started without its store")
        } catch let failure as GatewayStoreFailure {
            #expect(failure.isConfigurationProblem)
            #expect(failure.description.contains("TEST_DATABASE_URL"))
        }
    }

    @Test func hostileAdminBodiesAreRefusedWith400() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gateway = try await RunningGateway.start(
            Self.configuration(upstream: "http://127.0.0.1:9/v1", directory: directory), environment: Self.environment, openStore: true)
        do {
            let base = gateway.baseURL + "/admin"
            #expect(try await Self.admin(.POST, base + "/tenants", json: #"{"id":"acme"}"#).status == 201)
            #expect(try await Self.admin(.POST, base + "/tenants/acme/principals", json: #"{"id":"dev"}"#).status == 201)
            let hostile: [(String, String)] = [
                ("/tenants", #"{"id":"Not A Slug"}"#),
                ("/tenants", #"{"id":"../etc"}"#),
                ("/tenants", #"{"id":"ok","name":"\#(String(repeating: "n", count: 10_000))"}"#),
                ("/tenants", #"{"id":"\#(String(repeating: "a", count: 65))"}"#),
                ("/tenants", #"{"id":"ok","limits":{"daily_budget_usd":NaN}}"#),
                ("/tenants", #"{"id":"ok","limits":{"daily_budget_usd":1e400}}"#),
                ("/tenants", #"{"id":"ok","limits":{"requests_per_minute":-5}}"#),
                ("/tenants", #"{"id":"ok","limits":{"requests_per_minute":1e30}}"#),
                ("/tenants", #"{"id":"ok","admin":true}"#),
                ("/tenants", #"{"id":"ok","limits":{"rpm":5}}"#),
                ("/tenants", #"["acme"]"#),
                ("/tenants", #"{"id":"#),
                ("/tenants", ""),
                ("/tenants", #"{"id":"ok","name":"a\u0000b"}"#),
                ("/tenants", #"{"id":"ok","models":["a*b"]}"#),
                ("/tenants/acme/principals", #"{"id":"dev2","roles":["Bad Role"]}"#),
                ("/keys", #"{"tenant":"acme","principal":"dev","expires_at":1}"#),
                ("/keys", #"{"tenant":"acme","principal":"dev","expires_at":1e300}"#),
                ("/keys", #"{"tenant":"acme","principal":"dev","secret":"mine"}"#),
                ("/keys", #"{"tenant":"acme"}"#),
            ]
            for (path, body) in hostile {
                let reply = try await Self.admin(.POST, base + path, json: body)
                #expect(reply.status == 400, "\(path) \(body.prefix(80)) -> \(reply.status) \(reply.body.prefix(200))")
                #expect(reply.errorObject?["message"] is String)
            }
            let tooLarge = try await Self.admin(.POST, base + "/tenants", json: #"{"id":"x","name":"\#(String(repeating: "n", count: 70_000))"}"#)
            #expect(tooLarge.status == 413)
            #expect(try await Self.admin(.PATCH, base + "/tenants/acme", json: #"{"limits":{"max_tokens":0}}"#).status == 400)
            #expect(try await Self.admin(.GET, base + "/keys").status == 400)
            // Nothing was written by the refused bodies.
            let tenants = try await Self.admin(.GET, base + "/tenants")
            #expect((tenants.json?["data"] as? [[String: Any]])?.count == 1)
            #expect(try await TestHTTP.get(gateway.baseURL + "/healthz").status == 200)
        } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }

    @Test func theCommandLineSeamWorksThroughTheAdminAPI() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let upstream = try await FaultyUpstream.start()
        let gateway = try await RunningGateway.start(
            Self.configuration(upstream: upstream.baseURL, directory: directory), environment: Self.environment, openStore: true)
        let client = AdminAPIClient(baseURL: gateway.baseURL, token: Self.adminToken)
        do {
            let administration: any IdentityAdministration = client
            try await administration.createTenant(Tenant(id: "acme", models: .only(["chat"]), createdAt: 1))
            await #expect(throws: StoreError.alreadyExists("tenant 'acme'")) { try await administration.createTenant(Tenant(id: "acme")) }
            try await administration.createPrincipal(Principal(id: "dev", tenantID: "acme", createdAt: 1))
            let updated = try await administration.updatePrincipal(tenantID: "acme", id: "dev", PrincipalUpdate(roles: ["steering"]))
            #expect(updated.roles == ["steering"])
            let issued = try await administration.createKey(NewAPIKey(tenantID: "acme", principalID: "dev", name: "cli"), at: 1)
            #expect(issued.key.secretHash.isEmpty, "no hash crosses the admin API")
            #expect(try await Self.chat(gateway, token: issued.token).status == 200)
            #expect(try await administration.keys(tenantID: "acme", principalID: nil).map(\.id) == [issued.key.id])
            let tenant = try await administration.updateTenant(id: "acme", TenantUpdate(models: .all))
            #expect(tenant.models == .all)
            #expect(try await Self.chat(gateway, model: "other", token: issued.token).status == 200)
            let revoked = try await administration.revokeKey(id: issued.key.id, at: 2)
            #expect(revoked.revokedAt != nil)
            #expect(try await Self.chat(gateway, token: issued.token).status == 401)
            await #expect(throws: StoreError.self) { try await administration.tenant(id: "nobody") }
            do {
                _ = try await administration.createKey(NewAPIKey(tenantID: "acme", principalID: "dev", name: "a\u{1}b"), at: 1)
                Issue.record("a control character in a name was accepted")
            } catch {
                guard case .invalid(let field, _) = error else { throw error }
                #expect(field == "name")
            }
            let wrong = AdminAPIClient(baseURL: gateway.baseURL, token: "wrong")
            await #expect(throws: StoreError.self) { try await wrong.tenants() }
            await wrong.close()
        } catch {
            await client.close()
            await gateway.stop()
            await upstream.stop()
            throw error
        }
        await client.close()
        await gateway.stop()
        await upstream.stop()
    }

    /// The README's example: a key made with the admin API (as `proxima keys create` makes it),
    /// used by the official openai Python client.
    @Test(.enabled(if: RealEngines.pythonAvailable, "PROXIMA_PYTHON (a venv with openai) is not set; run ./scripts/test"))
    func theOfficialOpenAIClientCallsWithAKey() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let upstream = try await FaultyUpstream.start()
        let gateway = try await RunningGateway.start(
            Self.configuration(upstream: upstream.baseURL, directory: directory), environment: Self.environment, openStore: true)
        do {
            let (token, _) = try await Self.provision(gateway)
            let (status, output) = try await Process.runCapturingOutput(
                RealEngines.python!, [RealEngines.repositoryRoot + "/Tests/e2e/openai_keys_check.py", gateway.baseURL, token, "chat", "other"],
                timeout: .seconds(60))
            #expect(status == 0, "openai keys checks failed:\n\(output)")
            #expect(output.contains("all openai keys checks passed"))
        } catch {
            await gateway.stop()
            await upstream.stop()
            throw error
        }
        await gateway.stop()
        await upstream.stop()
    }

    @Test func aFailedPollKeepsTheLastIdentitiesAndIsCounted() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteStore.open(path: directory + "/proxima.sqlite")
        try await store.createTenant(Tenant(id: "acme", createdAt: 1))
        try await store.createPrincipal(Principal(id: "dev", tenantID: "acme", createdAt: 1))
        let issued = try await store.createKey(NewAPIKey(tenantID: "acme", principalID: "dev"), at: Date().timeIntervalSince1970)
        let gateway = try Gateway(
            configuration: Self.configuration(upstream: "http://127.0.0.1:9/v1", directory: directory), environment: [:],
            logger: .init(label: "test"), store: store)
        try await gateway.loadIdentities()
        #expect(gateway.directory.index.keys[issued.key.id] != nil)
        await store.close()
        // The store is gone: polls fail, the key stays known, each failure is counted.
        await gateway.refreshIdentities()
        await gateway.refreshIdentities()
        #expect(gateway.directory.index.keys[issued.key.id] != nil)
        let exposition = String(decoding: gateway.metrics.exposition(), as: UTF8.self)
        #expect(exposition.contains("proxima_store_poll_failures_total 2"))
        try await gateway.client.shutdown()
        try await gateway.plainClient.shutdown()
    }
}
