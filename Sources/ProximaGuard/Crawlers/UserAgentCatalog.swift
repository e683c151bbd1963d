import Foundation
import ProximaCore
import Synchronization

/// What a User-Agent says about its sender.
public enum UserAgentClaim: Sendable, Equatable {
    /// It names a crawler whose claim can be proven (index into ``UserAgentCatalog/crawlers``).
    case crawler(Int)
    /// It says it is automated: a crawler-user-agents pattern or a library, tool or monitor marker
    /// matched; `name` is what matched (`python-requests`, `AhrefsBot`).
    case bot(name: String)
    /// Neither.
    case none
}

/// Classifies User-Agents by the known crawlers (``CrawlerOperator``) and the crawler-user-agents
/// patterns plus generic markers of libraries and tools, in one pass over the bytes.
///
/// Every pattern becomes literals (``UserAgentPattern``); all literals are indexed by their first two
/// bytes (ASCII case folded), so one pass over the User-Agent looks up a short bucket at each position
/// and compares only the literals that start there. The few patterns that need a regular expression
/// run it only when their required literal occurred. Recent answers are kept in a bounded cache.
public final class UserAgentCatalog: Sendable {
    public let crawlers: [CrawlerOperator]
    /// Patterns loaded (for reports).
    public let patternCount: Int
    /// Patterns that need a regular expression.
    public let regexPatternCount: Int

    /// Markers of automation beyond the data set, matched without regard to ASCII case, with the name
    /// reported. Generic words (`bot`, `crawler`, `spider`) rank below everything else.
    public static let genericMarkers: [(marker: String, name: String)] = [
        ("curl/", "curl"), ("wget/", "wget"), ("python-requests", "python-requests"), ("python-urllib", "python-urllib"),
        ("python-httpx", "python-httpx"), ("aiohttp", "aiohttp"), ("go-http-client", "Go-http-client"), ("okhttp", "okhttp"),
        ("java/", "Java"), ("apache-httpclient", "Apache-HttpClient"), ("libwww-perl", "libwww-perl"), ("node-fetch", "node-fetch"),
        ("axios/", "axios"), ("undici", "undici"), ("headlesschrome", "HeadlessChrome"), ("phantomjs", "PhantomJS"),
        ("scrapy", "Scrapy"), ("httpie", "HTTPie"), ("postmanruntime", "PostmanRuntime"), ("guzzlehttp", "GuzzleHttp"),
        ("libcurl", "libcurl"), ("reqwest", "reqwest"), ("httpclient", "HttpClient"), ("openai/python", "openai-python"),
        ("uptime", "uptime monitor"), ("monitoring", "monitor"), ("headless", "headless browser"),
    ]
    public static let genericWords: [String] = ["bot", "crawler", "spider", "scraper", "crawl"]

    private struct Entry: Sendable {
        enum Owner: Sendable {
            case crawler(Int)
            case literalPattern(Int)
            case regexPattern(Int)
            case marker(String)
            case word(String)
        }

        var bytes: [UInt8]
        var caseSensitive: Bool
        var anchoredStart: Bool
        var anchoredEnd: Bool
        var owner: Owner
        /// Lower ranks first: crawler claims, then patterns, then library markers, then words.
        var rank: Int
    }

    private let entries: [Entry]
    /// Bucket offsets by the folded first two bytes: entries `bucketStart[k]..<bucketStart[k+1]` of `order`.
    private let bucketStart: [Int32]
    private let order: [Int32]
    private let patternNames: [String]
    private let regexes: [RegexBox?]
    /// Regex patterns without a required literal: tried on every input that nothing else matched.
    private let unconditional: [Int]
    private let cache: Mutex<Cache>
    private let cacheCapacity: Int

    /// Entries of the cache kept at most; past it the cache starts again empty.
    public static let defaultCacheCapacity = 4_096
    /// Longer User-Agents are matched but not cached.
    public static let maximumCachedLength = 512

    private struct Cache: ~Copyable {
        var answers: [String: UserAgentClaim] = [:]
    }

    private final class RegexBox: @unchecked Sendable {
        // NSRegularExpression is immutable once made and safe to use from several threads.
        let regex: NSRegularExpression
        init(_ regex: NSRegularExpression) { self.regex = regex }
    }

