import Foundation
import HTTPTypes
import Logging
import Hummingbird
import NIOCore
import ProximaCore
import ProximaStore

/// Tenants, principals and API keys over the admin API, with the admin API's authorization:
///
/// - `GET /admin/tenants`, `POST /admin/tenants`, `GET /admin/tenants/{id}`, `PATCH /admin/tenants/{id}`;
/// - `GET /admin/tenants/{id}/principals`, `POST /admin/tenants/{id}/principals`;
/// - `POST /admin/keys` (answers the token, once), `GET /admin/keys?tenant=&principal=` (never a
///   hash or a token), `DELETE /admin/keys/{id}` (revokes).
///
/// Bodies are JSON objects whose unknown members are refused. Store errors map to OpenAI-format
/// answers: a refused value 400, a missing identity 404, a taken id 409, the store unavailable 503.
/// After a write the gateway reloads its identities at once; other gateways see it at their next poll.
extension Gateway {
    static let maximumAdminBodyBytes = 64 << 10

    func addIdentityRoutes(to admin: RouterGroup<GatewayRequestContext>) {
        admin.get("/tenants") { request, _ in
            try authorizeAdmin(request)
            let tenants = try await withStore { try await $0.tenants() }
            return try listResponse(tenants.map(TenantView.init))
        }
        admin.post("/tenants") { request, _ in
            try authorizeAdmin(request)
            let body = try await decodeBody(NewTenantBody.self, request)
            let tenant = Tenant(
                id: body.id, name: body.name, models: body.models.map(ModelScope.only) ?? .all, limits: body.limits ?? .unlimited,
                disabled: body.disabled ?? false, createdAt: Date().timeIntervalSince1970)
            try await withStore { try await $0.createTenant(tenant) }
            await refreshIdentities()
            logger.notice("tenant created by the admin API", metadata: ["tenant": "\(tenant.id)"])
            return try encodedResponse(TenantView(tenant), status: .created)
        }
        admin.get("/tenants/{id}") { request, context in
            try authorizeAdmin(request)
            let id = context.parameters.get("id") ?? ""
            return try encodedResponse(TenantView(try await withStore { try await $0.tenant(id: id) }))
        }
        admin.patch("/tenants/{id}") { request, context in
            try authorizeAdmin(request)
            let id = context.parameters.get("id") ?? ""
            let body = try await decodeBody(TenantPatchBody.self, request)
            let update = TenantUpdate(name: body.name, models: body.models, limits: body.limits, disabled: body.disabled)
            let tenant = try await withStore { try await $0.updateTenant(id: id, update) }
            await refreshIdentities()
            logger.notice("tenant changed by the admin API", metadata: ["tenant": "\(id)"])
            return try encodedResponse(TenantView(tenant))
        }
        admin.get("/tenants/{id}/principals") { request, context in
            try authorizeAdmin(request)
            let id = context.parameters.get("id") ?? ""
            return try listResponse(try await withStore { try await $0.principals(tenantID: id) }.map(PrincipalView.init))
        }
        admin.post("/tenants/{id}/principals") { request, context in
            try authorizeAdmin(request)
            let tenantID = context.parameters.get("id") ?? ""
            let body = try await decodeBody(NewPrincipalBody.self, request)
            let principal = Principal(
                id: body.id, tenantID: tenantID, name: body.name, roles: Set(body.roles ?? []), limits: body.limits ?? .unlimited,
                createdAt: Date().timeIntervalSince1970)
            try await withStore { try await $0.createPrincipal(principal) }
            await refreshIdentities()
            logger.notice("principal created by the admin API", metadata: ["tenant": "\(tenantID)", "principal": "\(principal.id)"])
            return try encodedResponse(PrincipalView(principal), status: .created)
        }
        admin.get("/tenants/{id}/principals/{principal}") { request, context in
            try authorizeAdmin(request)
            let (tenantID, id) = (context.parameters.get("id") ?? "", context.parameters.get("principal") ?? "")
            return try encodedResponse(PrincipalView(try await withStore { try await $0.principal(tenantID: tenantID, id: id) }))
        }
        admin.patch("/tenants/{id}/principals/{principal}") { request, context in
            try authorizeAdmin(request)
            let (tenantID, id) = (context.parameters.get("id") ?? "", context.parameters.get("principal") ?? "")
            let body = try await decodeBody(PrincipalPatchBody.self, request)
            let update = PrincipalUpdate(name: body.name, roles: body.roles.map(Set.init), limits: body.limits)
            let principal = try await withStore { try await $0.updatePrincipal(tenantID: tenantID, id: id, update) }
            await refreshIdentities()
            logger.notice("principal changed by the admin API", metadata: ["tenant": "\(tenantID)", "principal": "\(id)"])
            return try encodedResponse(PrincipalView(principal))
        }
        admin.get("/keys/{id}") { request, context in
            try authorizeAdmin(request)
            let id = context.parameters.get("id") ?? ""
            let now = Date().timeIntervalSince1970
            return try encodedResponse(APIKeyView(try await withStore { try await $0.key(id: id) }, at: now))
        }
        admin.post("/keys") { request, _ in
            try authorizeAdmin(request)
            let body = try await decodeBody(NewKeyBody.self, request)
            let now = Date().timeIntervalSince1970
            let newKey = NewAPIKey(
                tenantID: body.tenant, principalID: body.principal, name: body.name ?? "", models: body.models.map(ModelScope.only) ?? .all,
                limits: body.limits ?? .unlimited, expiresAt: body.expiresAt)
            let issued = try await withStore { try await $0.createKey(newKey, at: now) }
            await refreshIdentities()
            logger.notice(
                "API key created by the admin API",
                metadata: ["tenant": "\(body.tenant)", "principal": "\(body.principal)", "key": "\(issued.key.id)"])
            return try encodedResponse(IssuedKeyBody(key: APIKeyView(issued.key, at: now), token: issued.token), status: .created)
        }
        admin.get("/keys") { request, _ in
            try authorizeAdmin(request)
            guard let tenant = request.uri.queryParameters.get("tenant") else {
                throw GatewayError.invalidRequest("GET /admin/keys needs ?tenant=ID (and optionally &principal=ID)", param: "tenant")
            }
            let principal = request.uri.queryParameters.get("principal")
            let now = Date().timeIntervalSince1970
            let keys = try await withStore { try await $0.keys(tenantID: tenant, principalID: principal) }
            return try listResponse(keys.map { APIKeyView($0, at: now) })
        }
        admin.delete("/keys/{id}") { request, context in
            try authorizeAdmin(request)
            let id = context.parameters.get("id") ?? ""
            let now = Date().timeIntervalSince1970
            let key = try await withStore { try await $0.revokeKey(id: id, at: now) }
            await refreshIdentities()
            logger.notice("API key revoked by the admin API", metadata: ["key": "\(key.id)"])
            return try encodedResponse(APIKeyView(key, at: now))
        }
    }

