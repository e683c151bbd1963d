import Foundation
import HTTPTypes
import Logging
import ProximaCore
import ProximaGuard
import Testing

@testable import ProximaGateway

/// Crawler verification against a real DNS server (dnsmasq on loopback) with records for addresses
/// in 127.0.0.0/8, including spoofed ones; and the unknown-caller score.
@Suite struct CrawlerVerifierTests {
    static let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    static let catalog: UserAgentCatalog = {
        do {
            return try UserAgentCatalog.load(directory: LocalPostgres.repositoryRoot + "/data/crawlers")
        } catch {
            fatalError("the shipped crawler data does not load: \(error)")
        }
    }()

    /// A real server answers in milliseconds; the deadline only bounds failures, and is generous so that
    /// a machine loaded by other suites does not turn an answer into a timeout.
    static func verifier(servers: [String], timeout: Double = 5, rangesFile: String? = nil) throws -> CrawlerVerifier {
        let settings = CrawlerSettings(dnsServers: servers, dnsTimeoutSeconds: timeout, rangesFile: rangesFile)
        return try CrawlerVerifier(settings: settings, logger: Logger(label: "test"), catalog: catalog)
    }

    static func address(_ text: String) -> IPAddress { IPAddress(text)! }

    /// The scenario table of docs/security.md: each caller claims Googlebot from its own address.
    @Test func crawlerClaimsAreProvenOrRefutedByForwardConfirmedReverseDNS() async throws {
        let dns = try LocalDNS.start(
            hosts: [
                "127.0.0.2 crawl-127-0-0-2.googlebot.com",
                "127.0.0.4 crawl-127-0-0-4.googlebot.com.evil.example",
                "127.0.0.5 crawl-127-0-0-5.evilgooglebot.com",
            ],
            pointerRecords: [(address: "127.0.0.3", name: "crawl-127-0-0-3.googlebot.com")],
            hostRecords: [(name: "crawl-127-0-0-3.googlebot.com", address: "127.0.0.99")])
        defer { dns.stop() }
        let verifier = try Self.verifier(servers: [dns.server])
        let cases: [(address: String, expected: CallerClassification)] = [
            ("127.0.0.2", CallerClassification(.verifiedCrawler, name: "Googlebot")),
            ("127.0.0.3", CallerClassification(.impersonator, name: "Googlebot", reason: "forward_mismatch")),
            ("127.0.0.4", CallerClassification(.impersonator, name: "Googlebot", reason: "ptr_outside_domains")),
            ("127.0.0.5", CallerClassification(.impersonator, name: "Googlebot", reason: "ptr_outside_domains")),
            ("127.0.0.6", CallerClassification(.impersonator, name: "Googlebot", reason: "no_ptr")),
        ]
        for (address, expected) in cases {
            let found = await verifier.classify(userAgent: Self.googlebot, peer: Self.address(address), now: 1_000)
            #expect(found == expected, "\(address)")
        }
        // The same address claiming a crawler of another operator is refuted by that operator's domains.
        let bing = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
        let found = await verifier.classify(userAgent: bing, peer: Self.address("127.0.0.2"), now: 1_000)
        #expect(found == CallerClassification(.impersonator, name: "Bingbot", reason: "ptr_outside_domains"))
        // Bots that name themselves and people need no DNS.
        let before = verifier.resolver.queriesSent
        #expect(await verifier.classify(userAgent: "curl/8.5.0", peer: Self.address("127.0.0.2"), now: 1_000) == CallerClassification(.declaredBot, name: "curl"))
        let browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
        #expect(await verifier.classify(userAgent: browser, peer: Self.address("127.0.0.2"), now: 1_000) == nil)
        #expect(await verifier.classify(userAgent: nil, peer: Self.address("127.0.0.2"), now: 1_000) == nil)
        #expect(verifier.resolver.queriesSent == before)
    }

