import Foundation
import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import ProximaCore

/// The control plane under `/admin`, for operators holding the admin token (from the variable
/// `admin.token_env`, `PROXIMA_ADMIN_TOKEN` by default) or, when authentication is on, the
/// credential of a principal with the `admin` role (the API is off with neither):
///
/// - `GET /admin/fleet`: every endpoint with its live telemetry;
/// - `POST /admin/endpoints/{name}/drain` and `/undrain`;
/// - `POST /admin/endpoints` (an endpoint as in the configuration, JSON) and `DELETE /admin/endpoints/{name}`;
/// - `GET /admin/routing` and `PATCH /admin/routing` (top-level keys of the `routing` section);
/// - `POST /admin/reload`: reads the configuration file again (as SIGHUP does);
/// - tenants, principals and keys (see `Store/AdminIdentityAPI.swift`);
/// - the audit log: checkpoints, proofs, records and retention (see `Audit/Gateway+Audit.swift`).
///
/// Every change is checked as a whole configuration first; a bad one is refused with the problems
/// listed and changes nothing. Changes made here last until the next reload from the file.
extension Gateway {
    func addAdminRoutes(to router: Router<GatewayRequestContext>) {
        let admin = router.group("/admin").add(middleware: AdminAuditMiddleware(gateway: self))
        addIdentityRoutes(to: admin)
        addAuditRoutes(to: admin)
        admin.get("/fleet") { request, _ in
            try authorizeAdmin(request)
            return jsonResponse(fleetStateJSON())
        }
        admin.post("/endpoints/{name}/drain") { request, context in
            try authorizeAdmin(request)
            let name = context.parameters.get("name") ?? ""
            let response = try setDrained(name, true)
            await overrides.record(kind: AdminOverrides.drainKind, name: name, json: "true")
            return response
        }
        admin.post("/endpoints/{name}/undrain") { request, context in
            try authorizeAdmin(request)
            let name = context.parameters.get("name") ?? ""
            let response = try setDrained(name, false)
            await overrides.forget(kind: AdminOverrides.drainKind, name: name)
            return response
        }
        admin.post("/endpoints") { request, _ in
            try authorizeAdmin(request)
            let body = try await request.body.collect(upTo: 1 << 20)
            let endpoint: EndpointSettings
            do {
                endpoint = try JSONDecoder().decode(EndpointSettings.self, from: Data(body.readableBytesView))
            } catch {
                throw GatewayError.invalidRequest("the body is not an endpoint: \(Self.describe(error))")
            }
            var configuration = state.snapshot.configuration
            if let problem = Self.adminEndpointProblem(endpoint, admin: configuration.admin) {
                throw GatewayError(
                    status: .badRequest, type: "invalid_request_error", code: "invalid_configuration", param: "api_key_env",
                    message: "The change was refused and nothing changed: \(problem)")
            }
            configuration.endpoints.append(endpoint)
            try applyAdminChange(configuration)
            await overrides.forget(kind: AdminOverrides.removedKind, name: endpoint.name)
            await overrides.record(kind: AdminOverrides.endpointKind, name: endpoint.name, json: String(buffer: body))
            logger.notice("endpoint added by the admin API", metadata: ["endpoint": "\(endpoint.name)"])
            return jsonResponse("{\"added\":\(JSONScanner.quoted(endpoint.name))}", status: .created)
        }
        admin.delete("/endpoints/{name}") { request, context in
            try authorizeAdmin(request)
            let name = context.parameters.get("name") ?? ""
            var configuration = state.snapshot.configuration
            guard let index = configuration.endpoints.firstIndex(where: { $0.name == name }) else {
                throw GatewayError(status: .notFound, type: "invalid_request_error", code: "endpoint_not_found", message: "No endpoint is named '\(name)'.")
            }
            configuration.endpoints.remove(at: index)
            try applyAdminChange(configuration)
            await overrides.forget(kind: AdminOverrides.endpointKind, name: name)
            await overrides.forget(kind: AdminOverrides.drainKind, name: name)
            await overrides.record(kind: AdminOverrides.removedKind, name: name, json: "true")
            logger.notice("endpoint removed by the admin API", metadata: ["endpoint": "\(name)"])
            return jsonResponse("{\"removed\":\(JSONScanner.quoted(name))}")
        }
        admin.get("/routing") { request, _ in
            try authorizeAdmin(request)
            return jsonResponse(try Self.encode(state.snapshot.configuration.routing))
        }
        admin.patch("/routing") { request, _ in
            try authorizeAdmin(request)
            let body = try await request.body.collect(upTo: 1 << 20)
            var configuration = state.snapshot.configuration
            configuration.routing = try Self.merged(configuration.routing, patch: Data(body.readableBytesView))
            try applyAdminChange(configuration)
            await overrides.record(kind: AdminOverrides.routingKind, name: AdminOverrides.routingKind, json: try Self.encode(configuration.routing))
            logger.notice("routing changed by the admin API", metadata: ["policy": "\(configuration.routing.policy)"])
            return jsonResponse(try Self.encode(configuration.routing))
        }
        admin.post("/reload") { request, _ in
            try authorizeAdmin(request)
            let snapshot = try reload()
            return jsonResponse(
                "{\"reloaded\":true,\"generation\":\(snapshot.generation),\"endpoints\":\(snapshot.fleet.endpoints.count)}")
        }
    }

