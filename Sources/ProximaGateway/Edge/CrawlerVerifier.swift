import Foundation
import Logging
import NIOCore
import NIOPosix
import ProximaCore
import ProximaGuard
import Synchronization

/// Crawlers and declared bots by user agent; a claimed crawler is proven by forward-confirmed
/// reverse DNS (or the operator's published ranges), asked of the configured DNS servers without
/// blocking an event loop, once per address per TTL.
final class CrawlerVerifier: Sendable {
    let settings: CrawlerSettings
    let catalog: UserAgentCatalog
    let ranges: CrawlerRanges
    let resolver: DNSClient
    private let logger: Logger
    private let cache: Mutex<VerdictCache>

    /// A proven or refuted claim is kept at least this long (a record TTL of 0 would otherwise ask
    /// DNS on every request), and at most `max_ttl_seconds`.
    static let minimumTTLSeconds = 5.0

    /// `catalog` defaults to the shipped data (`data/crawlers`, or `operators_file`); `ranges_file` is
    /// read here; DNS servers are `dns_servers`, else the nameservers of `/etc/resolv.conf`.
    init(
        settings: CrawlerSettings, logger: Logger, catalog: UserAgentCatalog? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, resolvConf: String = "/etc/resolv.conf"
    ) throws {
        self.settings = settings
        self.logger = logger
        if let catalog {
            self.catalog = catalog
        } else if settings.operatorsFile == nil, !FileManager.default.fileExists(atPath: UserAgentCatalog.shippedDirectory + "/operators.json") {
            // Without the shipped data (a binary copied alone) bots are still told by the library and
            // tool markers; no crawler claim can be recognized, so none is proven.
            logger.warning("edge.crawlers: the crawler data (data/crawlers) is not here; only generic bot markers are known")
            self.catalog = UserAgentCatalog(crawlers: [], patterns: [])
        } else {
            do {
                self.catalog = try UserAgentCatalog.load(directory: UserAgentCatalog.shippedDirectory, operatorsFile: settings.operatorsFile)
            } catch {
                throw CrawlerVerifierError(description: "edge.crawlers: \(error)")
            }
        }
        if let path = settings.rangesFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CrawlerVerifierError(description: "edge.crawlers.ranges_file: cannot read \(path)")
            }
            do {
                ranges = try CrawlerRanges.parse(data)
            } catch {
                throw CrawlerVerifierError(description: "edge.crawlers.ranges_file \(path): \(error)")
            }
        } else {
            ranges = CrawlerRanges()
        }
        var servers = settings.dnsServers.compactMap(DNSServerAddress.init(parsing:))
        if servers.isEmpty, let text = try? String(contentsOfFile: resolvConf, encoding: .utf8) {
            servers = DNSClient.nameservers(resolvConf: text)
        }
        if servers.isEmpty { logger.warning("edge.crawlers: no DNS servers configured or in \(resolvConf); crawler claims stay unproven") }
        resolver = DNSClient(servers: servers, timeoutSeconds: settings.dnsTimeoutSeconds, group: group)
        cache = Mutex(VerdictCache(maxVerdicts: settings.maxCachedAddresses, maxFailures: settings.maxFailedAddresses))
    }

    /// nil when the user agent neither names a known crawler nor declares a bot; else
    /// `verified_crawler` (name: the crawler), `impersonator` (a proof that fails: no PTR, a PTR
    /// outside the operator's domains, a forward lookup that does not return the address) or
    /// `declared_bot` (a bot that names itself, or a crawler whose lookup timed out or failed:
    /// reason `dns_timeout`, `dns_failure`).
    func classify(userAgent: String?, peer: IPAddress?, now: Double) async -> CallerClassification? {
        guard settings.enabled, let userAgent, !userAgent.isEmpty else { return nil }
        switch catalog.classify(userAgent) {
        case .none:
            return nil
        case .bot(let name):
            return CallerClassification(.declaredBot, name: name)
        case .crawler(let index):
            let crawler = catalog.crawlers[index]
            guard let peer else { return CallerClassification(.declaredBot, name: crawler.name, reason: "no_address") }
            switch await verdict(for: peer, crawler: index, now: now) {
            case .verified: return CallerClassification(.verifiedCrawler, name: crawler.name)
            case .refuted(let reason): return CallerClassification(.impersonator, name: crawler.name, reason: reason)
            case .unproven(let reason): return CallerClassification(.declaredBot, name: crawler.name, reason: reason)
            }
        }
    }

    /// The verdict on `address` claiming crawler `index`: from the ranges, the cache, a lookup already
    /// running for the same address and crawler, or a new lookup.
    func verdict(for address: IPAddress, crawler index: Int, now: Double) async -> ReverseDNS.Verdict {
        let crawler = catalog.crawlers[index]
        let pointer: String
        switch ReverseDNS.start(address: address, crawler: crawler, ranges: ranges) {
        case .decided(let verdict): return verdict
        case .askPointer(let name): pointer = name
        }
        let key = VerdictCache.Key(address: address, crawler: index)
        enum Step {
            case known(ReverseDNS.Verdict)
            case wait(Task<ReverseDNS.Verdict, Never>)
        }
        let step: Step = cache.withLock { state in
            if let verdict = state.verdict(for: key, now: now) { return .known(verdict) }
            if let running = state.flights[key] { return .wait(running) }
            // One lookup per address and claim at a time: later callers wait on this one.
            let task = Task { [self] in
                let (verdict, ttl) = await lookUp(address: address, crawler: crawler, pointer: pointer)
                cache.withLock { $0.finish(key, verdict: verdict, ttl: ttl, now: now) }
                return verdict
            }
            state.flights[key] = task
            return .wait(task)
        }
        switch step {
        case .known(let verdict): return verdict
        case .wait(let task): return await task.value
        }
    }

    /// PTR, then the forward lookup; the verdict with how long it may be kept.
    private func lookUp(address: IPAddress, crawler: CrawlerOperator, pointer: String) async -> (ReverseDNS.Verdict, Double) {
        let reverse = await resolver.lookup(pointer, type: .ptr)
        let verdict: ReverseDNS.Verdict
        var ttl = Self.ttl(of: reverse)
        switch ReverseDNS.afterPointer(reverse, address: address, crawler: crawler) {
        case .decided(let decided):
            verdict = decided
        case .askForward(let name, let type):
            let forward = await resolver.lookup(name, type: type)
            ttl = min(ttl, Self.ttl(of: forward))
            verdict = ReverseDNS.afterForward(forward, address: address)
        }
        if case .unproven = verdict {
            return (verdict, settings.failureTTLSeconds)
        }
        return (verdict, min(max(ttl, Self.minimumTTLSeconds), settings.maxTTLSeconds))
    }

    private static func ttl(of answer: ReverseDNS.Answer) -> Double {
        switch answer {
        case .names(_, let ttl), .addresses(_, let ttl), .noSuchName(let ttl): Double(ttl)
        case .failure, .timeout: 0
        }
    }
}