    /// A verdict is kept for the records' TTL: the second request from the address asks nothing, and
    /// twenty at once from a new address share one lookup (PTR and A: two queries).
    @Test func oneLookupPerAddressPerTTL() async throws {
        let dns = try LocalDNS.start(hosts: ["127.0.0.2 crawl-127-0-0-2.googlebot.com", "127.0.0.7 crawl-127-0-0-7.googlebot.com"])
        defer { dns.stop() }
        let verifier = try Self.verifier(servers: [dns.server])
        let address = Self.address("127.0.0.2")
        #expect(await verifier.classify(userAgent: Self.googlebot, peer: address, now: 1_000)?.callerClass == .verifiedCrawler)
        #expect(verifier.resolver.queriesSent == 2)
        #expect(await verifier.classify(userAgent: Self.googlebot, peer: address, now: 1_100)?.callerClass == .verifiedCrawler)
        #expect(verifier.resolver.queriesSent == 2)
        #expect(dns.queryCount == 2)
        // Past the TTL (dnsmasq's 300 s) it asks again.
        #expect(await verifier.classify(userAgent: Self.googlebot, peer: address, now: 1_301)?.callerClass == .verifiedCrawler)
        #expect(verifier.resolver.queriesSent == 4)

        let other = Self.address("127.0.0.7")
        let classes = await withTaskGroup(of: CallerClass?.self) { group in
            for _ in 0..<20 { group.addTask { await verifier.classify(userAgent: Self.googlebot, peer: other, now: 2_000)?.callerClass } }
            var classes: [CallerClass?] = []
            for await found in group { classes.append(found) }
            return classes
        }
        #expect(classes.allSatisfy { $0 == .verifiedCrawler })
        #expect(verifier.resolver.queriesSent == 6)
        #expect(dns.queryCount == 6)
    }

    /// A DNS server that never answers: the claim stays unproven (declared bot, `dns_timeout`) within
    /// the deadline, never an impersonator, and the failure is remembered for `failure_ttl_seconds`.
    @Test func aSilentDNSServerLeavesTheClaimUnprovenPromptly() async throws {
        let silent = try SilentUDPServer()
        defer { silent.close() }
        let verifier = try Self.verifier(servers: [silent.server], timeout: 0.2)
        let started = ContinuousClock.now
        let found = await verifier.classify(userAgent: Self.googlebot, peer: Self.address("127.0.0.2"), now: 1_000)
        #expect(found == CallerClassification(.declaredBot, name: "Googlebot", reason: "dns_timeout"))
        // A hang detector, not a speed test: the deadline is 0.2 s (seconds more on a loaded machine).
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(verifier.resolver.queriesSent == 1)
        #expect(await verifier.classify(userAgent: Self.googlebot, peer: Self.address("127.0.0.2"), now: 1_030)?.reason == "dns_timeout")
        #expect(verifier.resolver.queriesSent == 1)
        // Past failure_ttl_seconds (60) it tries again.
        _ = await verifier.classify(userAgent: Self.googlebot, peer: Self.address("127.0.0.2"), now: 1_061)
        #expect(verifier.resolver.queriesSent == 2)
    }