    /// Runs `body` on the store, mapping its errors to answers; 503 without a store.
    func withStore<T>(_ body: (any ProximaStore) async throws -> T) async throws -> T {
        guard let store else {
            throw GatewayError(
                status: .serviceUnavailable, type: "server_error", code: "store_unavailable",
                message: "This gateway runs without a store; identities cannot be managed here.")
        }
        do {
            return try await body(store)
        } catch let error as StoreError {
            throw Self.answer(for: error)
        }
    }

    /// A store error as the admin API answers it.
    static func answer(for error: StoreError) -> GatewayError {
        switch error {
        case .notFound(let what):
            return GatewayError(status: .notFound, type: "invalid_request_error", code: "not_found", message: "\(what) does not exist.")
        case .alreadyExists(let what):
            return GatewayError(status: .conflict, type: "invalid_request_error", code: "already_exists", message: "\(what) already exists.")
        case .invalid(let field, let message):
            return GatewayError.invalidRequest("\(field): \(message)", param: field)
        case .unavailable(let reason):
            return GatewayError(
                status: .serviceUnavailable, type: "server_error", code: "store_unavailable", message: "The store is unavailable: \(reason)")
        }
    }

    func decodeBody<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: Self.maximumAdminBodyBytes)
        } catch {
            throw GatewayError.bodyTooLarge(limit: Self.maximumAdminBodyBytes)
        }
        do {
            return try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
        } catch {
            throw GatewayError.invalidRequest("the body is not valid: \(Self.describe(error))")
        }
    }

    func encodedResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return jsonResponse(String(decoding: try encoder.encode(value), as: UTF8.self), status: status)
    }

    func listResponse<T: Encodable>(_ items: [T]) throws -> Response {
        try encodedResponse(ListBody(data: items))
    }
}

