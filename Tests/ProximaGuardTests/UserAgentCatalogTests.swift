import Foundation
import ProximaCore
import Testing

@testable import ProximaGuard

@Suite struct UserAgentCatalogTests {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path + "/data/crawlers"
    }()

    struct Item: Decodable {
        var pattern: String
        var instances: [String]
    }

    static let items: [Item] = {
        let data = FileManager.default.contents(atPath: root + "/crawler-user-agents.json")!
        return try! JSONDecoder().decode([Item].self, from: data)
    }()

    static let catalog = try! UserAgentCatalog.load(directory: root)
    /// The data set's patterns alone: no crawler claims, no generic markers.
    static let patternsOnly = UserAgentCatalog(crawlers: [], patterns: items.map(\.pattern), genericMarkers: false, cacheCapacity: 0)
    static let regexes: [NSRegularExpression] = items.compactMap { try? NSRegularExpression(pattern: $0.pattern) }

    static let browsers = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/114.0.0.0",
    ]

    static func bruteForce(_ userAgent: String) -> Bool {
        let range = NSRange(userAgent.startIndex..., in: userAgent)
        return regexes.contains { $0.firstMatch(in: userAgent, range: range) != nil }
    }

    @Test func theShippedDataLoadsAndFewPatternsNeedARegularExpression() {
        #expect(Self.items.count == 1_504)
        #expect(Self.catalog.patternCount == 1_504)
        #expect(Self.catalog.regexPatternCount < 40, "\(Self.catalog.regexPatternCount) patterns need a regular expression")
        #expect(Self.catalog.crawlers.contains { $0.name == "Googlebot" && $0.domains.contains("googlebot.com") })
    }

    /// The one-pass matcher agrees with running every pattern as a regular expression, on every
    /// instance of the data set and on ordinary browsers.
    @Test func theMatcherAgreesWithTheRegularExpressions() {
        var checked = 0
        for userAgent in Self.items.flatMap(\.instances) + Self.browsers {
            let expected = Self.bruteForce(userAgent)
            let found = Self.patternsOnly.classify(userAgent) != .none
            #expect(found == expected, "\(userAgent)")
            checked += 1
        }
        #expect(checked > 2_000)
    }

    /// Every expansion of a literal pattern matches exactly where its regular expression does: the
    /// expansions themselves, and them with text around.
    @Test func literalExpansionsMatchLikeTheirPatterns() throws {
        for item in Self.items {
            guard case .literals(let literals) = UserAgentPattern(item.pattern).form else { continue }
            let regex = try NSRegularExpression(pattern: item.pattern)
            let alone = UserAgentCatalog(crawlers: [], patterns: [item.pattern], genericMarkers: false, cacheCapacity: 0)
            for literal in literals {
                let text = String(decoding: literal.bytes, as: UTF8.self)
                for candidate in [text, "x " + text, text + " x"] {
                    let range = NSRange(candidate.startIndex..., in: candidate)
                    let byRegex = regex.firstMatch(in: candidate, range: range) != nil
                    #expect((alone.classify(candidate) != .none) == byRegex, "\(item.pattern) on '\(candidate)'")
                }
            }
        }
    }

    @Test func patternsCompileToLiteralsWithAnchorsOrARequiredLiteral() {
        #expect(UserAgentPattern("[wW]get").form == .literals([.init(bytes: Array("wget".utf8), anchoredStart: false, anchoredEnd: false),
                                                               .init(bytes: Array("Wget".utf8), anchoredStart: false, anchoredEnd: false)]))
        #expect(UserAgentPattern("^curl").form == .literals([.init(bytes: Array("curl".utf8), anchoredStart: true, anchoredEnd: false)]))
        #expect(UserAgentPattern("(^| )sentry\\/").form == .literals([
            .init(bytes: Array("sentry/".utf8), anchoredStart: true, anchoredEnd: false),
            .init(bytes: Array(" sentry/".utf8), anchoredStart: false, anchoredEnd: false),
        ]))
        #expect(UserAgentPattern("AdsBot-Google([^-]|$)").form == .regex(required: Array("AdsBot-Google".utf8)))
        #expect(UserAgentPattern("BlogTraffic\\/\\d\\.\\d+ Feed-Fetcher").form == .regex(required: Array(" Feed-Fetcher".utf8)))
        #expect(UserAgentPattern("Bots?x").form == .literals([.init(bytes: Array("Botsx".utf8), anchoredStart: false, anchoredEnd: false),
                                                             .init(bytes: Array("Botx".utf8), anchoredStart: false, anchoredEnd: false)]))
        #expect(UserAgentPattern("a|b").form == .regex(required: nil))
    }

    @Test func crawlerClaimsLibrariesAndBrowsersAreTold() throws {
        let google = try #require(Self.catalog.crawlers.firstIndex { $0.name == "Googlebot" })
        let bing = try #require(Self.catalog.crawlers.firstIndex { $0.name == "Bingbot" })
        #expect(Self.catalog.classify("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)") == .crawler(google))
        #expect(Self.catalog.classify("mozilla/5.0 (compatible; GOOGLEBOT/2.1)") == .crawler(google))
        #expect(Self.catalog.classify("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)") == .crawler(bing))
        #expect(Self.catalog.classify("curl/8.5.0") == .bot(name: "curl"))
        #expect(Self.catalog.classify("python-requests/2.32.3") != .none)
        #expect(Self.catalog.classify("python-httpx/0.27.0") != .none)
        #expect(Self.catalog.classify("Go-http-client/1.1") != .none)
        #expect(Self.catalog.classify("okhttp/4.12.0") != .none)
        #expect(Self.catalog.classify("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36") != .none)
        #expect(Self.catalog.classify("my-own-tool-bot/1.0") != .none)
        for browser in Self.browsers { #expect(Self.catalog.classify(browser) == .none, "\(browser)") }
        #expect(Self.catalog.classify("") == .none)
        #expect(Self.catalog.classify("a") == .none)
    }

    /// Every instance of the data set counts as automated (or as a crawler claim).
    @Test func everyInstanceOfTheDataSetIsABotOrACrawler() {
        for item in Self.items {
            for instance in item.instances {
                #expect(Self.catalog.classify(instance) != .none, "\(item.pattern): \(instance)")
            }
        }
    }

    @Test func operatorTablesAndRangesAreChecked() throws {
        #expect(throws: CrawlerOperator.LoadError.self) { try CrawlerOperator.parse(Data(#"{"crawlers": [{"name": "x", "operator": "y", "tokens": ["a"], "domains": []}]}"#.utf8)) }
        #expect(throws: CrawlerOperator.LoadError.self) { try CrawlerOperator.parse(Data(#"{"crawlers": [{"name": "x", "operator": "y", "tokens": ["ab"], "domains": ["bad domain"]}]}"#.utf8)) }
        let ranges = try CrawlerRanges.parse(Data(#"{"Google": ["66.249.64.0/19", "2001:4860:4801::/48"]}"#.utf8))
        let google = CrawlerOperator(name: "Googlebot", operator: "Google", tokens: ["Googlebot"], domains: ["googlebot.com"])
        #expect(ranges.contains(IPAddress("66.249.66.1")!, for: google))
        #expect(ranges.contains(IPAddress("2001:4860:4801::5")!, for: google))
        #expect(!ranges.contains(IPAddress("66.249.96.1")!, for: google))
        #expect { try CrawlerRanges.parse(Data(#"{"Google": ["66.249.64.1/19"]}"#.utf8)) } throws: { "\($0)".contains("Google[0]") }
    }
}
