import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ProximaCore
import ProximaStore

/// ``IdentityAdministration`` through a gateway's admin API, so that `proxima tenants|principals|keys
/// --admin-url URL` manage the identities of a remote gateway's store as they do a local one. The
/// admin API's answers map back to ``StoreError``: 400 `invalid`, 404 `notFound`, 409
/// `alreadyExists`, anything else (503, a refused token, no connection) `unavailable`.
public final class AdminAPIClient: IdentityAdministration {
    let baseURL: String
    let token: String
    let client: HTTPClient

    /// `baseURL` is the gateway's (`http://host:port`); `token` the admin token.
    public init(baseURL: String, token: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Shuts the HTTP client down; call once when done.
    public func close() async {
        try? await client.shutdown()
    }

    // MARK: Tenants

    public func createTenant(_ tenant: Tenant) async throws(StoreError) {
        let body = TenantView(tenant)
        struct Body: Encodable {
            var id: String
            var name: String
            var models: [String]?
            var limits: ScopeLimits
            var disabled: Bool
        }
        _ = try await send(.POST, "/admin/tenants", Body(id: body.id, name: body.name, models: body.models, limits: body.limits, disabled: body.disabled))
    }

    public func tenant(id: String) async throws(StoreError) -> Tenant {
        Self.tenant(try await decode(TenantView.self, try await send(.GET, "/admin/tenants/\(Self.segment(id))")))
    }

    public func tenants() async throws(StoreError) -> [Tenant] {
        try await decode(List<TenantView>.self, try await send(.GET, "/admin/tenants")).data.map(Self.tenant)
    }

    public func updateTenant(id: String, _ update: TenantUpdate) async throws(StoreError) -> Tenant {
        var patch: [String: JSONValue] = [:]
        if let name = update.name { patch["name"] = .string(name) }
        if let models = update.models { patch["models"] = models.patterns.map { .strings($0) } ?? .null }
        if let limits = update.limits { patch["limits"] = .encoded(limits) }
        if let disabled = update.disabled { patch["disabled"] = .bool(disabled) }
        return Self.tenant(try await decode(TenantView.self, try await send(.PATCH, "/admin/tenants/\(Self.segment(id))", patch)))
    }

    // MARK: Principals

    public func createPrincipal(_ principal: Principal) async throws(StoreError) {
        struct Body: Encodable {
            var id: String
            var name: String
            var roles: [String]
            var limits: ScopeLimits
        }
        _ = try await send(
            .POST, "/admin/tenants/\(Self.segment(principal.tenantID))/principals",
            Body(id: principal.id, name: principal.name, roles: principal.roles.sorted(), limits: principal.limits))
    }

    public func principal(tenantID: String, id: String) async throws(StoreError) -> Principal {
        Self.principal(
            try await decode(PrincipalView.self, try await send(.GET, "/admin/tenants/\(Self.segment(tenantID))/principals/\(Self.segment(id))")))
    }

    public func principals(tenantID: String) async throws(StoreError) -> [Principal] {
        try await decode(List<PrincipalView>.self, try await send(.GET, "/admin/tenants/\(Self.segment(tenantID))/principals")).data
            .map(Self.principal)
    }

    public func updatePrincipal(tenantID: String, id: String, _ update: PrincipalUpdate) async throws(StoreError) -> Principal {
        var patch: [String: JSONValue] = [:]
        if let name = update.name { patch["name"] = .string(name) }
        if let roles = update.roles { patch["roles"] = .strings(roles.sorted()) }
        if let limits = update.limits { patch["limits"] = .encoded(limits) }
        let path = "/admin/tenants/\(Self.segment(tenantID))/principals/\(Self.segment(id))"
        return Self.principal(try await decode(PrincipalView.self, try await send(.PATCH, path, patch)))
    }

    // MARK: Keys

    public func createKey(_ request: NewAPIKey, at now: Double) async throws(StoreError) -> IssuedAPIKey {
        struct Body: Encodable {
            var tenant: String
            var principal: String
            var name: String
            var models: [String]?
            var limits: ScopeLimits
            var expiresAt: Double?
            enum CodingKeys: String, CodingKey { case tenant, principal, name, models, limits, expiresAt = "expires_at" }
        }
        struct Answer: Decodable {
            var key: APIKeyView
            var token: String
        }
        let body = Body(
            tenant: request.tenantID, principal: request.principalID, name: request.name, models: request.models.patterns,
            limits: request.limits, expiresAt: request.expiresAt)
        let answer = try await decode(Answer.self, try await send(.POST, "/admin/keys", body))
        return IssuedAPIKey(key: Self.key(answer.key), token: answer.token)
    }

    public func key(id: String) async throws(StoreError) -> APIKey {
        Self.key(try await decode(APIKeyView.self, try await send(.GET, "/admin/keys/\(Self.segment(id))")))
    }

    public func keys(tenantID: String, principalID: String?) async throws(StoreError) -> [APIKey] {
        var query = "tenant=\(Self.query(tenantID))"
        if let principalID { query += "&principal=\(Self.query(principalID))" }
        return try await decode(List<APIKeyView>.self, try await send(.GET, "/admin/keys?\(query)")).data.map(Self.key)
    }

    public func revokeKey(id: String, at now: Double) async throws(StoreError) -> APIKey {
        Self.key(try await decode(APIKeyView.self, try await send(.DELETE, "/admin/keys/\(Self.segment(id))")))
    }

    // MARK: Transport

    struct List<T: Decodable>: Decodable { var data: [T] }

    /// A JSON value for patches, where `null` and an absent member differ.
    enum JSONValue: Encodable {
        case null, bool(Bool), string(String), strings([String]), encoded(ScopeLimits)

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .null: try container.encodeNil()
            case .bool(let value): try container.encode(value)
            case .string(let value): try container.encode(value)
            case .strings(let value): try container.encode(value)
            case .encoded(let value): try container.encode(value)
            }
        }
    }

    private struct NoBody: Encodable {}

    private func send(_ method: HTTPMethod, _ path: String) async throws(StoreError) -> ByteBuffer {
        try await send(method, path, NoBody?.none)
    }

    private func send(_ method: HTTPMethod, _ path: String, _ body: (some Encodable)?) async throws(StoreError) -> ByteBuffer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            guard let data = try? JSONEncoder().encode(body) else { throw .invalid(field: "body", message: "cannot be encoded") }
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        let status: HTTPResponseStatus
        let answer: ByteBuffer
        do {
            let response = try await client.execute(request, timeout: .seconds(30))
            status = response.status
            answer = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw .unavailable("the admin API at \(baseURL) did not answer: \(error)")
        }
        guard (200..<300).contains(status.code) else { throw Self.error(status: status, body: answer) }
        return answer
    }

    private func decode<T: Decodable>(_ type: T.Type, _ buffer: ByteBuffer) async throws(StoreError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
        } catch {
            throw .unavailable("the admin API at \(baseURL) answered something unexpected")
        }
    }

    static func error(status: HTTPResponseStatus, body: ByteBuffer) -> StoreError {
        struct Envelope: Decodable {
            struct Detail: Decodable {
                var message: String
                var param: String?
            }
            var error: Detail
        }
        let detail = try? JSONDecoder().decode(Envelope.self, from: Data(body.readableBytesView)).error
        let message = detail?.message ?? "HTTP \(status.code)"
        switch status.code {
        case 400: return .invalid(field: detail?.param ?? "request", message: message)
        case 404: return .notFound(message.hasSuffix(" does not exist.") ? String(message.dropLast(" does not exist.".count)) : message)
        case 409: return .alreadyExists(message.hasSuffix(" already exists.") ? String(message.dropLast(" already exists.".count)) : message)
        case 401: return .unavailable("the admin API refused the admin token (HTTP 401)")
        default: return .unavailable("the admin API answered HTTP \(status.code): \(message)")
        }
    }

    /// An identifier as one URL path segment (identifiers are slugs; anything else is escaped).
    static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? ""
    }

    static func query(_ text: String) -> String { segment(text) }

    static func tenant(_ view: TenantView) -> Tenant {
        Tenant(
            id: view.id, name: view.name, models: view.models.map(ModelScope.only) ?? .all, limits: view.limits, disabled: view.disabled,
            createdAt: view.createdAt)
    }

    static func principal(_ view: PrincipalView) -> Principal {
        Principal(id: view.id, tenantID: view.tenantID, name: view.name, roles: Set(view.roles), limits: view.limits, createdAt: view.createdAt)
    }

    /// A key as the admin API shows it: without its hash, which stays in the store.
    static func key(_ view: APIKeyView) -> APIKey {
        APIKey(
            id: view.id, tenantID: view.tenantID, principalID: view.principalID, name: view.name, secretHash: "",
            models: view.models.map(ModelScope.only) ?? .all, limits: view.limits, createdAt: view.createdAt, expiresAt: view.expiresAt,
            revokedAt: view.revokedAt)
    }
}
