import Foundation
import NIOCore
import ProximaCore
import Testing
@_spi(Benchmarks) @testable import ProximaGateway

/// Callers that attack the server rather than use it, over raw sockets: slow and endless heads,
/// stalled bodies, bad framing, floods of connections. Each gets a bounded, correct reaction, and
/// after each the gateway still serves: `/healthz` answers, a normal request succeeds, every
/// endpoint's claims are back to zero with its breaker closed, and the body budget is empty.
@Suite(.serialized) struct HostileCallerTests {
    /// Short deadlines, so that the probes take a second or two.
    static let quick = CallerSettings(
        headerTimeout: 0.5, bodyIdleTimeout: 0.5, bodyTimeout: 2, keepAliveTimeout: 0.7, bodyMemoryBudgetBytes: 1 << 20)
    static let chatBody = GatewayProxyTests.chatBody

    func withGateway(_ callers: CallerSettings = quick, _ body: (RunningGateway) async throws -> Void) async throws {
        let upstream = try await FaultyUpstream.start()
        var configuration = GatewayProxyTests.configuration([(upstream.baseURL, "ok")])
        configuration.server.callers = callers
        let gateway = try await RunningGateway.start(configuration, environment: ["UPSTREAM_KEY": "k"])
        do {
            try await body(gateway)
            try await Self.expectServing(gateway)
        } catch {
            await gateway.stop()
            await upstream.stop()
            throw error
        }
        await gateway.stop()
        await upstream.stop()
    }

