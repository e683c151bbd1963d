import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
@testable import ProximaAudit
import ProximaCore
import Testing
@testable import ProximaGateway

/// The audit trail over HTTP (docs/governance.md): every request leaves one record with who, what,
/// where and how it ended, hashes rather than text unless the tenant opted in; admin changes are
/// records too; the admin API serves checkpoints and proofs that a client can check with nothing but
/// the verifier key.
@Suite(.serialized) struct AuditHTTPTests {
    static let token = "audit-admin-token"

    func withGateway(
        _ change: (inout ProximaConfiguration) -> Void = { _ in }, _ body: (RunningGateway, FaultyUpstream, String) async throws -> Void
    ) async throws {
        let upstream = try await FaultyUpstream.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("proxima-audit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "fra", latitude: 50.1, longitude: 8.7, jurisdiction: "DE")],
            endpoints: [
                EndpointSettings(name: "ep", url: upstream.baseURL, site: "fra", engine: .openai, models: [.init(name: "chat", upstream: "counted")])
            ])
        configuration.audit = AuditSettings(enabled: true, directory: directory, origin: "test.proxima/audit", checkpointEveryRecords: 1_000)
        change(&configuration)
        let gateway = try await RunningGateway.start(configuration, environment: ["PROXIMA_ADMIN_TOKEN": Self.token])
        try await gateway.run(stoppingAfter: upstream) { try await body(gateway, upstream, directory) }
    }

    static func admin(_ gateway: RunningGateway, _ path: String, method: HTTPMethod = .GET, body: String? = nil) async throws -> TestHTTP.Reply {
        var request = HTTPClientRequest(url: gateway.baseURL + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        return try await TestHTTP.send(request)
    }

    static func records(_ gateway: RunningGateway, _ query: String) async throws -> [[String: Any]] {
        let reply = try await admin(gateway, "/admin/audit/records?" + query)
        #expect(reply.status == 200, "\(reply.body)")
        return reply.json?["records"] as? [[String: Any]] ?? []
    }

    static let question = #"{"model":"chat","messages":[{"role":"user","content":"my card is 4111 1111 1111 1111"}]}"#
    static func sha256(_ text: String) -> String { SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined() }

    @Test func everyAnsweredRequestHasOneRecordWithHashesNotText() async throws {
        try await withGateway { gateway, _, _ in
            let reply = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: [("x-request-id", "audit-whole-1")])
            #expect(reply.status == 200)
            let found = try await Self.records(gateway, "request_id=audit-whole-1")
            #expect(found.count == 1)
            let record = try #require(found.first)
            #expect(record["kind"] as? String == "request")
            #expect(record["tenant"] as? String == "default")
            #expect(record["model"] as? String == "chat")
            #expect(record["status"] as? Int == 200)
            #expect(record["outcome"] as? String == "complete")
            #expect((record["route"] as? [String: Any])?["endpoint"] as? String == "ep")
            #expect((record["route"] as? [String: Any])?["jurisdiction"] as? String == "DE")
            #expect(record["prompt_sha256"] as? String == Self.sha256(Self.question))
            #expect(record["answer_sha256"] as? String == Self.sha256(reply.body))
            #expect(record["prompt_text"] == nil && record["answer_text"] == nil)
            #expect((record["prompt_tokens"] as? Int ?? 0) > 0)
            // The guards' verdict on the card number, with its taxonomy ids, and never the number.
            let guards = record["guards"] as? [[String: Any]] ?? []
            #expect(guards.contains { $0["owasp"] as? String == "LLM02" })
            let line = try await Self.admin(gateway, "/admin/audit/records?request_id=audit-whole-1").body
            #expect(!line.contains("4111"))
        }
    }