struct CrawlerVerifierError: Error, CustomStringConvertible {
    var description: String
}

/// Verdicts per (address, claimed crawler) until their TTL, failures until `failure_ttl_seconds`,
/// each table bounded (oldest inserted dropped first), and the lookups running now.
struct VerdictCache: ~Copyable {
    struct Key: Hashable, Sendable {
        var address: IPAddress
        var crawler: Int
    }

    private struct Entry {
        var verdict: ReverseDNS.Verdict
        var expires: Double
        var generation: UInt64
    }

    /// A table bounded by count, dropping the oldest inserted entries first.
    private struct Table {
        let limit: Int
        var entries: [Key: Entry] = [:]
        var order = CircularBuffer<(Key, UInt64)>()

        init(limit: Int) { self.limit = max(1, limit) }

        mutating func insert(_ key: Key, _ entry: Entry) {
            entries[key] = entry
            order.append((key, entry.generation))
            while entries.count > limit, let (oldest, generation) = order.popFirst() {
                if entries[oldest]?.generation == generation { entries[oldest] = nil }
            }
            // Replaced entries leave stale keys behind; rebuild when they outnumber the live ones.
            if order.count > 2 * limit + 16 {
                order = CircularBuffer(entries.sorted { $0.value.generation < $1.value.generation }.map { ($0.key, $0.value.generation) })
            }
        }
    }

    private var verdicts: Table
    private var failures: Table
    private var generation: UInt64 = 0
    var flights: [Key: Task<ReverseDNS.Verdict, Never>] = [:]

    init(maxVerdicts: Int, maxFailures: Int) {
        verdicts = Table(limit: maxVerdicts)
        failures = Table(limit: maxFailures)
    }

    var count: Int { verdicts.entries.count + failures.entries.count }

    func verdict(for key: Key, now: Double) -> ReverseDNS.Verdict? {
        if let entry = verdicts.entries[key], entry.expires > now { return entry.verdict }
        if let entry = failures.entries[key], entry.expires > now { return entry.verdict }
        return nil
    }

    mutating func finish(_ key: Key, verdict: ReverseDNS.Verdict, ttl: Double, now: Double) {
        flights[key] = nil
        generation &+= 1
        let entry = Entry(verdict: verdict, expires: now + ttl, generation: generation)
        if case .unproven = verdict {
            verdicts.entries[key] = nil
            if ttl > 0 { failures.insert(key, entry) }
        } else {
            failures.entries[key] = nil
            verdicts.insert(key, entry)
        }
    }
}
