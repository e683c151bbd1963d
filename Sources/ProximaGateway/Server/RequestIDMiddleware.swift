import Hummingbird
import HTTPTypes
import Logging
import Synchronization

/// Gives every request an id (the caller's `x-request-id` when it sent a usable one) and puts it on
/// every response, errors included. Errors that escape the handlers are turned into OpenAI-style
/// error bodies here, the one place where errors meet HTTP.
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    let generator: RequestIDGenerator
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let requestID = Self.usableID(request.headers[.requestID]) ?? generator.next()
        context.requestID = requestID
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as GatewayError {
            response = Self.errorResponse(error)
        } catch let refusal as CallerConnection.Refusal {
            response = Self.errorResponse(refusal.gatewayError)
        } catch let error as any HTTPResponseError {
            response = Self.errorResponse(Self.translate(error, request: request))
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            logger.error("unhandled error", metadata: ["request_id": "\(requestID)", "error": "\(String(describing: type(of: error)))"])
            response = Self.errorResponse(.internalError())
        }
        response.headers[.requestID] = requestID
        return response
    }

    /// A caller's id is kept when it is short printable ASCII; anything else is replaced.
    static func usableID(_ value: String?) -> String? {
        guard let value, !value.isEmpty, value.utf8.count <= 128,
            value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return nil }
        return value
    }

    static func errorResponse(_ error: GatewayError) -> Response {
        var headers = error.headers
        headers[.contentType] = "application/json"
        return Response(status: error.status, headers: headers, body: .init(byteBuffer: .init(string: error.jsonObject)))
    }

    static func translate(_ error: any HTTPResponseError, request: Request) -> GatewayError {
        switch error.status {
        case .notFound: .routeNotFound(request.method.rawValue, request.uri.path)
        case .methodNotAllowed: .methodNotAllowed(request.method.rawValue, request.uri.path)
        case .contentTooLarge: .bodyTooLarge(limit: nil)
        case .badRequest: .invalidRequest("The request could not be read.")
        default:
            GatewayError(
                status: error.status, type: error.status.code >= 500 ? "server_error" : "invalid_request_error",
                code: "http_\(error.status.code)", message: error.status.reasonPhrase)
        }
    }
}

/// Request ids unique within and across processes: a random per-process prefix and a counter.
final class RequestIDGenerator: Sendable {
    private let prefix: String
    private let counter = Atomic<UInt64>(0)

    init() {
        prefix = "prx-" + String(UInt32.random(in: .min ... .max), radix: 16) + "-"
    }

    func next() -> String {
        prefix + String(counter.wrappingAdd(1, ordering: .relaxed).newValue, radix: 16)
    }
}
