import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ProximaAudit
import ProximaCore

extension Gateway {
    /// Opens the configuration's audit log when `audit.enabled` (nil otherwise): its directory under
    /// `data_dir` unless `audit.directory`, its origin `proxima/<host name>` unless `audit.origin`.
    public static func openAuditLog(configuration: ProximaConfiguration, logger: Logger) async throws -> AuditLog? {
        let settings = configuration.audit
        guard settings.enabled else { return nil }
        return try await AuditLog.open(
            directory: settings.logDirectory(dataDirectory: configuration.dataDirectory), origin: settings.origin ?? defaultAuditOrigin(),
            settings: settings, logger: logger)
    }

    /// `proxima/<host name>`: each replica's own origin unless configured.
    public static func defaultAuditOrigin() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let host =
            gethostname(&buffer, buffer.count) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "localhost"
        let origin = "proxima/" + String(host.unicodeScalars.filter { $0.value > 0x20 && $0.value < 0x7F && $0 != "+" })
        return AuditOrigin.isValid(origin) ? origin : "proxima/gateway"
    }

    /// Writes what is pending and signs a last checkpoint; call after the server has stopped.
    public func closeAudit() async {
        await auditLog?.close()
    }

    /// `/admin/audit/...`: checkpoints, proofs, records and retention (docs/governance.md).
    func addAuditRoutes(to admin: RouterGroup<GatewayRequestContext>) {
        admin.get("/audit/checkpoint") { request, _ in
            try authorizeAdmin(request)
            let log = try auditLogOrRefuse()
            let note = try await Self.auditCall { try await log.checkpointNow() }
            return textResponse(note)
        }
        admin.get("/audit/key") { request, _ in
            try authorizeAdmin(request)
            return textResponse(try auditLogOrRefuse().verifierKey + "\n")
        }
        admin.get("/audit/proof/inclusion") { request, _ in
            try authorizeAdmin(request)
            let log = try auditLogOrRefuse()
            let query = request.uri.queryParameters
            var seq = try Self.integer(query.get("seq"), name: "seq")
            if seq == nil, let requestID = query.get("request_id") {
                let lines = try await Self.auditCall { try await log.search(AuditQuery(requestID: requestID, kind: .request, limit: 1)) }
                guard let line = lines.first, let record = try? AuditRecord.decode(line: Array(line.utf8)) else {
                    throw GatewayError(
                        status: .notFound, type: "invalid_request_error", code: "audit_record_not_found",
                        message: "No audit record has request id '\(requestID)'.")
                }
                seq = record.seq
            }
            guard let seq else { throw GatewayError.invalidRequest("give seq or request_id", param: "seq") }
            let size = try Self.integer(query.get("tree_size"), name: "tree_size")
            let proof = try await Self.auditCall { try await log.inclusionProof(seq: seq, treeSize: size) }
            return jsonResponse(try Self.json(proof))
        }
        admin.get("/audit/proof/consistency") { request, _ in
            try authorizeAdmin(request)
            let log = try auditLogOrRefuse()
            let query = request.uri.queryParameters
            guard let from = try Self.integer(query.get("from"), name: "from") else {
                throw GatewayError.invalidRequest("give from (a signed tree size)", param: "from")
            }
            let to = try Self.integer(query.get("to"), name: "to")
            let proof = try await Self.auditCall { try await log.consistencyProof(from: from, to: to) }
            return jsonResponse(try Self.json(proof))
        }
        admin.get("/audit/records") { request, _ in
            try authorizeAdmin(request)
            let log = try auditLogOrRefuse()
            let query = try Self.auditQuery(request.uri.queryParameters)
            let lines = try await Self.auditCall { try await log.search(query) }
            return jsonResponse("{\"records\":[" + lines.joined(separator: ",") + "]}")
        }
        admin.post("/audit/retention") { request, _ in
            try authorizeAdmin(request)
            let log = try auditLogOrRefuse()
            let body = try await request.body.collect(upTo: 4096)
            struct Retention: Decodable {
                var before: String?
                var olderThanDays: Double?
                var archive: Bool?
                enum CodingKeys: String, CodingKey { case before, olderThanDays = "older_than_days", archive }
            }
            let asked: Retention
            do {
                asked = try JSONDecoder().decode(Retention.self, from: Data(body.readableBytesView))
            } catch {
                throw GatewayError.invalidRequest("the body must be {\"before\": \"<RFC 3339 time>\"} or {\"older_than_days\": N}")
            }
            let cutoff: Double
            if let before = asked.before {
                guard let date = ISO8601DateFormatter().date(from: before) else {
                    throw GatewayError.invalidRequest("before must be an RFC 3339 time such as 2026-01-01T00:00:00Z", param: "before")
                }
                cutoff = date.timeIntervalSince1970
            } else if let days = asked.olderThanDays ?? state.snapshot.configuration.audit.retentionDays, days > 0, days.isFinite {
                cutoff = Date().timeIntervalSince1970 - days * 86_400
            } else {
                throw GatewayError.invalidRequest("give before, older_than_days, or set audit.retention_days", param: "before")
            }
            let actor = adminActor(request)
            let summary = try await Self.auditCall { try await log.prune(before: cutoff, archive: asked.archive ?? false, actor: actor) }
            return jsonResponse(try Self.json(summary))
        }
    }

    func auditLogOrRefuse() throws(GatewayError) -> AuditLog {
        guard let auditLog else {
            throw GatewayError(
                status: .notFound, type: "invalid_request_error", code: "audit_disabled", message: "Auditing is off (audit.enabled).")
        }
        return auditLog
    }

    /// Runs a log call; its failures are 400 (a seq or size the log does not have) in the OpenAI
    /// format.
    static func auditCall<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError(status: .badRequest, type: "invalid_request_error", code: "audit_query_invalid", message: "\(error)")
        }
    }

    static func integer(_ text: String?, name: String) throws(GatewayError) -> Int? {
        guard let text else { return nil }
        guard text.utf8.count <= 19, let value = Int(text), value >= 0 else {
            throw GatewayError.invalidRequest("\(name) must be a non-negative integer", param: name)
        }
        return value
    }

    static func time(_ text: String?, name: String) throws(GatewayError) -> Double? {
        guard let text else { return nil }
        if let seconds = Double(text), seconds.isFinite { return seconds }
        guard text.utf8.count <= 64, let date = ISO8601DateFormatter().date(from: String(text)) else {
            throw GatewayError.invalidRequest("\(name) must be Unix seconds or an RFC 3339 time", param: name)
        }
        return date.timeIntervalSince1970
    }

    /// A search from `tenant`, `request_id`, `since`, `until`, `kind` and `limit` (at most 1000).
    static func auditQuery(_ parameters: Parameters) throws(GatewayError) -> AuditQuery {
        var query = AuditQuery()
        query.tenant = parameters.get("tenant")
        query.requestID = parameters.get("request_id")
        query.since = try time(parameters.get("since"), name: "since")
        query.until = try time(parameters.get("until"), name: "until")
        if let kind = parameters.get("kind") {
            guard let parsed = AuditRecord.Kind(rawValue: kind) else {
                throw GatewayError.invalidRequest("kind must be request, admin or retention", param: "kind")
            }
            query.kind = parsed
        }
        if let limit = try integer(parameters.get("limit"), name: "limit") {
            guard (1...1000).contains(limit) else { throw GatewayError.invalidRequest("limit must be 1 to 1000", param: "limit") }
            query.limit = limit
        }
        return query
    }

    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    func textResponse(_ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// Who is acting on the admin API: `admin-token`, or the principal whose credential was used.
    func adminActor(_ request: Request) -> String {
        let snapshot = state.snapshot
        if let token = environment[snapshot.configuration.admin.tokenEnv], !token.isEmpty,
            request.headers[.authorization] == "Bearer \(token)"
        {
            return "admin-token"
        }
        if let identity = try? identification.identity(request.headers, mode: snapshot.trust.mode, at: Date().timeIntervalSince1970) {
            return "\(identity.tenantID)/\(identity.principalID)"
        }
        return "unknown"
    }

    /// The audit action an admin request stands for (`key.created`, `endpoint.drained`, ...), and
    /// its target; nil for reads and for retention (which records itself).
    static func adminAction(method: HTTPRequest.Method, path: String) -> (action: String, target: String?)? {
        guard method != .get, method != .head else { return nil }
        let parts = path.split(separator: "/").map(String.init)
        guard parts.first == "admin", parts.count >= 2 else { return nil }
        let verb: String
        switch method {
        case .post: verb = "created"
        case .delete: verb = "deleted"
        case .patch, .put: verb = "changed"
        default: verb = method.rawValue.lowercased()
        }
        switch Array(parts.dropFirst()) {
        case ["audit", "retention"]: return nil
        case ["reload"]: return ("config.reloaded", nil)
        case ["routing"]: return ("routing.changed", nil)
        case let rest where rest.count == 3 && rest[0] == "endpoints" && (rest[2] == "drain" || rest[2] == "undrain"):
            return ("endpoint.\(rest[2])ed", rest[1])
        case let rest where rest.first == "endpoints":
            return (method == .post ? "endpoint.added" : method == .delete ? "endpoint.removed" : "endpoint.\(verb)", rest.dropFirst().first)
        case let rest where rest.first == "keys":
            return (method == .delete ? "key.revoked" : "key.\(verb)", rest.dropFirst().first)
        case let rest where rest.contains("principals"):
            return ("principal.\(verb)", rest.last == "principals" ? rest[1] : rest.last)
        case let rest where rest.first == "tenants":
            return ("tenant.\(verb)", rest.dropFirst().first)
        default:
            return ("admin.\(verb)", path)
        }
    }
}

/// Records every admin change that succeeded (durable before it is answered).
struct AdminAuditMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let gateway: Gateway

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response = try await next(request, context)
        guard let audit = gateway.audit, response.status.code < 300,
            let (action, target) = Gateway.adminAction(method: request.method, path: request.uri.path)
        else { return response }
        try await audit.admin(action: action, actor: gateway.adminActor(request), target: target)
        return response
    }
}
