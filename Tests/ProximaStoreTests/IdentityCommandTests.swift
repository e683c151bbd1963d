import Foundation
import ProximaCore
import Testing

@testable import ProximaStore

/// `proxima tenants|principals|keys` as a user runs them: the built executable (beside the test
/// bundle) on a SQLite store in a temporary data directory.
@Suite struct IdentityCommandTests {
    /// The `proxima` executable of this build.
    static let executable: String = {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("proxima").path
    }()

    func proxima(_ arguments: [String], environment: [String: String] = [:]) async throws -> Subprocess.Result {
        try await Subprocess.run(Self.executable, arguments, environment: environment)
    }

    @Test func identitiesAreManagedAndNoSecretIsEverPrintedTwice() async throws {
        let database = try await TestDatabase.make(.sqlite)
        defer { database.remove() }
        let dataDirectory = (database.sqlitePath as NSString).deletingLastPathComponent
        let store = ["--data-dir", dataDirectory]

        #expect(try await proxima(["tenants", "create", "acme", "--model", "llama-3.1-*", "--requests-per-minute", "600"] + store).status == 0)
        #expect(try await proxima(["principals", "create", "acme", "ci", "--role", "steering"] + store).status == 0)
        let created = try await proxima(["keys", "create", "acme", "ci", "--name", "deploy", "--expires-in", "30d"] + store)
        #expect(created.status == 0)
        let token = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let parsed = try #require(APIKeyToken(parsing: token))
        #expect(created.errors.contains("shown only now"))

        // The stored key matches the printed token, which is nowhere else.
        let opened = try await database.open()
        let key = try await opened.key(id: String(parsed.id))
        #expect(APIKeySecret.matches(parsed.secret, key))
        await opened.close()

        for arguments in [["keys", "list", "acme"], ["keys", "list", "acme", "--json"], ["tenants", "show", "acme"], ["tenants", "show", "acme", "--json"]] {
            let listed = try await proxima(arguments + store)
            #expect(listed.status == 0)
            #expect(listed.output.contains(key.id))
            #expect(!listed.output.contains(parsed.secret) && !listed.output.contains(key.secretHash))
            #expect(!listed.output.lowercased().contains("hash"))
        }
        let tenants = try await proxima(["tenants", "list", "--json"] + store)
        let views = try JSONDecoder().decode([TenantView].self, from: Data(tenants.output.utf8))
        #expect(views.map(\.id) == ["acme"] && views[0].limits.requestsPerMinute == 600 && views[0].models == ["llama-3.1-*"])

        // Revoking by the whole token works too and prints only the id.
        let revoked = try await proxima(["keys", "revoke", token] + store)
        #expect(revoked.status == 0 && revoked.output.contains(key.id) && !revoked.output.contains(parsed.secret))
        let reopened = try await database.open()
        #expect(try await reopened.key(id: key.id).revokedAt != nil)
        await reopened.close()
    }

    @Test func failuresHaveTheirExitCodeAndAMessage() async throws {
        let database = try await TestDatabase.make(.sqlite)
        defer { database.remove() }
        let store = ["--data-dir", (database.sqlitePath as NSString).deletingLastPathComponent]
        #expect(try await proxima(["tenants", "create", "acme"] + store).status == 0)

        let duplicate = try await proxima(["tenants", "create", "acme"] + store)
        #expect(duplicate.status == 65 && duplicate.errors.contains("tenant 'acme' already exists"))
        let missing = try await proxima(["keys", "revoke", "aaaaaaaaaaaa"] + store)
        #expect(missing.status == 65 && missing.errors.contains("does not exist"))
        let invalid = try await proxima(["tenants", "create", "Not A Slug"] + store)
        #expect(invalid.status == 64 && invalid.errors.contains("id:"))
        let negative = try await proxima(["tenants", "update", "acme", "--requests-per-minute=-5"] + store)
        #expect(negative.status == 64 && negative.errors.contains("limits.requests_per_minute"))
        let unset = try await proxima(["tenants", "list", "--database-url-env", "PROXIMA_TEST_UNSET_URL"])
        #expect(unset.status == 78 && unset.errors.contains("PROXIMA_TEST_UNSET_URL is not set"))
        let port = try freePort()
        let unreachable = try await proxima(
            ["tenants", "list", "--database-url-env", "PROXIMA_TEST_URL"],
            environment: ["PROXIMA_TEST_URL": "postgres://proxima:hunter2@127.0.0.1:\(port)/proxima?sslmode=disable"])
        #expect(unreachable.status == 69 && unreachable.errors.contains("127.0.0.1:\(port)"))
        #expect(!unreachable.errors.contains("hunter2"))
    }
}
