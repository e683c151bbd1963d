import Foundation
import Logging
import ProximaAudit
import ProximaCore
import ProximaStore

/// Why a gateway could not start with its store: the database it names (a file, or the PostgreSQL
/// host and database, never a password) and the store's reason.
public struct GatewayStoreFailure: Error, Sendable, CustomStringConvertible {
    /// Which database: `SQLite file data/proxima.sqlite`, `PostgreSQL proxima@db:5432/proxima`.
    public var database: String
    public var error: StoreError

    public var description: String { "cannot use the store (\(database)): \(error)" }

    /// Whether the configuration is at fault (a variable not set, a URL that is not one) rather
    /// than the database.
    public var isConfigurationProblem: Bool {
        if case .invalid = error { return true }
        return false
    }
}

extension Gateway {
    /// Opens the configured store (migrating its schema), builds the gateway with it and loads its
    /// identities: what `proxima serve` does at start. The caller owns the store: close it
    /// (`gateway.store?.close()`) after the gateway stopped. A store that cannot be used fails here
    /// with ``GatewayStoreFailure``, before anything listens; a configuration that cannot be used
    /// with ``InvalidConfiguration``.
    public static func open(
        configuration: ProximaConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger, metrics: GatewayMetrics = GatewayMetrics(),
        reloadSource: (@Sendable () throws -> ProximaConfiguration)? = nil
    ) async throws -> Gateway {
        let database = describeDatabase(configuration, environment: environment)
        let store: any ProximaStore
        do {
            store = try await ConfiguredStore.open(configuration, environment: environment, logger: logger)
        } catch {
            throw GatewayStoreFailure(database: database, error: error)
        }
        let auditLog: AuditLog?
        do {
            auditLog = try await openAuditLog(configuration: configuration, logger: logger)
        } catch {
            await store.close()
            throw GatewayAuditFailure(directory: configuration.audit.logDirectory(dataDirectory: configuration.dataDirectory), error: error)
        }
        do {
            // Limits are shared through the store's counters when it can be shared: a PostgreSQL
            // store, which several replicas open. A SQLite file serves one gateway, which keeps its
            // limits in memory.
            let shared: (any SharedCounters)? = configuration.store.kind == .postgres ? store : nil
            let gateway = try Gateway(
                configuration: configuration, environment: environment, logger: logger, metrics: metrics, reloadSource: reloadSource, store: store,
                sharedCounters: shared, auditLog: auditLog)
            do {
                try await gateway.loadIdentities()
            } catch {
                throw GatewayStoreFailure(database: database, error: error)
            }
            do {
                try await gateway.overrides.load()
            } catch {
                throw GatewayStoreFailure(database: database, error: error)
            }
            gateway.applyStoredAdminChanges(over: configuration)
            logger.info("store opened", metadata: ["store": "\(database)"])
            return gateway
        } catch {
            await auditLog?.close()
            await store.close()
            throw error
        }
    }

    /// The database a configuration names, safe to print: the SQLite file, or the PostgreSQL
    /// location without its password (or the variable that should hold it).
    static func describeDatabase(_ configuration: ProximaConfiguration, environment: [String: String]) -> String {
        let settings = configuration.store
        switch settings.kind {
        case .sqlite:
            return "SQLite file \(settings.sqlitePath(dataDirectory: configuration.dataDirectory))"
        case .postgres:
            if let location = try? ConfiguredStore.location(settings, environment: environment) {
                return "PostgreSQL \(location)"
            }
            return "PostgreSQL from $\(settings.urlEnv ?? "?")"
        }
    }
}

extension Gateway {
    /// Applies the admin changes kept in the store over `file` (at start): the store wins for the
    /// same endpoint and for routing. Changes that no longer fit the file are logged and left out.
    func applyStoredAdminChanges(over file: ProximaConfiguration) {
        let documents = overrides.documents
        guard !documents.isEmpty else { return }
        let (merged, drained) = AdminOverrides.applying(documents, to: file, logger: logger)
        if merged != file {
            do {
                try applyAdminChange(merged)
            } catch {
                logger.warning("stored admin changes do not fit the configuration and were left out", metadata: ["error": "\(error.message)"])
            }
        }
        for name in drained where !state.setDrained(name, true) {
            logger.warning("a stored drain names no endpoint and was left out", metadata: ["endpoint": "\(name)"])
        }
        logger.notice("admin changes applied from the store", metadata: ["records": "\(documents.count)"])
    }
}

/// The audit log could not be opened (its files are inconsistent, its key unreadable, its
/// directory not writable): the gateway does not start rather than serve unrecorded.
public struct GatewayAuditFailure: Error, CustomStringConvertible {
    public var directory: String
    public var error: any Error

    public var description: String { "the audit log in \(directory) could not be opened: \(error)" }
}
