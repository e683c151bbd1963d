import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ProximaCore
import ServiceLifecycle

/// Keeps the JWT verifier's keys current: reads the JWKS (a file, or a URL through the gateway's
/// own HTTP client) at start and every `refresh_seconds`. A failed read keeps the keys already
/// held, which the verifier uses until `max_age_seconds` after the last successful read and then
/// refuses every token (fails closed); reads are retried meanwhile, every `refresh_seconds` or
/// 5 s, whichever is shorter.
struct JWKSRefresher: Service {
    let verifier: JWTVerifier
    let client: HTTPClient
    let logger: Logger
    /// Largest JWKS document read.
    static let maximumDocumentBytes = 1 << 20

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var generation = 0
            while !Task.isCancelled {
                generation += 1
                let succeeded = await refresh(generation: generation)
                let settings = verifier.settings
                let wait = succeeded ? settings.refreshSeconds : min(settings.refreshSeconds, 5)
                try? await Task.sleep(for: .seconds(clampedSeconds: wait))
            }
        }
    }

    /// One read; true when the keys were replaced.
    @discardableResult
    func refresh(generation: Int) async -> Bool {
        let settings = verifier.settings
        let source = settings.jwksURL ?? settings.jwksFile ?? ""
        do {
            let document = try await read()
            let keys = try await JWTKeySet.load(
                jwks: document, algorithms: settings.algorithms, loadedAt: Date().timeIntervalSince1970, generation: generation)
            verifier.install(keys)
            logger.debug("JWKS read", metadata: ["source": "\(source)", "keys": "\(keys.keys.count)"])
            return true
        } catch {
            let held = verifier.currentKeys(at: Date().timeIntervalSince1970) != nil
            logger.error(
                "JWKS could not be read",
                metadata: [
                    "source": "\(source)", "error": "\(error)",
                    "keys": "\(held ? "the keys read before stay in use until max_age_seconds" : "none: every JWT is refused")",
                ])
            return false
        }
    }

    struct ReadFailure: Error, CustomStringConvertible {
        var description: String
    }

    private func read() async throws -> [UInt8] {
        let settings = verifier.settings
        if let url = settings.jwksURL {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "accept", value: "application/json")
            let response = try await client.execute(request, timeout: .seconds(10), logger: logger)
            guard response.status == .ok else { throw ReadFailure(description: "the server answered \(response.status.code)") }
            let body = try await response.body.collect(upTo: Self.maximumDocumentBytes)
            return Array(body.readableBytesView)
        }
        let path = settings.jwksFile ?? ""
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ReadFailure(description: "cannot open '\(path)'") }
        defer { try? handle.close() }
        let data = try handle.read(upToCount: Self.maximumDocumentBytes + 1) ?? Data()
        guard data.count <= Self.maximumDocumentBytes else { throw ReadFailure(description: "'\(path)' is larger than 1 MiB") }
        return Array(data)
    }
}
