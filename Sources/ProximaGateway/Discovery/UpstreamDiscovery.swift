import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import ProximaCore

/// Quick mode: builds endpoint settings from bare OpenAI-compatible base URLs by asking each for
/// its `/v1/models`.
public enum UpstreamDiscovery {
    public struct Failure: Error, CustomStringConvertible {
        public var url: String
        public var reason: String
        public var description: String { "upstream \(url): \(reason)" }
    }

    /// One endpoint per URL, named `upstream-1`, `upstream-2`, ... serving the models it lists.
    public static func endpoints(for urls: [String], timeout: Duration = .seconds(10)) async throws -> [EndpointSettings] {
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: .init())
        do {
            var result: [EndpointSettings] = []
            for (index, raw) in urls.enumerated() {
                let base = normalizedBase(raw)
                guard let url = UpstreamURL(base) else {
                    throw Failure(url: raw, reason: "not an http:// or https:// URL")
                }
                let models = try await listModels(client: client, url: url, timeout: timeout)
                result.append(
                    EndpointSettings(
                        name: "upstream-\(index + 1)", url: base, engine: .openai,
                        models: models.map { ServedModelSettings(name: $0) }))
            }
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Appends `/v1` to a URL given without a path, as users often give `http://host:port`.
    static func normalizedBase(_ raw: String) -> String {
        var base = raw
        while base.hasSuffix("/") { base.removeLast() }
        if let url = UpstreamURL(base), url.basePath.isEmpty { base += "/v1" }
        return base
    }

    static func listModels(client: HTTPClient, url: UpstreamURL, timeout: Duration) async throws -> [String] {
        let request = HTTPClientRequest(url: url.appending("/models"))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
        } catch {
            throw Failure(url: url.description, reason: "cannot reach it (\(error))")
        }
        guard response.status == .ok else {
            throw Failure(url: url.description, reason: "GET /models answered \(response.status.code)")
        }
        let body = try await response.body.collect(upTo: 4 << 20)
        struct ModelList: Decodable {
            struct Model: Decodable { var id: String }
            var data: [Model]
        }
        guard let list = try? JSONDecoder().decode(ModelList.self, from: Data(body.readableBytesView)) else {
            throw Failure(url: url.description, reason: "GET /models did not return an OpenAI model list")
        }
        guard !list.data.isEmpty else { throw Failure(url: url.description, reason: "serves no model") }
        return list.data.map(\.id)
    }
}
