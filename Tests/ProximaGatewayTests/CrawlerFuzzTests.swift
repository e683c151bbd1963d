import Foundation
import ProximaCore
import ProximaGuard
import Testing

extension FuzzSuites {
    /// The DNS decoder and the User-Agent matcher read bytes from strangers (a DNS server or anyone who
    /// can send a datagram to the client's port; every caller's User-Agent): for every truncation and
    /// thousands of mutations they terminate, never trap, and keep their invariants.
    @Suite struct CrawlerFuzzTests {
        static func hex(_ text: String) -> [UInt8] {
            var bytes: [UInt8] = []
            var index = text.startIndex
            while index < text.endIndex {
                let next = text.index(index, offsetBy: 2)
                bytes.append(UInt8(text[index..<next], radix: 16)!)
                index = next
            }
            return bytes
        }

        static let dnsSeeds: [[UInt8]] = {
            // Real dnsmasq answers (PTR, A, NXDOMAIN), then answers made here with CNAME chains, AAAA and
            // compression.
            var seeds = [
                hex("1234858000010001000000000132013001300331323707696e2d61646472046172706100000c0001c00c000c00010000012c001f0f637261776c2d3132372d302d302d3209676f6f676c65626f7403636f6d00"),
                hex("1234858000010001000000000f637261776c2d3132372d302d302d3209676f6f676c65626f7403636f6d0000010001c00c000100010000012c00047f000002"),
                hex("1234818300010000000000000134013001300331323707696e2d61646472046172706100000c0001"),
            ]
            let made = DNSMessage(
                id: 9, isResponse: true, questions: [.init(name: "crawl-1.googlebot.com", type: .aaaa)],
                answers: [
                    .init(name: "crawl-1.googlebot.com", type: .cname, ttl: 60, data: .name("host.googlebot.com")),
                    .init(name: "host.googlebot.com", type: .aaaa, ttl: 300, data: .address(IPAddress("2001:4860:4801::1")!)),
                    .init(name: "host.googlebot.com", type: .a, ttl: 300, data: .address(IPAddress("66.249.66.1")!)),
                    .init(name: "googlebot.com", type: .init(rawValue: 16), ttl: 5, data: .other([3, 0x61, 0x62, 0x63])),
                ])
            seeds.append(try! made.encoded())
            return seeds
        }()

        /// Accepted messages re-encode to bytes that decode to the same message; reading the answer to
        /// their question never traps.
        @Test func theDNSDecoderIsTotal() async throws {
            var accepted = 0
            try await Fuzzing.run("dns-decoder", seeds: Self.dnsSeeds, iterations: Fuzzing.iterations(default: 20_000)) { input, label in
                let message: DNSMessage
                do {
                    message = try DNSMessage(decoding: input)
                } catch {
                    return
                }
                accepted += 1
                let again = try DNSMessage(decoding: message.encoded())
                #expect(again == message, "\(label): \(Fuzzing.describe(input))")
                for question in message.questions { _ = ReverseDNS.answer(to: question, in: message) }
                for record in message.answers {
                    if case .name(let name) = record.data { _ = ReverseDNS.isName(name, under: ["googlebot.com"]) }
                }
            }
            #expect(accepted > 0, "some mutations stay valid")
        }

        static let catalog: UserAgentCatalog = {
            do {
                return try UserAgentCatalog.load(directory: LocalPostgres.repositoryRoot + "/data/crawlers")
            } catch {
                fatalError("the shipped crawler data does not load: \(error)")
            }
        }()
        static let patterns: [String] = {
            let data = FileManager.default.contents(atPath: LocalPostgres.repositoryRoot + "/data/crawlers/crawler-user-agents.json")!
            return try! UserAgentCatalog.parsePatterns(data)
        }()
        static let patternsOnly = UserAgentCatalog(crawlers: [], patterns: patterns, genericMarkers: false, cacheCapacity: 0)
        static let regexes = patterns.compactMap { try? NSRegularExpression(pattern: $0) }

        static let userAgentSeeds: [[UInt8]] = [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "curl/8.5.0", "python-requests/2.32.3", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            "Mozilla/5.0 (compatible; SISTRIX Crawler; http://crawler.sistrix.net/)", "sentry/24.1 (https://sentry.io)",
            "BlogTraffic/1.2 Feed-Fetcher", "AdsBot-Google (+http://www.google.com/adsbot.html)",
        ].map { Array($0.utf8) }

        /// NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR in UTF-8: ICU's `$` matches before them too.
        static func hasUnicodeLineBreak(_ bytes: [UInt8]) -> Bool {
            for index in bytes.indices.dropLast() {
                if bytes[index] == 0xC2 && bytes[index + 1] == 0x85 { return true }
                if bytes[index] == 0xE2, index + 2 < bytes.count, bytes[index + 1] == 0x80, bytes[index + 2] == 0xA8 || bytes[index + 2] == 0xA9 {
                    return true
                }
            }
            return false
        }

        /// The one-pass matcher finds a pattern exactly when one of the regular expressions matches
        /// (inputs with line breaks aside: `$` also matches before a final line break there, and a header
        /// value cannot hold one).
        @Test func theUserAgentMatcherIsTotalAndAgreesWithTheRegularExpressions() async throws {
            await Fuzzing.run("user-agent", seeds: Self.userAgentSeeds, iterations: Fuzzing.iterations(default: 1_500)) { input, label in
                _ = input.withUnsafeBufferPointer { Self.catalog.classify(bytes: $0) }
                guard !input.contains(0x0A), !input.contains(0x0D), !Self.hasUnicodeLineBreak(input) else { return }
                let found = input.withUnsafeBufferPointer { Self.patternsOnly.classify(bytes: $0) } != .none
                let text = String(decoding: input, as: UTF8.self)
                let range = NSRange(text.startIndex..., in: text)
                let expected = Self.regexes.contains { $0.firstMatch(in: text, range: range) != nil }
                #expect(found == expected, "\(label): \(Fuzzing.describe(input))")
            }
        }
    }
}