    /// What the admin API may not do with an endpoint that the configuration file may: name an
    /// `api_key_env` outside `admin.allowed_key_env`. Otherwise whoever holds the admin token could
    /// send any variable of the process (the admin token itself, another endpoint's key) to a host of
    /// their choice.
    static func adminEndpointProblem(_ endpoint: EndpointSettings, admin: AdminSettings) -> String? {
        guard let variable = endpoint.apiKeyEnv, !admin.allowedKeyEnv.contains(variable) else { return nil }
        let allowed = admin.allowedKeyEnv.isEmpty ? "none are allowed" : "allowed: \(admin.allowedKeyEnv.joined(separator: ", "))"
        return "api_key_env '\(variable)' is not in admin.allowed_key_env (\(allowed)); an endpoint added through the admin API may only read its key from a variable listed there"
    }

    /// Admits a request with the admin token (constant-time comparison) or, when authentication
    /// is on, the credential of a principal with the `admin` role. Without a token and with
    /// authentication off the admin API is off.
    func authorizeAdmin(_ request: Request) throws(GatewayError) {
        let snapshot = state.snapshot
        let variable = snapshot.configuration.admin.tokenEnv
        let token = environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        let mode = snapshot.trust.mode
        guard token != nil || mode.isRequired else {
            throw GatewayError(
                status: .notFound, type: "invalid_request_error", code: "admin_disabled",
                message: "The admin API is off; set \(variable) to a token to turn it on.")
        }
        let given = request.headers[.authorization] ?? ""
        var difference = 1
        if let token {
            let expected = "Bearer \(token)"
            difference = given.utf8.count ^ expected.utf8.count
            for (a, b) in zip(given.utf8, expected.utf8) { difference |= Int(a ^ b) }
        }
        if difference != 0, mode.isRequired,
            let identity = try? identification.identity(request.headers, mode: mode, at: Date().timeIntervalSince1970),
            identity.mayUseAdmin
        {
            difference = 0
        }
        guard difference == 0 else {
            var headers = HTTPFields()
            headers[.wwwAuthenticate] = "Bearer realm=\"proxima-admin\""
            throw GatewayError(
                status: .unauthorized, type: "invalid_request_error", code: "invalid_admin_token",
                message: "The admin API needs 'Authorization: Bearer <admin token>' or the credential of a principal with the admin role.",
                headers: headers)
        }
    }