    @Test func streamsRefusalsAndCacheHitsAreRecordedToo() async throws {
        try await withGateway({ $0.cache = CacheSettings(enabled: true, semantic: .init(enabled: false)) }) { gateway, _, _ in
            let url = gateway.baseURL + "/v1/chat/completions"
            let stream = #"{"model":"chat","messages":[{"role":"user","content":"stream please"}],"stream":true}"#
            let streamed = try await TestHTTP.post(url, json: stream, headers: [("x-request-id", "audit-stream-1")])
            #expect(streamed.body.hasSuffix("data: [DONE]\n\n"))
            let refused = try await TestHTTP.post(url, json: #"{"model":"nope","messages":[]}"#, headers: [("x-request-id", "audit-refused-1")])
            #expect(refused.status == 400)
            let plain = #"{"model":"chat","messages":[{"role":"user","content":"cache me"}]}"#
            _ = try await TestHTTP.post(url, json: plain, headers: [("x-request-id", "audit-miss-1")])
            let hit = try await TestHTTP.post(url, json: plain, headers: [("x-request-id", "audit-hit-1")])
            #expect(hit.headers.first(name: "x-proxima-cache") == "hit-exact")
            let s = try await Self.records(gateway, "request_id=audit-stream-1").first
            #expect(s?["status"] as? Int == 200)
            #expect(s?["answer_sha256"] as? String != nil)
            let r = try await Self.records(gateway, "request_id=audit-refused-1").first
            #expect(r?["status"] as? Int == 400)
            let h = try await Self.records(gateway, "request_id=audit-hit-1").first
            #expect(h?["cache"] as? String == "hit-exact")
            #expect(h?["answer_sha256"] as? String == Self.sha256(hit.body))
            let m = try await Self.records(gateway, "request_id=audit-miss-1").first
            #expect(m?["cache"] as? String == "miss")
        }
    }

    @Test func aTenantThatOptedInHasItsTextRecordedAfterTheGuards() async throws {
        try await withGateway({
            $0.audit.textTenants = ["default"]
            $0.guards.input.action = .mask
        }) { gateway, _, _ in
            _ = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: [("x-request-id", "audit-text-1")])
            let record = try #require(try await Self.records(gateway, "request_id=audit-text-1").first)
            let prompt = record["prompt_text"] as? String ?? ""
            #expect(prompt.contains("[payment_card]"))
            #expect(!prompt.contains("4111"))
            #expect((record["answer_text"] as? String)?.isEmpty == false)
        }
    }

