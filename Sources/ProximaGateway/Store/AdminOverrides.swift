import Foundation
import Logging
import ProximaCore
import ProximaStore
import Synchronization

/// Admin changes kept in the store (as ``AdminDocument``s), so that neither a restart nor a reload
/// of the file undoes them. Kinds:
///
/// | kind | name | what it records |
/// |---|---|---|
/// | `endpoint` | the endpoint | an endpoint added with `POST /admin/endpoints` (its settings) |
/// | `endpoint-removed` | the endpoint | an endpoint removed with `DELETE /admin/endpoints/{name}` |
/// | `endpoint-drain` | the endpoint | an endpoint drained (undrain deletes the record) |
/// | `routing` | `routing` | the routing settings after `PATCH /admin/routing` |
///
/// The rule when they meet the file: the store wins for the same endpoint name and for the routing
/// settings; everything else comes from the file. A stored record that no longer fits (an endpoint
/// whose site the file dropped, say) is skipped with a warning, never a failed start.
final class AdminOverrides: Sendable {
    static let endpointKind = "endpoint"
    static let removedKind = "endpoint-removed"
    static let drainKind = "endpoint-drain"
    static let routingKind = "routing"

    private let store: (any ProximaStore)?
    private let logger: Logger
    /// The records as this gateway last read or wrote them: a reload applies them without a query.
    private let cached = Mutex<[AdminDocument]>([])

    init(store: (any ProximaStore)?, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// Reads the stored records (at start).
    func load() async throws(StoreError) {
        guard let store else { return }
        let documents = try await store.documents(kind: nil)
        cached.withLock { $0 = documents }
    }

    var documents: [AdminDocument] { cached.withLock { $0 } }

    /// Records a change; a store that cannot take it is logged, and the change holds until a restart.
    func record(kind: String, name: String, json: String) async {
        let document = AdminDocument(kind: kind, name: name, json: json, updatedAt: Date().timeIntervalSince1970)
        cached.withLock { documents in
            documents.removeAll { $0.kind == kind && $0.name == name }
            documents.append(document)
        }
        guard let store else { return }
        do {
            try await store.putDocument(document)
        } catch {
            logger.warning("an admin change was not saved: it holds until a restart", metadata: ["kind": "\(kind)", "name": "\(name)", "error": "\(error)"])
        }
    }

    func forget(kind: String, name: String) async {
        cached.withLock { documents in documents.removeAll { $0.kind == kind && $0.name == name } }
        guard let store else { return }
        do {
            _ = try await store.deleteDocument(kind: kind, name: name)
        } catch {
            logger.warning("an admin change was not saved: it holds until a restart", metadata: ["kind": "\(kind)", "name": "\(name)", "error": "\(error)"])
        }
    }

    /// `file` with the stored changes applied, and the endpoints to drain.
    static func applying(_ documents: [AdminDocument], to file: ProximaConfiguration, logger: Logger) -> (
        configuration: ProximaConfiguration, drained: [String]
    ) {
        var configuration = file
        var drained: [String] = []
        let decoder = JSONDecoder()
        for document in documents.sorted(by: { $0.updatedAt < $1.updatedAt }) {
            switch document.kind {
            case removedKind:
                configuration.endpoints.removeAll { $0.name == document.name }
            case endpointKind:
                guard let endpoint = try? decoder.decode(EndpointSettings.self, from: Data(document.json.utf8)) else {
                    logger.warning("a stored endpoint is not readable and was skipped", metadata: ["endpoint": "\(document.name)"])
                    continue
                }
                configuration.endpoints.removeAll { $0.name == endpoint.name }
                configuration.endpoints.append(endpoint)
            case routingKind:
                guard let routing = try? decoder.decode(RoutingSettings.self, from: Data(document.json.utf8)) else {
                    logger.warning("the stored routing settings are not readable and were skipped")
                    continue
                }
                configuration.routing = routing
            case drainKind:
                drained.append(document.name)
            default:
                continue
            }
        }
        return (configuration, drained)
    }
}
