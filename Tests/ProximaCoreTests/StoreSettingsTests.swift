import Foundation
import Testing

@testable import ProximaCore

@Suite struct StoreSettingsTests {
    func problems(_ change: (inout ProximaConfiguration) -> Void) -> [String: String] {
        var configuration = ConfigurationValidationTests.valid()
        change(&configuration)
        return Dictionary(configuration.problems().map { ($0.keyPath, $0.message) }, uniquingKeysWith: { first, _ in first })
    }

    @Test func theDefaultIsASQLiteFileInTheDataDirectory() {
        let configuration = ProximaConfiguration()
        #expect(configuration.store.kind == .sqlite)
        #expect(configuration.store.sqlitePath(dataDirectory: configuration.dataDirectory) == "data/proxima.sqlite")
        #expect(StoreSettings().sqlitePath(dataDirectory: "/var/lib/proxima/") == "/var/lib/proxima/proxima.sqlite")
        #expect(StoreSettings(path: "/srv/p.db").sqlitePath(dataDirectory: "ignored") == "/srv/p.db")
        #expect(problems { _ in }.isEmpty)
    }

    @Test func postgresNeedsTheNameOfAVariableNeverTheURL() {
        #expect(problems { $0.store = StoreSettings(kind: .postgres) }["store.url_env"]?.contains("required") == true)
        #expect(
            problems { $0.store = StoreSettings(kind: .postgres, urlEnv: "postgres://u:p@h/d") }["store.url_env"]?
                .contains("environment variable name") == true)
        #expect(
            problems { $0.store = StoreSettings(kind: .postgres, urlEnv: "PROXIMA_ADMIN_TOKEN") }["store.url_env"]?
                .contains("admin") == true)
        #expect(problems { $0.store = StoreSettings(kind: .postgres, urlEnv: "PROXIMA_DATABASE_URL") }.isEmpty)
        #expect(problems { $0.store = StoreSettings(kind: .postgres, path: "x.sqlite", urlEnv: "DB") }["store.path"] != nil)
        #expect(problems { $0.store = StoreSettings(kind: .sqlite, urlEnv: "DB") }["store.url_env"] != nil)
    }

    @Test(arguments: [0, -1, Double.nan, .infinity, 3_601])
    func theTimeoutIsBounded(seconds: Double) {
        #expect(problems { $0.store.timeoutSeconds = seconds }["store.timeout_seconds"] != nil)
    }

    @Test(arguments: [0, 0.01, -1, Double.nan, .infinity, 3_601])
    func theRefreshIntervalIsBounded(seconds: Double) {
        #expect(problems { $0.store.refreshSeconds = seconds }["store.refresh_seconds"] != nil)
    }

    @Test func theRefreshIntervalDefaultsToOneSecond() throws {
        #expect(StoreSettings().refreshSeconds == 1)
        let json = #"{"store": {"refresh_seconds": 0.25}}"#
        #expect(try JSONDecoder().decode(ProximaConfiguration.self, from: Data(json.utf8)).store.refreshSeconds == 0.25)
        #expect(problems { $0.store.refreshSeconds = 0.05 }.isEmpty)
    }

    @Test func pathsAndPoolSizesAreChecked() {
        #expect(problems { $0.store.maxConnections = 0 }["store.max_connections"] != nil)
        #expect(problems { $0.store.maxConnections = 1_001 }["store.max_connections"] != nil)
        #expect(problems { $0.store.path = "" }["store.path"] != nil)
        #expect(problems { $0.store.path = "data/\u{1}x" }["store.path"] != nil)
        #expect(problems { $0.dataDirectory = "" }["data_dir"] != nil)
        #expect(problems { $0.dataDirectory = String(repeating: "d", count: 5_000) }["data_dir"] != nil)
    }

    @Test func theSectionDecodesWithTheFileConventions() throws {
        let json = #"{"data_dir": "/var/lib/proxima", "store": {"kind": "postgres", "url_env": "DB_URL", "timeout_seconds": 2, "max_connections": 4}}"#
        let configuration = try JSONDecoder().decode(ProximaConfiguration.self, from: Data(json.utf8))
        #expect(configuration.dataDirectory == "/var/lib/proxima")
        #expect(configuration.store == StoreSettings(kind: .postgres, urlEnv: "DB_URL", timeoutSeconds: 2, maxConnections: 4))
        let unknown = #"{"store": {"kind": "sqlite", "url": "postgres://u:p@h/d"}}"#
        #expect(throws: (any Error).self) { try JSONDecoder().decode(ProximaConfiguration.self, from: Data(unknown.utf8)) }
    }
}