// MARK: Bodies

struct ListBody<T: Encodable>: Encodable {
    var object = "list"
    var data: [T]
}

struct IssuedKeyBody: Encodable {
    var key: APIKeyView
    /// Shown once: the store keeps only its hash.
    var token: String
}

/// Refuses members a body type does not know, so that a misspelt field is an error, not ignored.
private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

private func refuseUnknownMembers<Keys: CodingKey & CaseIterable>(_ decoder: any Decoder, _ keys: Keys.Type) throws {
    let container = try decoder.container(keyedBy: AnyKey.self)
    let known = Set(Keys.allCases.map(\.stringValue))
    for key in container.allKeys where !known.contains(key.stringValue) {
        throw DecodingError.dataCorrupted(
            .init(
                codingPath: [key],
                debugDescription: "unknown member '\(key.stringValue)' (known: \(Keys.allCases.map(\.stringValue).joined(separator: ", ")))"))
    }
}

struct NewTenantBody: Decodable {
    var id: String
    var name: String?
    var models: [String]?
    var limits: ScopeLimits?
    var disabled: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable { case id, name, models, limits, disabled }

    init(from decoder: any Decoder) throws {
        try refuseUnknownMembers(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        models = try c.decodeIfPresent([String].self, forKey: .models)
        limits = try c.decodeIfPresent(ScopeLimits.self, forKey: .limits)
        disabled = try c.decodeIfPresent(Bool.self, forKey: .disabled)
    }
}

/// A tenant's change: absent members stay; `"models": null` allows every model again; `limits`
/// replaces the tenant's limits whole.
struct TenantPatchBody: Decodable {
    var name: String?
    var models: ModelScope?
    var limits: ScopeLimits?
    var disabled: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable { case name, models, limits, disabled }

    init(from decoder: any Decoder) throws {
        try refuseUnknownMembers(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        if c.contains(.models) {
            models = try c.decodeNil(forKey: .models) ? .all : .only(try c.decode([String].self, forKey: .models))
        }
        limits = try c.decodeIfPresent(ScopeLimits.self, forKey: .limits)
        disabled = try c.decodeIfPresent(Bool.self, forKey: .disabled)
    }
}

struct NewPrincipalBody: Decodable {
    var id: String
    var name: String?
    var roles: [String]?
    var limits: ScopeLimits?

    enum CodingKeys: String, CodingKey, CaseIterable { case id, name, roles, limits }

    init(from decoder: any Decoder) throws {
        try refuseUnknownMembers(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        roles = try c.decodeIfPresent([String].self, forKey: .roles)
        limits = try c.decodeIfPresent(ScopeLimits.self, forKey: .limits)
    }
}

/// A principal's change: absent members stay; `roles` and `limits` are replaced whole.
struct PrincipalPatchBody: Decodable {
    var name: String?
    var roles: [String]?
    var limits: ScopeLimits?

    enum CodingKeys: String, CodingKey, CaseIterable { case name, roles, limits }

    init(from decoder: any Decoder) throws {
        try refuseUnknownMembers(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        roles = try c.decodeIfPresent([String].self, forKey: .roles)
        limits = try c.decodeIfPresent(ScopeLimits.self, forKey: .limits)
    }
}

struct NewKeyBody: Decodable {
    var tenant: String
    var principal: String
    var name: String?
    var models: [String]?
    var limits: ScopeLimits?
    /// Unix seconds.
    var expiresAt: Double?

    enum CodingKeys: String, CodingKey, CaseIterable { case tenant, principal, name, models, limits, expiresAt = "expires_at" }

    init(from decoder: any Decoder) throws {
        try refuseUnknownMembers(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tenant = try c.decode(String.self, forKey: .tenant)
        principal = try c.decode(String.self, forKey: .principal)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        models = try c.decodeIfPresent([String].self, forKey: .models)
        limits = try c.decodeIfPresent(ScopeLimits.self, forKey: .limits)
        expiresAt = try c.decodeIfPresent(Double.self, forKey: .expiresAt)
    }
}