    /// `patterns`: the crawler-user-agents entries (`pattern` of each; a pattern that no regular
    /// expression engine takes is left out). `genericMarkers`: whether the library and tool markers
    /// and the generic words count too.
    public init(
        crawlers: [CrawlerOperator], patterns: [String], genericMarkers: Bool = true, cacheCapacity: Int = UserAgentCatalog.defaultCacheCapacity
    ) {
        self.crawlers = crawlers
        self.cacheCapacity = max(0, cacheCapacity)
        var entries: [Entry] = []
        for (index, crawler) in crawlers.enumerated() {
            for token in crawler.tokens where token.utf8.count >= 2 {
                entries.append(Entry(bytes: Array(token.utf8), caseSensitive: false, anchoredStart: false, anchoredEnd: false, owner: .crawler(index), rank: 0))
            }
        }
        var names: [String] = []
        var regexes: [RegexBox?] = []
        var unconditional: [Int] = []
        var regexCount = 0
        for source in patterns {
            let pattern = UserAgentPattern(source)
            let index = names.count
            switch pattern.form {
            case .literals(let literals):
                names.append(String(decoding: literals.max(by: { $0.bytes.count < $1.bytes.count })?.bytes ?? [], as: UTF8.self))
                regexes.append(nil)
                for literal in literals {
                    entries.append(Entry(bytes: literal.bytes, caseSensitive: true, anchoredStart: literal.anchoredStart, anchoredEnd: literal.anchoredEnd, owner: .literalPattern(index), rank: 1))
                }
            case .regex(let required):
                guard let regex = try? NSRegularExpression(pattern: source) else { continue }
                regexCount += 1
                names.append(required.map { String(decoding: $0, as: UTF8.self) } ?? source)
                regexes.append(RegexBox(regex))
                if let required {
                    entries.append(Entry(bytes: required, caseSensitive: true, anchoredStart: false, anchoredEnd: false, owner: .regexPattern(index), rank: 1))
                } else {
                    unconditional.append(index)
                }
            }
        }
        for (marker, name) in genericMarkers ? Self.genericMarkers : [] {
            entries.append(Entry(bytes: Array(marker.utf8), caseSensitive: false, anchoredStart: false, anchoredEnd: false, owner: .marker(name), rank: 2))
        }
        for word in genericMarkers ? Self.genericWords : [] {
            entries.append(Entry(bytes: Array(word.utf8), caseSensitive: false, anchoredStart: false, anchoredEnd: false, owner: .word(word), rank: 3))
        }
        // Bucket by folded first two bytes; within a bucket, better ranks first.
        var counts = [Int32](repeating: 0, count: 65_537)
        for entry in entries { counts[Self.key(entry.bytes[0], entry.bytes[1]) + 1] += 1 }
        for k in 1..<counts.count { counts[k] += counts[k - 1] }
        var fill = counts
        var order = [Int32](repeating: 0, count: entries.count)
        let sorted = entries.indices.sorted { entries[$0].rank < entries[$1].rank }
        for index in sorted {
            let k = Self.key(entries[index].bytes[0], entries[index].bytes[1])
            order[Int(fill[k])] = Int32(index)
            fill[k] += 1
        }
        self.entries = entries
        self.bucketStart = counts
        self.order = order
        self.patternNames = names
        self.regexes = regexes
        self.unconditional = unconditional
        self.patternCount = names.count
        self.regexPatternCount = regexCount
        self.cache = Mutex(Cache())
    }

    /// The catalog of the shipped data (`data/crawlers`): `operators.json` (or `operatorsFile`) and
    /// `crawler-user-agents.json`.
    public static func load(directory: String, operatorsFile: String? = nil) throws(CrawlerOperator.LoadError) -> UserAgentCatalog {
        let operatorsPath = operatorsFile ?? directory + "/operators.json"
        guard let operatorsData = FileManager.default.contents(atPath: operatorsPath) else {
            throw .init("cannot read the crawler operators at \(operatorsPath)")
        }
        let crawlers = try CrawlerOperator.parse(operatorsData)
        let patternsPath = directory + "/crawler-user-agents.json"
        guard let patternsData = FileManager.default.contents(atPath: patternsPath) else {
            throw .init("cannot read the crawler patterns at \(patternsPath)")
        }
        return UserAgentCatalog(crawlers: crawlers, patterns: try parsePatterns(patternsData))
    }