    /// An address in the operator's configured ranges is verified without asking DNS; an operator
    /// that publishes ranges only refutes an address outside them, and without ranges stays unproven.
    @Test func configuredRangesProveWithoutDNS() async throws {
        let silent = try SilentUDPServer()
        defer { silent.close() }
        let file = NSTemporaryDirectory() + "proxima-ranges-\(UUID().uuidString).json"
        try #"{"Google": ["127.0.0.8/29"], "GPTBot": ["127.0.1.0/24"]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let verifier = try Self.verifier(servers: [silent.server], timeout: 0.2, rangesFile: file)
        #expect(await verifier.classify(userAgent: Self.googlebot, peer: Self.address("127.0.0.9"), now: 1) == CallerClassification(.verifiedCrawler, name: "Googlebot"))
        let gptbot = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.1; +https://openai.com/gptbot"
        #expect(await verifier.classify(userAgent: gptbot, peer: Self.address("127.0.1.5"), now: 1)?.callerClass == .verifiedCrawler)
        #expect(await verifier.classify(userAgent: gptbot, peer: Self.address("127.0.2.5"), now: 1) == CallerClassification(.impersonator, name: "GPTBot", reason: "not_in_ranges"))
        let claude = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)"
        #expect(await verifier.classify(userAgent: claude, peer: Self.address("127.0.2.5"), now: 1) == CallerClassification(.declaredBot, name: "ClaudeBot", reason: "unverifiable"))
        #expect(verifier.resolver.queriesSent == 0)
    }

    @Test func aBadRangesFileIsRefusedByName() throws {
        let file = NSTemporaryDirectory() + "proxima-ranges-\(UUID().uuidString).json"
        try #"{"Google": ["66.249.64.0/33"]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect { try Self.verifier(servers: ["127.0.0.1:1"], rangesFile: file) } throws: { error in
            "\(error)".contains("ranges_file") && "\(error)".contains("Google[0]")
        }
        #expect(throws: (any Error).self) { try Self.verifier(servers: [], rangesFile: "/nonexistent/ranges.json") }
    }

    @Test func resolvConfNameserversAreRead() {
        let text = "# comment\nsearch example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\n"
        #expect(DNSClient.nameservers(resolvConf: text) == [DNSServerAddress(address: IPAddress("10.0.0.2")!), DNSServerAddress(address: IPAddress("fe80::1")!)])
    }

    // MARK: Unknown callers

    static func request(_ fields: [(HTTPField.Name, String)], peer: String = "192.0.2.1") -> EdgeRequest {
        var headers = HTTPFields()
        for (name, value) in fields { headers.append(HTTPField(name: name, value: value)) }
        return EdgeRequest(method: .post, authority: "gateway", path: "/v1/chat/completions", scheme: "http", headers: headers, peer: IPAddress(peer))
    }

    static let browserHead: [(HTTPField.Name, String)] = [
        (.userAgent, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
        (.accept, "application/json"), (.acceptLanguage, "en-GB,en;q=0.9"), (.contentType, "application/json"),
    ]

    @Test func anOrdinaryClientScoresZeroAndABareScriptScoresHigh() {
        let scorer = UnknownCallerScorer(settings: UnknownCallerSettings())
        let ordinary = scorer.classify(Self.request(Self.browserHead), keyID: nil, now: 0)
        #expect(ordinary.callerClass == .unknown && ordinary.score == 0 && ordinary.signals.isEmpty)
        let bare = scorer.classify(Self.request([(.contentType, "application/json")], peer: "192.0.2.2"), keyID: nil, now: 0)
        #expect(bare.signals == ["no_user_agent", "no_accept", "few_headers"])
        #expect(abs(bare.score - 0.65) < 1e-9)
        let fakeBrowser = scorer.classify(Self.request([(.userAgent, "Mozilla/5.0"), (.accept, "*/*")], peer: "192.0.2.3"), keyID: nil, now: 0)
        #expect(fakeBrowser.signals == ["browser_without_accept_language", "few_headers"])
    }

    @Test func theAddressRateRaisesTheScoreToSuspiciousAndWeightsAreTunable() {
        let settings = UnknownCallerSettings(windowSeconds: 60, addressRequestsPerWindow: 10, weights: ["no_accept": 0, "address_rate": 1])
        let scorer = UnknownCallerScorer(settings: settings)
        var last = CallerClassification(.unknown)
        for index in 0..<10 {
            last = scorer.classify(Self.request(Self.browserHead), keyID: nil, now: Double(index))
            if index < 5 { #expect(last.score == 0, "request \(index + 1) of 10") }
        }
        #expect(last.score == 1 && last.signals == ["address_rate"])
        #expect(last.policyKey(suspiciousScore: settings.suspiciousScore) == .suspicious)
        // Another address is not affected; the next window starts again.
        #expect(scorer.classify(Self.request(Self.browserHead, peer: "192.0.2.9"), keyID: nil, now: 10).score == 0)
        #expect(scorer.classify(Self.request(Self.browserHead), keyID: nil, now: 61).score == 0)
        // A zero weight silences a signal.
        #expect(!scorer.classify(Self.request([(.userAgent, "x")], peer: "192.0.2.10"), keyID: nil, now: 0).signals.contains("no_accept"))
        // The key rate counts across addresses.
        var keyed = CallerClassification(.unknown)
        for index in 0..<10 { keyed = scorer.classify(Self.request(Self.browserHead, peer: "198.51.100.\(index)"), keyID: "key-1", now: 100) }
        #expect(keyed.signals.contains("key_rate"))
    }

    @Test func trackedAddressesStayWithinTheirBound() {
        let scorer = UnknownCallerScorer(settings: UnknownCallerSettings(maxTrackedAddresses: 64))
        for index in 0..<1_000 {
            _ = scorer.classify(Self.request(Self.browserHead, peer: "10.0.\(index / 256).\(index % 256)"), keyID: nil, now: 0)
        }
        #expect(scorer.trackedCount <= 64)
        #expect(scorer.trackedCount > 0)
    }
}
