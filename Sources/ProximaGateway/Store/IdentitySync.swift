import Logging
import ProximaCore
import ProximaStore
import ServiceLifecycle
import Synchronization

/// Keeps the gateway's ``IdentityDirectory`` in step with the store: the whole snapshot at start,
/// then one `identityVersion()` query every `store.refresh_seconds` and a new snapshot only when the
/// version moved. A failed poll keeps the identities last loaded (requests go on being served from
/// memory), is logged once per outage and counted in `proxima_store_poll_failures_total`.
final class IdentitySync: Sendable {
    let store: any ProximaStore
    let directory: IdentityDirectory
    let metrics: GatewayMetrics
    let logger: Logger

    private struct State {
        /// The version of the snapshot in the directory; nil before the first load.
        var version: Int64?
        /// Whether the last poll failed (an outage is logged once, when it starts and when it ends).
        var failing = false
    }

    private let state = Mutex(State())

    init(store: any ProximaStore, directory: IdentityDirectory, metrics: GatewayMetrics, logger: Logger) {
        self.store = store
        self.directory = directory
        self.metrics = metrics
        self.logger = logger
    }

    /// The version of the identities the directory holds now.
    var loadedVersion: Int64? { state.withLock { $0.version } }

    /// Loads the whole snapshot into the directory, whatever the version.
    func load() async throws(StoreError) {
        let identities = try await store.identitySnapshot()
        install(identities)
    }

    /// Asks the store for its version and loads a new snapshot when it differs from the one held.
    /// Failures are absorbed: the directory keeps what it has.
    func poll() async {
        do {
            let version = try await store.identityVersion()
            if version != loadedVersion {
                install(try await store.identitySnapshot())
            }
            let recovered = state.withLock { state in
                defer { state.failing = false }
                return state.failing
            }
            if recovered { logger.notice("the store answers again; identities are current") }
        } catch {
            metrics.recordStorePollFailure()
            let first = state.withLock { state in
                defer { state.failing = true }
                return !state.failing
            }
            if first {
                logger.error(
                    "cannot read identities from the store; serving the last ones loaded until it answers",
                    metadata: ["error": "\(error)"])
            }
        }
    }

    private func install(_ identities: StoredIdentities) {
        // Two loads may race (a poll and an admin write's refresh): never go back to an older version.
        let newer = state.withLock { state in
            guard state.version.map({ identities.version >= $0 }) ?? true else { return false }
            state.version = identities.version
            return true
        }
        guard newer else { return }
        directory.replace(with: identities.snapshot)
        metrics.recordIdentityReload()
        logger.debug("identities loaded from the store", metadata: ["version": "\(identities.version)", "keys": "\(identities.keys.count)"])
    }
}

/// The service polling the store for identity changes every `store.refresh_seconds` (read from the
/// running configuration, so a reload can change it).
struct IdentityPoller: Service {
    let sync: IdentitySync
    let interval: @Sendable () -> Double

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let seconds = min(max(interval(), StoreSettings.refreshRange.lowerBound), StoreSettings.refreshRange.upperBound)
                do {
                    try await Task.sleep(for: .milliseconds(Int64(seconds * 1_000)))
                } catch {
                    return
                }
                await sync.poll()
            }
        }
    }
}