    /// The `pattern` of each entry of a crawler-user-agents file.
    public static func parsePatterns(_ data: Data) throws(CrawlerOperator.LoadError) -> [String] {
        struct Item: Decodable { var pattern: String }
        do {
            return try JSONDecoder().decode([Item].self, from: data).map(\.pattern)
        } catch {
            throw .init("not a crawler-user-agents file: \(error)")
        }
    }

    /// Where the shipped data is: `data/crawlers` in the working directory when run from the
    /// project's root, else beside the executable's build folder.
    public static var shippedDirectory: String {
        let local = "data/crawlers"
        if FileManager.default.fileExists(atPath: local + "/operators.json") { return local }
        var root = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = root.appendingPathComponent(local).path
            if FileManager.default.fileExists(atPath: candidate + "/operators.json") { return candidate }
            root = root.deletingLastPathComponent()
        }
        return local
    }

    // MARK: Classifying

    /// What `userAgent` claims; cached for short User-Agents.
    public func classify(_ userAgent: String) -> UserAgentClaim {
        let cacheable = cacheCapacity > 0 && userAgent.utf8.count <= Self.maximumCachedLength
        if cacheable, let known = cache.withLock({ $0.answers[userAgent] }) { return known }
        var text = userAgent
        let claim = text.withUTF8 { classify(bytes: $0) }
        if cacheable {
            cache.withLock { cache in
                if cache.answers.count >= cacheCapacity { cache.answers.removeAll(keepingCapacity: true) }
                cache.answers[userAgent] = claim
            }
        }
        return claim
    }

    /// The same, uncached, on raw bytes (total on any bytes).
    public func classify(bytes: UnsafeBufferPointer<UInt8>) -> UserAgentClaim {
        let count = bytes.count
        var best: (rank: Int, claim: UserAgentClaim)? = nil
        var checkedRegex: Set<Int>? = nil
        if count >= 2 {
            for position in 0..<(count - 1) {
                let k = Self.key(bytes[position], bytes[position + 1])
                var slot = Int(bucketStart[k])
                let end = Int(bucketStart[k + 1])
                while slot < end {
                    let entry = entries[Int(order[slot])]
                    slot += 1
                    if let best, best.rank <= entry.rank { break }
                    guard matches(entry, at: position, in: bytes) else { continue }
                    switch entry.owner {
                    case .crawler(let index):
                        return .crawler(index)
                    case .literalPattern(let index):
                        best = (entry.rank, .bot(name: patternNames[index]))
                    case .regexPattern(let index):
                        if checkedRegex?.contains(index) == true { continue }
                        checkedRegex = (checkedRegex ?? []).union([index])
                        if regexMatches(index, bytes) { best = (entry.rank, .bot(name: patternNames[index])) }
                    case .marker(let name):
                        best = (entry.rank, .bot(name: name))
                    case .word(let word):
                        best = (entry.rank, .bot(name: word))
                    }
                    if best != nil { break }
                }
            }
        }
        if let best { return best.claim }
        for index in unconditional where regexMatches(index, bytes) {
            return .bot(name: patternNames[index])
        }
        return .none
    }

    private func matches(_ entry: Entry, at position: Int, in bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let length = entry.bytes.count
        guard position + length <= bytes.count else { return false }
        if entry.anchoredStart && position != 0 { return false }
        if entry.anchoredEnd && position + length != bytes.count { return false }
        return entry.bytes.withUnsafeBufferPointer { literal in
            if entry.caseSensitive {
                for offset in 0..<length where bytes[position + offset] != literal[offset] { return false }
            } else {
                for offset in 0..<length where Self.fold(bytes[position + offset]) != Self.fold(literal[offset]) { return false }
            }
            return true
        }
    }

    private func regexMatches(_ index: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let box = regexes[index] else { return false }
        let text = String(decoding: bytes, as: UTF8.self)
        return box.regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    @inline(__always)
    private static func fold(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    @inline(__always)
    private static func key(_ first: UInt8, _ second: UInt8) -> Int {
        Int(fold(first)) << 8 | Int(fold(second))
    }
}