    /// The keys that differ between two configurations and only take effect at start: the listener,
    /// the upstream clients' connection settings (AsyncHTTPClient's are fixed when it is made), the
    /// shutdown grace (given to the service group at start), logging (bootstrapped once) and the audit
    /// log (opened once).
    static func restartOnlyChanges(from old: ProximaConfiguration, to new: ProximaConfiguration) -> [String] {
        var keys: [String] = []
        func compare<Value: Equatable>(_ key: String, _ value: (ProximaConfiguration) -> Value) {
            if value(old) != value(new) { keys.append(key) }
        }
        compare("server.host") { $0.server.host }
        compare("server.port") { $0.server.port }
        compare("server.timeouts.connect") { $0.server.timeouts.connect }
        compare("server.timeouts.idle") { $0.server.timeouts.idle }
        compare("server.timeouts.shutdown_grace") { $0.server.timeouts.shutdownGrace }
        compare("server.max_connections_per_upstream") { $0.server.maxConnectionsPerUpstream }
        compare("server.upstream_client") { $0.server.upstreamClient }
        compare("logging") { $0.logging }
        compare("auth.jwt") { $0.auth.jwt }
        // The audit log is opened, and its key and text tenants read, once at start.
        compare("audit") { $0.audit }
        return keys
    }

    /// Reads the configuration again from its source and applies it (SIGHUP, `POST /admin/reload`).
    @discardableResult
    func reload() throws(GatewayError) -> RoutingSnapshot {
        guard let reloadSource else {
            throw GatewayError(
                status: .conflict, type: "invalid_request_error", code: "no_configuration_file",
                message: "This gateway was not started from a configuration file; there is nothing to reload.")
        }
        let configuration: ProximaConfiguration
        do {
            configuration = try reloadSource()
        } catch {
            throw GatewayError.invalidRequest("the configuration file cannot be used: \(error)")
        }
        // Admin changes kept in the store win over the file for the same endpoint and for routing.
        let (merged, drained) = AdminOverrides.applying(overrides.documents, to: configuration, logger: logger)
        let snapshot = try applyAdminChange(merged)
        for name in drained { _ = state.setDrained(name, true) }
        logger.notice("configuration reloaded", metadata: ["generation": "\(snapshot.generation)"])
        return snapshot
    }

    /// Applies a whole new configuration, or refuses it with every problem and changes nothing.
    /// Every setting applies to the requests that start after the change, except those fixed when
    /// the gateway starts (see ``restartOnlyChanges(from:to:)``): a change to one of them refuses the
    /// whole change, naming the keys, rather than being silently kept.
    @discardableResult
    func applyAdminChange(_ configuration: ProximaConfiguration) throws(GatewayError) -> RoutingSnapshot {
        let current = state.snapshot.configuration
        let fixed = Self.restartOnlyChanges(from: current, to: configuration)
        if !fixed.isEmpty {
            throw GatewayError(
                status: .badRequest, type: "invalid_request_error", code: "restart_required",
                message: "The change was refused and nothing changed: \(fixed.joined(separator: ", ")) cannot change while the gateway runs; restart it to change them.")
        }
        do {
            let snapshot = try state.replace(configuration: configuration, environment: environment)
            callers.apply(configuration.server.callers)
            directory.configure(configuration)
            return snapshot
        } catch {
            throw GatewayError(
                status: .badRequest, type: "invalid_request_error", code: "invalid_configuration",
                message: "The change was refused and nothing changed: " + error.problems.map(\.description).joined(separator: "; "))
        }
    }

    private func setDrained(_ name: String, _ drained: Bool) throws -> Response {
        guard state.setDrained(name, drained) else {
            throw GatewayError(status: .notFound, type: "invalid_request_error", code: "endpoint_not_found", message: "No endpoint is named '\(name)'.")
        }
        logger.notice(drained ? "endpoint drained" : "endpoint undrained", metadata: ["endpoint": "\(name)"])
        return jsonResponse("{\"endpoint\":\(JSONScanner.quoted(name)),\"drained\":\(drained)}")
    }

