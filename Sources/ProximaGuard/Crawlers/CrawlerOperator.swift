import Foundation
import ProximaCore

/// A crawler whose claim in a User-Agent can be proven: the tokens that claim it, and the domains its
/// operator's reverse-DNS names live under (`data/crawlers/operators.json`). An empty `domains` list
/// means the operator publishes address ranges only (configured in `edge.crawlers.ranges_file`).
public struct CrawlerOperator: Codable, Sendable, Equatable {
    /// The crawler's name (`Googlebot`), also the key of its ranges in the ranges file.
    public var name: String
    /// Who runs it (`Google`); ranges listed under this name count for all its crawlers.
    public var `operator`: String
    /// Substrings of a User-Agent that claim this crawler, matched without regard to ASCII case.
    public var tokens: [String]
    /// Reverse-DNS domains: a PTR name must equal one or end in `.<domain>`.
    public var domains: [String]
    /// Where the operator documents the proof (for people; not used).
    public var source: String?

    public init(name: String, operator: String, tokens: [String], domains: [String], source: String? = nil) {
        self.name = name
        self.operator = `operator`
        self.tokens = tokens
        self.domains = domains
        self.source = source
    }

    /// Why a table of operators is refused.
    public struct LoadError: Error, CustomStringConvertible, Equatable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    private struct File: Codable {
        var crawlers: [CrawlerOperator]
    }

    /// Parses `{"crawlers": [{"name", "operator", "tokens", "domains"}, ...]}`; every crawler needs a
    /// name and at least one token of two bytes or more, and domains must be host names.
    public static func parse(_ data: Data) throws(LoadError) -> [CrawlerOperator] {
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw LoadError("not a table of crawler operators: \(error)")
        }
        for (index, crawler) in file.crawlers.enumerated() {
            guard !crawler.name.isEmpty else { throw LoadError("crawlers[\(index)] has no name") }
            guard !crawler.tokens.isEmpty, crawler.tokens.allSatisfy({ $0.utf8.count >= 2 && $0.utf8.count <= 128 }) else {
                throw LoadError("crawlers[\(index)] (\(crawler.name)) needs tokens of 2 to 128 bytes")
            }
            for domain in crawler.domains where !ReverseDNS.isHostName(domain) {
                throw LoadError("crawlers[\(index)] (\(crawler.name)): '\(domain.prefix(64))' is not a host name")
            }
        }
        return file.crawlers
    }
}

/// The operators' published address ranges (`edge.crawlers.ranges_file`): `{"<crawler or operator
/// name>": ["CIDR", ...]}`.
public struct CrawlerRanges: Sendable, Equatable {
    public var networks: [String: [IPNetwork]]

    public init(_ networks: [String: [IPNetwork]] = [:]) {
        self.networks = networks
    }

    /// Parses the file; a bad CIDR is named with its key and index.
    public static func parse(_ data: Data) throws(CrawlerOperator.LoadError) -> CrawlerRanges {
        let table: [String: [String]]
        do {
            table = try JSONDecoder().decode([String: [String]].self, from: data)
        } catch {
            throw .init("not a table of address ranges ({\"name\": [\"CIDR\", ...]}): \(error)")
        }
        var networks: [String: [IPNetwork]] = [:]
        for (name, texts) in table {
            var list: [IPNetwork] = []
            for (index, text) in texts.enumerated() {
                do {
                    list.append(try IPNetwork(parsing: text))
                } catch {
                    throw .init("\(name)[\(index)]: '\(text.prefix(64))' \(error)")
                }
            }
            networks[name] = list
        }
        return CrawlerRanges(networks)
    }

    /// Whether `address` is in the ranges listed under the crawler's name or its operator's.
    public func contains(_ address: IPAddress, for crawler: CrawlerOperator) -> Bool {
        if let list = networks[crawler.name], list.containsAddress(address) { return true }
        if let list = networks[crawler.operator], list.containsAddress(address) { return true }
        return false
    }

    /// Whether any ranges are listed for the crawler or its operator.
    public func hasRanges(for crawler: CrawlerOperator) -> Bool {
        !(networks[crawler.name] ?? []).isEmpty || !(networks[crawler.operator] ?? []).isEmpty
    }
}