    @Test func residencyAndAdminChangesAreOnTheRecord() async throws {
        try await withGateway({ $0.residency.tenants["default"] = .init(jurisdictions: ["EU"]) }) { gateway, _, _ in
            _ = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: [("x-request-id", "audit-eu-1")])
            let record = try #require(try await Self.records(gateway, "request_id=audit-eu-1").first)
            #expect((record["residency"] as? String)?.contains("DE") == true)
            let drained = try await Self.admin(gateway, "/admin/endpoints/ep/drain", method: .POST)
            #expect(drained.status == 200)
            let admin = try await Self.records(gateway, "kind=admin")
            #expect(admin.contains { $0["action"] as? String == "endpoint.drained" && $0["target"] as? String == "ep" && $0["actor"] as? String == "admin-token" })
            // Drained, the only EU endpoint cannot serve: the refusal is recorded with its exclusions.
            let refused = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: [("x-request-id", "audit-eu-2")])
            #expect(refused.status == 503)
            let second = try #require(try await Self.records(gateway, "request_id=audit-eu-2").first)
            #expect(second["status"] as? Int == 503)
        }
    }

    @Test func proofsFromTheAdminAPIVerifyWithTheKeyAlone() async throws {
        try await withGateway { gateway, _, _ in
            for index in 0..<5 {
                _ = try await TestHTTP.post(
                    gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: [("x-request-id", "audit-proof-\(index)")])
            }
            let key = try NoteVerifier(verifierKey: try await Self.admin(gateway, "/admin/audit/key").body.trimmingCharacters(in: .whitespacesAndNewlines))
            let first = try await Self.admin(gateway, "/admin/audit/checkpoint")
            #expect(first.status == 200)
            let firstCheckpoint = try Checkpoint.parse(body: try key.open(first.body))
            #expect(firstCheckpoint.origin == "test.proxima/audit")
            #expect(firstCheckpoint.size >= 5)
            let proofReply = try await Self.admin(gateway, "/admin/audit/proof/inclusion?request_id=audit-proof-2")
            #expect(proofReply.status == 200, "\(proofReply.body)")
            let proof = try JSONDecoder().decode(AuditInclusionProof.self, from: Data(proofReply.body.utf8))
            let checkpoint = try Checkpoint.parse(body: try key.open(proof.checkpoint))
            let leaf = MerkleHashing.leaf(Array(proof.record.utf8))
            #expect(Data(leaf).base64EncodedString() == proof.leafHash)
            let path = proof.proof.compactMap { Data(base64Encoded: $0).map(Array.init) }
            #expect(MerkleProof.verifyInclusion(leafHash: leaf, index: proof.seq, size: checkpoint.size, proof: path, root: checkpoint.rootHash))
            // More requests, a newer checkpoint, and a consistency proof between the two.
            for index in 5..<9 {
                _ = try await TestHTTP.post(
                    gateway.baseURL + "/v1/chat/completions", json: Self.question, headers: [("x-request-id", "audit-proof-\(index)")])
            }
            let second = try Checkpoint.parse(body: try key.open(try await Self.admin(gateway, "/admin/audit/checkpoint").body))
            #expect(second.size > firstCheckpoint.size)
            let consistencyReply = try await Self.admin(gateway, "/admin/audit/proof/consistency?from=\(firstCheckpoint.size)&to=\(second.size)")
            #expect(consistencyReply.status == 200, "\(consistencyReply.body)")
            let consistency = try JSONDecoder().decode(AuditConsistencyProof.self, from: Data(consistencyReply.body.utf8))
            #expect(MerkleProof.verifyConsistency(
                from: firstCheckpoint.size, to: second.size, root1: firstCheckpoint.rootHash, root2: second.rootHash,
                proof: consistency.proof.compactMap { Data(base64Encoded: $0).map(Array.init) }))
        }
    }

    @Test func hostileAdminQueriesGetClearErrorsAndTheGatewayServesOn() async throws {
        try await withGateway { gateway, _, _ in
            _ = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question)
            let cases = [
                "/admin/audit/proof/inclusion?seq=-1", "/admin/audit/proof/inclusion?seq=99999999999999999999999",
                "/admin/audit/proof/inclusion?seq=1000000", "/admin/audit/proof/inclusion", "/admin/audit/proof/consistency?from=abc",
                "/admin/audit/proof/consistency?from=7&to=3", "/admin/audit/records?since=yesterday", "/admin/audit/records?limit=0",
                "/admin/audit/records?kind=everything", "/admin/audit/records?limit=%00%ff",
                "/admin/audit/proof/inclusion?request_id=%22%5D%7D", "/admin/audit/records?tenant=%27%20OR%201%3D1",
            ]
            for path in cases {
                let reply = try await Self.admin(gateway, path)
                #expect((400..<500).contains(reply.status) || (reply.status == 200 && reply.json?["records"] != nil), "\(path): \(reply.status)")
                if reply.status >= 400 { #expect(reply.errorObject?["message"] != nil, "\(path)") }
            }
            for body in ["", "{", #"{"before":"not a date"}"#, #"{"older_than_days":-3}"#, "[1,2]", String(repeating: "x", count: 5000)] {
                let reply = try await Self.admin(gateway, "/admin/audit/retention", method: .POST, body: body)
                #expect((400..<500).contains(reply.status), "\(body.prefix(20)): \(reply.status)")
            }
            let unauthenticated = try await TestHTTP.get(gateway.baseURL + "/admin/audit/records")
            #expect(unauthenticated.status == 401)
            let after = try await TestHTTP.post(gateway.baseURL + "/v1/chat/completions", json: Self.question)
            #expect(after.status == 200)
        }
    }

    @Test func whatCannotBeRecordedIsNotAnswered() async throws {
        try await withGateway({ $0.cache = CacheSettings(enabled: true, semantic: .init(enabled: false)) }) { gateway, _, _ in
            let log = try #require(gateway.gateway.auditLog)
            let url = gateway.baseURL + "/v1/chat/completions"
            log.failNextCommits(1)
            let whole = try await TestHTTP.post(url, json: Self.question, headers: [("x-request-id", "audit-fail-1")])
            #expect(whole.status == 503)
            #expect(whole.errorObject?["code"] as? String == "audit_unavailable")
            #expect(!whole.body.contains("choices"))
            log.failNextCommits(1)
            let stream = #"{"model":"chat","messages":[{"role":"user","content":"stream please"}],"stream":true}"#
            let streamed = try await TestHTTP.post(url, json: stream, headers: [("x-request-id", "audit-fail-2")])
            #expect(streamed.status == 200)
            #expect(streamed.body.contains("audit_unavailable"))
            #expect(!streamed.body.contains("[DONE]"))
            // The log is fine again: the next request is answered, recorded, and the failed ones are not in it.
            let after = try await TestHTTP.post(url, json: Self.question, headers: [("x-request-id", "audit-fail-3")])
            #expect(after.status == 200)
            #expect(try await Self.records(gateway, "request_id=audit-fail-3").count == 1)
            #expect(try await Self.records(gateway, "request_id=audit-fail-1").isEmpty)
            #expect(try await Self.records(gateway, "request_id=audit-fail-2").isEmpty)
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_audit_records_total{outcome="failed"} 2"#))
        }
    }

    @Test func withAuditingOffTheAuditAPISaysSo() async throws {
        try await withGateway({ $0.audit.enabled = false }) { gateway, _, _ in
            let reply = try await Self.admin(gateway, "/admin/audit/checkpoint")
            #expect(reply.status == 404)
            #expect(reply.errorObject?["code"] as? String == "audit_disabled")
        }
    }
}
