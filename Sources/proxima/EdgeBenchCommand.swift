import ArgumentParser
import Foundation
import ProximaCore
import ProximaGuard

struct EdgeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge",
        abstract: "Measure the edge's per-request classification: User-Agent matching (uncached, cached, and every pattern as a regular expression for comparison) and DNS answer decoding.",
        discussion: """
            Loads data/crawlers (1,504 crawler-user-agents patterns and the crawler operators) and times
            classifying ordinary browser and SDK User-Agents (the common case: a full pass that finds
            nothing) and every instance of the data set, one call at a time, reporting the median, p99
            and mean per User-Agent. See docs/security.md, "Verified crawlers and declared bots".
            """)

    @Option(help: "Directory holding crawler-user-agents.json and operators.json.")
    var dataDir: String = UserAgentCatalog.shippedDirectory

    @Option(help: "Passes over each set of User-Agents.")
    var passes: Int = 200

    func run() async throws {
        guard passes > 0, passes <= 100_000 else { throw ValidationError("--passes must be 1...100000") }
        let catalog = try UserAgentCatalog.load(directory: dataDir)
        guard let data = FileManager.default.contents(atPath: dataDir + "/crawler-user-agents.json") else {
            throw ValidationError("cannot read \(dataDir)/crawler-user-agents.json")
        }
        struct Item: Decodable { var pattern: String; var instances: [String] }
        let items = try JSONDecoder().decode([Item].self, from: data)
        let instances = items.flatMap(\.instances)
        let ordinary = [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            "OpenAI/Python 1.54.4", "AsyncOpenAI/Python 1.54.4", "OpenAI/JS 4.73.0",
        ]
        print("patterns \(catalog.patternCount), of which \(catalog.regexPatternCount) need a regular expression; \(catalog.crawlers.count) crawler operators")
        print("set                      calls      p50 ns    p99 ns   mean ns")
        report("browsers+SDKs uncached", uncached(catalog, ordinary, passes: passes * 100))
        report("data set uncached", uncached(catalog, instances, passes: passes))
        report("browsers+SDKs cached", cached(catalog, ordinary, passes: passes * 100))
        report("data set cached", cached(catalog, instances, passes: max(1, passes / 2)))
        let regexes = items.compactMap { try? NSRegularExpression(pattern: $0.pattern) }
        report("every regex, browsers", bruteForce(regexes, ordinary, passes: max(1, passes / 20)))
        let answer: [UInt8] = [
            0x12, 0x34, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0x32, 1, 0x30, 1, 0x30, 3, 0x31, 0x32, 0x37, 7,
        ] + Array("in-addr".utf8) + [4] + Array("arpa".utf8) + [0, 0, 12, 0, 1, 0xC0, 0x0C, 0, 12, 0, 1, 0, 0, 1, 0x2C, 0, 31, 15]
            + Array("crawl-127-0-0-2".utf8) + [9] + Array("googlebot".utf8) + [3] + Array("com".utf8) + [0]
        report("DNS PTR answer decode", timed(count: passes * 500) { _ in _ = try? DNSMessage(decoding: answer) })
    }

    private func uncached(_ catalog: UserAgentCatalog, _ userAgents: [String], passes: Int) -> [Double] {
        var texts = userAgents
        return timed(count: passes * texts.count) { index in
            _ = texts[index % texts.count].withUTF8 { catalog.classify(bytes: $0) }
        }
    }

    private func cached(_ catalog: UserAgentCatalog, _ userAgents: [String], passes: Int) -> [Double] {
        for userAgent in userAgents { _ = catalog.classify(userAgent) }
        return timed(count: passes * userAgents.count) { index in _ = catalog.classify(userAgents[index % userAgents.count]) }
    }

    private func bruteForce(_ regexes: [NSRegularExpression], _ userAgents: [String], passes: Int) -> [Double] {
        timed(count: passes * userAgents.count) { index in
            let text = userAgents[index % userAgents.count]
            let range = NSRange(text.startIndex..., in: text)
            _ = regexes.contains { $0.firstMatch(in: text, range: range) != nil }
        }
    }

    /// Nanoseconds of each call.
    private func timed(count: Int, _ body: (Int) -> Void) -> [Double] {
        var samples: [Double] = []
        samples.reserveCapacity(count)
        let clock = ContinuousClock()
        for index in 0..<count {
            let started = clock.now
            body(index)
            let elapsed = clock.now - started
            samples.append(Double(elapsed.components.attoseconds) / 1e9 + Double(elapsed.components.seconds) * 1e9)
        }
        return samples
    }

    private func report(_ name: String, _ samples: [Double]) {
        let sorted = samples.sorted()
        guard !sorted.isEmpty else { return }
        let p50 = sorted[sorted.count / 2]
        let p99 = sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
        let mean = sorted.reduce(0, +) / Double(sorted.count)
        func pad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
        print(name.padding(toLength: 22, withPad: " ", startingAt: 0) + pad("\(sorted.count)", 8) + pad(String(format: "%.0f", p50), 12)
            + pad(String(format: "%.0f", p99), 10) + pad(String(format: "%.0f", mean), 10))
    }
}
