import Logging
import ProximaCore

/// Opens the store a configuration names: what `proxima serve` and the identity commands call at
/// start. A store that cannot be used fails here, with a message that says which database and why
/// (never its password), rather than at the first request.
public enum ConfiguredStore {
    /// Opens `configuration.store`; `environment` supplies the PostgreSQL URL (`store.url_env`).
    public static func open(
        _ configuration: ProximaConfiguration, environment: [String: String], logger: Logger = Logger(label: "proxima.store")
    ) async throws(StoreError) -> any ProximaStore {
        try await open(configuration.store, dataDirectory: configuration.dataDirectory, environment: environment, logger: logger)
    }

    public static func open(
        _ settings: StoreSettings, dataDirectory: String, environment: [String: String],
        logger: Logger = Logger(label: "proxima.store")
    ) async throws(StoreError) -> any ProximaStore {
        switch settings.kind {
        case .sqlite:
            return try await SQLiteStore.open(path: settings.sqlitePath(dataDirectory: dataDirectory), timeoutSeconds: settings.timeoutSeconds)
        case .postgres:
            let location = try location(settings, environment: environment)
            return try await PostgresStore.open(
                location, timeoutSeconds: settings.timeoutSeconds, maxConnections: settings.maxConnections, logger: logger)
        }
    }

    /// The PostgreSQL database of `settings`, from the environment variable it names.
    public static func location(_ settings: StoreSettings, environment: [String: String]) throws(StoreError) -> PostgresLocation {
        guard let name = settings.urlEnv else {
            throw .invalid(field: "store.url_env", message: "is required with kind: postgres (the variable holding the database URL)")
        }
        guard let url = environment[name], !url.isEmpty else {
            throw .invalid(field: "store.url_env", message: "the environment variable \(name) is not set")
        }
        do {
            return try PostgresLocation(url: url)
        } catch {
            if case .invalid(_, let message) = error {
                throw .invalid(field: "store.url_env", message: "the URL in \(name) \(message)")
            }
            throw error
        }
    }
}