    /// The live state of every endpoint.
    func fleetStateJSON() -> String {
        let (snapshot, telemetry, now) = state.current()
        let staleAfter = snapshot.configuration.routing.telemetry.staleAfterSeconds
        let endpoints = snapshot.fleet.endpoints.map { endpoint -> String in
            let status = telemetry[endpoint.index]
            var item = JSONObjectWriter()
            item.string("name", endpoint.name)
            item.string("site", endpoint.siteName)
            item.string("engine", endpoint.engine.rawValue)
            item.string("url", endpoint.url.description)
            item.raw("models", "[" + endpoint.upstreamModelNames.keys.sorted().map(JSONScanner.quoted).joined(separator: ",") + "]")
            item.bool("drained", status.drained)
            item.string("breaker", status.breaker.state(at: now).rawValue)
            item.int("consecutive_failures", status.breaker.consecutiveFailures)
            item.number("breaker_open_for_s", status.breaker.state(at: now) == .open ? status.breaker.openUntil - now : nil)
            item.int("in_flight", status.inFlight)
            item.int("awaiting_first_token", status.awaitingFirstToken)
            item.int("requests", status.requests)
            item.int("failures", status.failures)
            item.number("error_rate", status.errorRate)
            item.number("ttft_ms", status.ttft.map { $0 * 1000 }, digits: 1)
            item.number("time_per_output_token_ms", status.timePerOutputToken.map { $0 * 1000 }, digits: 2)
            item.number("observed_correction_ms", telemetry.residual(endpoint.index, at: now) * 1000, digits: 1)
            item.bool("last_check_ok", status.lastCheckSucceeded)
            item.number("last_check_age_s", status.lastCheck.map { now - $0 }, digits: 1)
            if let engine = status.engine, let readAt = status.engineReadAt {
                var load = JSONObjectWriter()
                load.number("running", engine.running, digits: 1)
                load.number("waiting", engine.waiting, digits: 1)
                load.number("kv_cache_usage", engine.kvCacheUsage, digits: 3)
                load.number("power_watts", engine.powerWatts, digits: 0)
                load.number("age_s", now - readAt, digits: 1)
                load.bool("fresh", now - readAt <= staleAfter)
                item.raw("engine", load.finished())
            } else {
                item.raw("engine", "null")
            }
            return item.finished()
        }
        var document = JSONObjectWriter()
        document.int("generation", snapshot.generation)
        document.string("default_policy", snapshot.configuration.routing.policy)
        document.raw("endpoints", "[" + endpoints.joined(separator: ",") + "]")
        return document.finished()
    }

    static func encode(_ routing: RoutingSettings) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(routing), as: UTF8.self)
    }

    /// The routing settings with a JSON object's top-level keys replaced (a merge patch one level deep).
    static func merged(_ routing: RoutingSettings, patch: Data) throws(GatewayError) -> RoutingSettings {
        guard let changes = (try? JSONSerialization.jsonObject(with: patch)) as? [String: Any] else {
            throw GatewayError.invalidRequest("the body must be a JSON object of routing settings")
        }
        do {
            var current = try JSONSerialization.jsonObject(with: JSONEncoder().encode(routing)) as? [String: Any] ?? [:]
            for (key, value) in changes { current[key] = value }
            return try JSONDecoder().decode(RoutingSettings.self, from: JSONSerialization.data(withJSONObject: current))
        } catch {
            throw GatewayError.invalidRequest("the routing settings are not valid: \(describe(error))")
        }
    }

    /// A decoding error as the key path and what is wrong there.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "" : keys.joined(separator: ".") + ": "
        }
        switch error {
        case .dataCorrupted(let context): return path(context) + context.debugDescription
        case .keyNotFound(let key, let context): return path(context) + "missing required key '\(key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return path(context) + context.debugDescription
        @unknown default: return "\(error)"
        }
    }
}