    static func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await onThread(work)
    }

    static func post(_ body: String, path: String = "/v1/chat/completions", headers: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// One request on a new connection, read to its answer.
    static func exchange(_ port: Int, _ request: String, timeout: Double = 10) async throws -> (status: Int, head: String, body: String)? {
        try await blocking {
            let caller = try RawCaller(port: port)
            caller.send(request)
            return caller.readAnswer(timeout: timeout)
        }
    }

    static func expectServing(_ gateway: RunningGateway, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let port = gateway.port
        let health = try await exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(health?.status == 200, "healthz", sourceLocation: sourceLocation)
        let chat = try await exchange(port, post(chatBody, headers: "Connection: close\r\n"))
        #expect(chat?.status == 200, "a normal request: \(chat?.body ?? "no answer")", sourceLocation: sourceLocation)
        #expect(try await ClaimLifecycleTests.settled(gateway), "claims: \(ClaimLifecycleTests.counts(gateway))", sourceLocation: sourceLocation)
        let (snapshot, telemetry, _) = gateway.gateway.state.current()
        #expect(snapshot.fleet.endpoints.allSatisfy { telemetry[$0.index].breaker.storedState == .closed }, sourceLocation: sourceLocation)
        let budget = gateway.gateway.callers.bodyBudget
        #expect(try await eventually { budget.usedBytes == 0 }, "budget held: \(budget.usedBytes)", sourceLocation: sourceLocation)
    }

    static func errorCode(_ body: String) -> String? {
        let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        return (json?["error"] as? [String: Any])?["code"] as? String
    }

    // MARK: deadlines

    @Test func slowlorisHeadsAreAnswered408AndSilentConnectionsClosedAtTheDeadline() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            let (partial, trickled, silent) = try await Self.blocking {
                let partial = try RawCaller(port: port)
                partial.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
                let trickled = try RawCaller(port: port)
                let silent = try RawCaller(port: port)
                // One byte every 100 ms never finishes a head: the deadline counts from the first.
                for byte in "GET /healthz HTTP/1.1\r\nX-Slow: ".utf8 {
                    if !trickled.send([byte]) { break }
                    Thread.sleep(forTimeInterval: 0.1)
                }
                return (partial.readUntilClosed(timeout: 5), trickled.readUntilClosed(timeout: 5), silent.readUntilClosed(timeout: 5))
            }
            #expect(partial.closed && partial.text.hasPrefix("HTTP/1.1 408"), "\(partial)")
            #expect(partial.text.contains("request_timeout"))
            #expect(trickled.closed && trickled.text.hasPrefix("HTTP/1.1 408"), "\(trickled)")
            #expect(silent.closed && silent.text.isEmpty, "a connection that sent nothing is closed without an answer")
        }
    }

    @Test func stalledBodiesAreAnswered408AndTheirMemoryReleased() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            let budget = gateway.gateway.callers.bodyBudget
            let answers = try await Self.blocking {
                var callers: [RawCaller] = []
                for _ in 0..<5 {
                    let caller = try RawCaller(port: port)
                    // All but the last byte of the body.
                    caller.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n\r\n" + String(repeating: "x", count: 39_999))
                    callers.append(caller)
                }
                return callers.map { $0.readUntilClosed(timeout: 5) }
            }
            for answer in answers {
                #expect(answer.closed && answer.text.hasPrefix("HTTP/1.1 408"), "\(answer.text.prefix(200))")
                #expect(answer.text.contains("request_timeout") && answer.text.lowercased().contains("connection: close"))
            }
            #expect(budget.usedBytes == 0)
        }
    }

    @Test func idleKeepAliveConnectionsAreClosed() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            let (first, rest) = try await Self.blocking {
                let caller = try RawCaller(port: port)
                caller.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                return (caller.readAnswer(), caller.readUntilClosed(timeout: 5))
            }
            #expect(first?.status == 200)
            #expect(first?.head.lowercased().contains("connection: close") == false, "kept alive")
            #expect(rest.closed && rest.text.isEmpty, "closed silently once idle: \(rest)")
        }
    }

    // MARK: heads

    @Test func oversizedHeadsAreAnswered431() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            let bigField = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 64 * 1024))\r\n\r\n"
            let manyFields = "GET /healthz HTTP/1.1\r\nHost: x\r\n" + (0..<1000).map { "X-Field-\($0): v\r\n" }.joined() + "\r\n"
            let longURL = "GET /healthz?\(String(repeating: "q", count: 64 * 1024)) HTTP/1.1\r\nHost: x\r\n\r\n"
            for request in [bigField, manyFields, longURL] {
                let answer = try await Self.blocking {
                    let caller = try RawCaller(port: port)
                    caller.send(request)
                    return caller.readUntilClosed(timeout: 5)
                }
                #expect(answer.closed && answer.text.hasPrefix("HTTP/1.1 431"), "\(answer.text.prefix(200))")
                #expect(answer.text.contains("request_header_fields_too_large"))
            }
            // Just under the limits is fine.
            let fine = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + (0..<90).map { "X-Field-\($0): v\r\n" }.joined() + "\r\n"
            #expect(try await Self.exchange(port, fine)?.status == 200)
        }
    }

    // MARK: framing

    @Test func badFramingIsRefusedWithTheRightStatus() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            let body = Self.chatBody
            let cases: [(String, Int, String)] = [
                ("CL and TE", 400, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                ("TE gzip", 501, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
                ("TE gzip, chunked", 501, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
                ("conflicting CL", 400, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\nContent-Length: 3\r\n\r\n\(body)"),
                ("bad chunk size", 400, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
                ("negative chunk size", 400, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n"),
                ("not HTTP", 400, "HELLO\r\n\r\n"),
            ]
            for (name, status, request) in cases {
                let answer = try await Self.blocking {
                    let caller = try RawCaller(port: port)
                    caller.send(request)
                    return caller.readUntilClosed(timeout: 5)
                }
                #expect(answer.text.hasPrefix("HTTP/1.1 \(status)"), "\(name): \(answer.text.prefix(300))")
                #expect(answer.closed, "\(name): the connection is closed after a framing error")
                #expect(answer.text.contains("\"error\""), "\(name): an OpenAI-format error")
            }
        }
    }

    @Test func bodiesOverTheLimitGet413WhetherDeclaredOrChunked() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            let limit = gateway.gateway.configuration.server.maxRequestBodyBytes
            func padded(_ size: Int) -> String {
                let frame = #"{"model":"chat","messages":[{"role":"user","content":""}]}"#
                return #"{"model":"chat","messages":[{"role":"user","content":""# + String(repeating: "a", count: size - frame.utf8.count) + #""}]}"#
            }
            func chunked(_ body: String) -> String {
                // In 1,000-byte chunks.
                var chunks = ""
                var rest = Substring(body)
                while !rest.isEmpty {
                    let chunk = rest.prefix(1000)
                    chunks += String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n"
                    rest = rest.dropFirst(1000)
                }
                return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + "0\r\n\r\n"
            }
            #expect(try await Self.exchange(port, Self.post(padded(limit), headers: "Connection: close\r\n"))?.status == 200, "at the limit")
            #expect(try await Self.exchange(port, chunked(padded(limit)))?.status == 200, "at the limit, chunked")
            let declared = try await Self.exchange(port, Self.post(padded(limit + 1), headers: "Connection: close\r\n"))
            #expect(declared?.status == 413 && Self.errorCode(declared?.body ?? "") == "request_too_large")
            let streamed = try await Self.exchange(port, chunked(padded(limit + 1)))
            #expect(streamed?.status == 413 && Self.errorCode(streamed?.body ?? "") == "request_too_large")
            #expect(gateway.gateway.callers.bodyBudget.usedBytes == 0)
        }
    }

    @Test func aContentLengthShorterThanTheBodyReadsOnlyThatMuch() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            // The declared length cuts the JSON short: 400 for it; the rest is not a request (400), and the connection ends.
            let answer = try await Self.blocking {
                let caller = try RawCaller(port: port)
                caller.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n\(Self.chatBody)")
                return (caller.readAnswer(), caller.readUntilClosed(timeout: 5))
            }
            #expect(answer.0?.status == 400, "\(answer.0?.body ?? "none")")
            #expect(answer.1.closed && answer.1.text.hasPrefix("HTTP/1.1 400"), "[\(answer.1.text.prefix(300))]")
        }
    }

    @Test func http10CallersAreAnsweredInHTTP10AndClosedUnlessTheyKeepAlive() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            let plain = try await Self.blocking {
                let caller = try RawCaller(port: port)
                caller.send("GET /healthz HTTP/1.0\r\n\r\n")
                return caller.readUntilClosed(timeout: 5)
            }
            #expect(plain.closed && plain.text.hasPrefix("HTTP/1.0 200"), "\(plain.text.prefix(200))")
            let kept = try await Self.blocking {
                let caller = try RawCaller(port: port)
                caller.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                let first = caller.readAnswer()
                caller.send("GET /healthz HTTP/1.0\r\n\r\n")
                return (first, caller.readUntilClosed(timeout: 5))
            }
            #expect(kept.0?.status == 200 && kept.0?.head.lowercased().contains("connection: keep-alive") == true)
            #expect(kept.1.closed && kept.1.text.hasPrefix("HTTP/1.0 200"), "the second request is answered, then closed")
        }
    }

    @Test func aCallerWaitingFor100ContinueGetsItAndThenItsAnswer() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            let (interim, answer) = try await Self.blocking {
                let caller = try RawCaller(port: port)
                caller.send(
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
                        + "Content-Length: \(Self.chatBody.utf8.count)\r\nConnection: close\r\n\r\n")
                let interim = caller.readUntilClosed(timeout: 0.2)
                caller.send(Self.chatBody)
                return (interim, caller.readAnswer())
            }
            #expect(!interim.closed && interim.text.hasPrefix("HTTP/1.1 100 Continue"), "\(interim)")
            #expect(answer?.status == 200)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            let answers = try await Self.blocking {
                let caller = try RawCaller(port: port)
                caller.send(
                    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + Self.post(Self.chatBody) + "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
                        + Self.post("{", headers: "") + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return (0..<5).map { _ in caller.readAnswer() }
            }
            #expect(answers.map { $0?.status } == [200, 200, 200, 400, 200])
            #expect(answers[0]?.body.contains("\"ok\"") == true)
            #expect(answers[1]?.body.contains("Hello!") == true)
            #expect(answers[2]?.body.contains("\"list\"") == true)
            #expect(answers[3].flatMap { Self.errorCode($0.body) } == "invalid_json")
        }
    }

    // MARK: header values

    @Test func controlCharactersInTheRequestIDAreNeverEchoed() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            for value in ["abc\rX-Injected: yes", "abc\nX-Injected: yes", "abc\u{0}def", "a b c", String(repeating: "i", count: 300)] {
                let answer = try await Self.blocking {
                    let caller = try RawCaller(port: port)
                    caller.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: \(value)\r\nConnection: close\r\n\r\n")
                    return caller.readUntilClosed(timeout: 5)
                }
                let head = answer.text.components(separatedBy: "\r\n\r\n").first ?? ""
                #expect(!head.lowercased().contains("x-injected"), "\(head)")
                #expect(answer.text.hasPrefix("HTTP/1.1 200") || answer.text.hasPrefix("HTTP/1.1 400"), "\(answer.text.prefix(200))")
                if let id = head.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("x-request-id:") }) {
                    #expect(id.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, "\(id)")
                    #expect(!id.contains("abc"), "an unusable id is replaced, not echoed")
                }
            }
        }
    }

    @Test func garbageClientLocationsAreRefusedWith400() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            for location in ["nan,nan", "1e999,5", "abc", "91,181", "-0,inf", ",", "1,2,3", String(repeating: "9", count: 100), "\u{7F}"] {
                let answer = try await Self.exchange(port, Self.post(Self.chatBody, headers: "X-Proxima-Client-Location: \(location)\r\nConnection: close\r\n"))
                #expect(answer?.status == 400, "\(location): \(answer?.status ?? 0) \(answer?.body ?? "")")
                #expect(answer.flatMap { Self.errorCode($0.body) } != nil, "an OpenAI-format error")
            }
        }
    }

    // MARK: exhaustion

    @Test func connectionsPastTheLimitAreRefusedAndThoseAdmittedServed() async throws {
        var callers = Self.quick
        callers.maxConnections = 8
        callers.headerTimeout = 5
        callers.keepAliveTimeout = 5
        try await withGateway(callers) { gateway in
            let port = gateway.port
            let (admittedAnswer, refused, stillServing) = try await Self.blocking {
                // Eight silent connections take every place.
                let admitted = try (0..<8).map { _ in try RawCaller(port: port) }
                Thread.sleep(forTimeInterval: 0.2)
                // Forty more: each is answered 503 and closed at once.
                let extra = try (0..<40).map { _ in try RawCaller(port: port) }
                let refused = extra.map { $0.readUntilClosed(timeout: 3) }
                // An admitted connection is served as usual, and keeps being served.
                admitted[0].send(Self.post(Self.chatBody))
                let first = admitted[0].readAnswer()
                admitted[1].send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let second = admitted[1].readAnswer()
                return (first, refused, second)
            }
            #expect(admittedAnswer?.status == 200)
            #expect(stillServing?.status == 200)
            #expect(refused.allSatisfy { $0.closed }, "every connection past the limit is closed")
            #expect(refused.allSatisfy { $0.text.hasPrefix("HTTP/1.1 503") && $0.text.contains("too_many_connections") }, "\(refused.first?.text ?? "")")
            // The admitted ones are gone now (closed with the caller objects): new connections are served.
            #expect(try await eventually { gateway.gateway.callers.connections.openConnections == 0 })
        }
    }

    @Test func bodiesPastTheMemoryBudgetGet503AndTheBudgetIsReleased() async throws {
        var callers = Self.quick
        callers.bodyMemoryBudgetBytes = 64 * 1024
        callers.bodyIdleTimeout = 3
        callers.bodyTimeout = 5
        try await withGateway(callers) { gateway in
            let port = gateway.port
            let budget = gateway.gateway.callers.bodyBudget
            let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n"
            let first = try await Self.blocking {
                let caller = try RawCaller(port: port)
                caller.send(head + String(repeating: "x", count: 40_000))
                return caller
            }
            #expect(try await eventually { budget.usedBytes >= 40_000 })
            let second = try await Self.blocking {
                let caller = try RawCaller(port: port)
                caller.send(head + String(repeating: "x", count: 40_000))
                return caller.readUntilClosed(timeout: 5)
            }
            #expect(second.text.hasPrefix("HTTP/1.1 503") && second.text.contains("\"overloaded\""), "\(second.text.prefix(300))")
            #expect(second.closed)
            // The first caller leaves halfway: its share comes back.
            first.reset()
            #expect(try await eventually { budget.usedBytes == 0 })
            // A whole body fits again.
            let body = #"{"model":"chat","messages":[{"role":"user","content":""# + String(repeating: "y", count: 50_000) + #""}]}"#
            #expect(try await Self.exchange(port, Self.post(body, headers: "Connection: close\r\n"))?.status == 200)
        }
    }

    @Test func halfClosingAndVanishingCallersLeaveNothingBehind() async throws {
        try await withGateway { gateway in
            let port = gateway.port
            let budget = gateway.gateway.callers.bodyBudget
            let halfClosed = try await Self.blocking {
                var answers: [String] = []
                for request in [Self.post(Self.chatBody), Self.post(GatewayProxyTests.streamBody)] {
                    let caller = try RawCaller(port: port)
                    caller.send(request)
                    caller.shutdownWrite()
                    answers.append(caller.readUntilClosed(timeout: 5).text)
                }
                return answers
            }
            #expect(halfClosed.allSatisfy { $0.contains("HTTP/1.1 200 OK") }, "half-closing callers are answered")
            try await Self.blocking {
                // Gone mid-head, mid-body, right after the request, with a close or a reset.
                let requests = [
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n",
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + String(repeating: "x", count: 3000),
                    Self.post(Self.chatBody), Self.post(GatewayProxyTests.streamBody),
                ]
                for request in requests {
                    for resetting in [false, true] {
                        let caller = try RawCaller(port: port)
                        caller.send(request)
                        if resetting { caller.reset() }
                    }
                }
            }
            #expect(try await eventually { budget.usedBytes == 0 && gateway.gateway.callers.connections.openConnections == 0 })
        }
    }
}
