import HTTPTypes
import NIOCore

/// An error the gateway answers a caller with, in the OpenAI error format:
/// `{"error": {"message", "type", "param", "code"}}`. Every failure on the request path ends as one
/// of these, mapped once at the HTTP edge.
public struct GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var type: String
    public var code: String
    public var param: String?
    public var message: String
    /// Header fields the answer carries besides the body's (`WWW-Authenticate` on a 401, the
    /// rate-limit headers of a limited caller).
    public var headers: HTTPFields

    public init(
        status: HTTPResponse.Status, type: String, code: String, param: String? = nil, message: String, headers: HTTPFields = HTTPFields()
    ) {
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public static func invalidRequest(_ message: String, param: String? = nil) -> GatewayError {
        .init(status: .badRequest, type: "invalid_request_error", code: "invalid_request", param: param, message: message)
    }

    public static func invalidJSON(_ message: String) -> GatewayError {
        .init(status: .badRequest, type: "invalid_request_error", code: "invalid_json", message: message)
    }

    public static func modelNotFound(_ model: String) -> GatewayError {
        .init(
            status: .notFound, type: "invalid_request_error", code: "model_not_found", param: "model",
            message: "The model '\(model)' does not exist or is not served by this gateway; GET /v1/models lists the models.")
    }

    /// The one answer to every missing or bad credential: which part was wrong (no header, a
    /// malformed one, an unknown or revoked key, a bad signature, an expired token, a disabled
    /// tenant) is not told, so that a caller cannot probe for valid key ids or tenants.
    public static func unauthorized() -> GatewayError {
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer realm=\"proxima\""
        return .init(
            status: .unauthorized, type: "invalid_request_error", code: "invalid_api_key",
            message: "Missing or invalid credentials. Send 'Authorization: Bearer <API key or token>'.", headers: headers)
    }

    /// A model the caller's tenant or key may not use.
    public static func modelNotAllowed(_ model: String) -> GatewayError {
        .init(
            status: .forbidden, type: "invalid_request_error", code: "model_not_allowed", param: "model",
            message: "The model '\(model)' is not allowed for this caller; GET /v1/models lists the models it may use.")
    }

    public static func bodyTooLarge(limit: Int?) -> GatewayError {
        .init(
            status: .contentTooLarge, type: "invalid_request_error", code: "request_too_large",
            message: limit.map { "The request body is larger than the limit of \($0) bytes." } ?? "The request body is too large.")
    }

    public static func routeNotFound(_ method: String, _ path: String) -> GatewayError {
        .init(status: .notFound, type: "invalid_request_error", code: "unknown_url", message: "Unknown request URL: \(method) \(path).")
    }

    public static func methodNotAllowed(_ method: String, _ path: String) -> GatewayError {
        .init(
            status: .methodNotAllowed, type: "invalid_request_error", code: "method_not_allowed",
            message: "Method \(method) is not allowed on \(path).")
    }

    public static func upstreamFailed(_ message: String) -> GatewayError {
        .init(status: .badGateway, type: "server_error", code: "upstream_error", message: message)
    }

    public static func upstreamTimeout(_ message: String) -> GatewayError {
        .init(status: .gatewayTimeout, type: "server_error", code: "upstream_timeout", message: message)
    }

    /// The audit log could not record the request: nothing is answered that was not recorded.
    public static let auditUnavailable = GatewayError(
        status: .serviceUnavailable, type: "server_error", code: "audit_unavailable",
        message: "The request could not be recorded in the audit log; it was not answered. Try again later.")

    public static func noCapacity(_ message: String) -> GatewayError {
        .init(status: .serviceUnavailable, type: "server_error", code: "no_endpoint_available", message: message)
    }

    /// The store that keeps limits shared by replicas has been out of reach for longer than this
    /// replica may admit limited callers on its own (`limits.leases.hold_seconds`): fail closed.
    public static func limitsUnavailable(retryAfterSeconds: Int) -> GatewayError {
        var headers = HTTPFields()
        headers[.retryAfter] = String(retryAfterSeconds)
        return .init(
            status: .serviceUnavailable, type: "server_error", code: "limits_unavailable",
            message: "The gateway cannot check this caller's shared limits right now. Please try again later.", headers: headers)
    }

    public static func internalError() -> GatewayError {
        .init(status: .internalServerError, type: "server_error", code: "internal_error", message: "The gateway failed to process the request.")
    }

    /// The JSON object `{"error": {...}}`.
    public var jsonObject: String {
        let param = param.map(JSONScanner.quoted) ?? "null"
        return "{\"error\":{\"message\":\(JSONScanner.quoted(message)),\"type\":\(JSONScanner.quoted(type)),\"param\":\(param),\"code\":\(JSONScanner.quoted(code))}}"
    }

    /// The error as a server-sent event, to end a stream that already started.
    public var serverSentEvent: String { "data: \(jsonObject)\n\n" }
}
