import Foundation

/// The lookup-cost benchmark of issue 14 (`proxima bench cache-index`): the semantic tier's search
/// (exact scan and HNSW graph) at given partition sizes, the graph's recall@1 against the scan, its
/// build time and memory per entry, the size where the graph starts to beat the scan, and the exact
/// tier's lookup. Synthetic vectors: a mixture of clusters (closer to real prompt embeddings) or
/// uniform on the sphere (the hardest case for a graph).
public struct CacheIndexBenchmark: Sendable {
    public enum Distribution: String, Sendable, CaseIterable {
        /// sqrt(n) random centres, each point at cosine about 0.8 from its centre.
        case clustered
        /// Uniform directions (normalised Gaussian vectors).
        case uniform
    }

    public struct Options: Sendable {
        public var dimension = 384
        public var sizes = [1_000, 100_000, 1_000_000]
        public var distributions: [Distribution] = [.clustered, .uniform]
        /// Queries per kind (fresh draws, near-duplicates of stored entries) and size.
        public var queries = 200
        /// Partition sizes of the crossover sweep (clustered data); empty to skip it.
        public var crossoverSizes = [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000]
        public var index = HNSWParameters()
        /// Construction parameters for sizes of at least `largeFrom` (nil: `index` everywhere).
        public var largeIndex: HNSWParameters?
        public var largeFrom = 500_000
        /// Entries of the exact-tier runs; empty to skip them.
        public var exactEntries = [100_000, 1_000_000]
        public var seed: UInt64 = 1
        /// Partition size of the rebuild run (0 to skip it): a full partition whose oldest quarter is
        /// evicted by fresh inserts, timing each insert and a lookup after it while the graph rebuilds.
        public var rebuildSize = 0

        public init() {}
    }

    struct Probe: CachePayload {
        var n: Int32
        var byteCount: Int { 0 }
    }

    public let options: Options

    public init(options: Options) {
        self.options = options
    }

    /// Runs every part and returns the report as Markdown; `progress` gets a line per step.
    public func run(progress: (String) -> Void) -> String {
        var report = "d = \(options.dimension); HNSW m = \(options.index.m), efConstruction = \(options.index.efConstruction), efSearch = \(options.index.efSearch)"
        if let large = options.largeIndex {
            report += " (from \(options.largeFrom) entries: m = \(large.m), efConstruction = \(large.efConstruction), efSearch = \(large.efSearch))"
        }
        report += ". Times are one query each, through `SemanticCache.nearest` (limit 1), excluding the embedding call.\n\n"
        if !options.crossoverSizes.isEmpty {
            report += crossover(progress: progress) + "\n"
        }
        if !options.sizes.isEmpty {
            report += "| data | entries | scan p50 | scan p99 | HNSW p50 | HNSW p99 | recall@1 fresh | recall@1 near-dup | build | build per entry | RSS per entry | counted per entry |\n"
            report += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            for distribution in options.distributions {
                for size in options.sizes {
                    report += partitionRow(distribution, size: size, progress: progress) + "\n"
                }
            }
            report += "\n"
        }
        if options.rebuildSize > 0 {
            report += rebuildRun(options.rebuildSize, progress: progress) + "\n"
        }
        if !options.exactEntries.isEmpty {
            report += "| exact tier entries | lookup hit p50 | hit p99 | miss p50 | miss p99 | insert mean | RSS per entry | counted per entry |\n"
            report += "|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            for entries in options.exactEntries {
                report += exactRow(entries, progress: progress) + "\n"
            }
        }
        return report
    }

    // MARK: data

    struct Generator {
        var random: SplitMix64
        let dimension: Int
        let centres: [[Float]]
        let spread: Double

        init(_ distribution: Distribution, size: Int, dimension: Int, seed: UInt64) {
            var random = SplitMix64(seed: seed)
            self.dimension = dimension
            // Noise of norm about 0.75 around a unit centre: cosine 1/sqrt(1 + 0.5625) = 0.8.
            spread = 0.75 / Double(dimension).squareRoot()
            if distribution == .clustered {
                var centres: [[Float]] = []
                let count = max(8, Int(Double(size).squareRoot()))
                for _ in 0..<count {
                    var centre = (0..<dimension).map { _ in Float(Self.gaussian(&random)) }
                    let norm = centre.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
                    for i in centre.indices { centre[i] = Float(Double(centre[i]) / norm) }
                    centres.append(centre)
                }
                self.centres = centres
            } else {
                centres = []
            }
            self.random = random
        }

        static func gaussian(_ random: inout SplitMix64) -> Double {
            let u = random.nextUnit()
            let v = random.nextUnit()
            return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
        }

        mutating func next() -> [Float] {
            if centres.isEmpty {
                return (0..<dimension).map { _ in Float(Self.gaussian(&random)) }
            }
            let centre = centres[Int(random.next() % UInt64(centres.count))]
            var vector = centre
            for i in 0..<dimension { vector[i] += Float(spread * Self.gaussian(&random)) }
            return vector
        }

        /// A paraphrase-like neighbour: the vector plus noise, at cosine about 0.95 from it.
        mutating func nearDuplicate(of vector: [Float]) -> [Float] {
            let norm = vector.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            let noise = 0.33 / Double(dimension).squareRoot()
            return vector.map { Float(Double($0) / norm + noise * Self.gaussian(&random)) }
        }
    }

    // MARK: parts

    private func parameters(for size: Int) -> HNSWParameters {
        size >= options.largeFrom ? (options.largeIndex ?? options.index) : options.index
    }

    private static let partition = CacheKey(high: 0xBE7C, low: 1)

    /// Builds one partition of the size (graph from the first entry), returning the cache, the build
    /// time, the RSS growth and a sample of stored vectors.
    private func build(_ distribution: Distribution, size: Int, samples: Int) -> (SemanticCache<Probe>, Double, Int, [[Float]], Generator) {
        var generator = Generator(distribution, size: size, dimension: options.dimension, seed: options.seed ^ UInt64(size))
        let limits = CacheLimits(maxEntries: size, maxBytes: Int.max / 2, timeToLive: 1e12)
        let before = Self.residentBytes()
        let cache = SemanticCache<Probe>(limits: limits, approximateAbove: 0, index: parameters(for: size))
        var stored: [[Float]] = []
        let every = max(1, size / max(samples, 1))
        let start = ContinuousClock.now
        for n in 0..<size {
            let vector = generator.next()
            if n % every == 0 && stored.count < samples { stored.append(vector) }
            _ = try? cache.insert(in: Self.partition, vector: vector, payload: Probe(n: Int32(n)), now: 0)
        }
        cache.waitForRebuilds()
        let seconds = (ContinuousClock.now - start).seconds
        let grown = Self.residentBytes() - before
        return (cache, seconds, grown, stored, generator)
    }

    /// p50 of scan and graph at each sweep size; the crossover is the smallest size from which the
    /// graph's p50 stays below the scan's.
    private func crossover(progress: (String) -> Void) -> String {
        var rows: [(size: Int, scan: Double, graph: Double, recall: Double)] = []
        for size in options.crossoverSizes {
            progress("crossover: \(size) entries")
            var (cache, _, _, _, generator) = build(.clustered, size: size, samples: 0)
            let queries = (0..<max(options.queries, 200)).map { _ in generator.next() }
            let timing = time(cache, queries)
            rows.append((size, Self.percentile(timing.scan, 0.5), Self.percentile(timing.graph, 0.5), timing.recall))
        }
        var crossover: Int?
        for (i, row) in rows.enumerated() where rows[i...].allSatisfy({ $0.graph < $0.scan }) {
            crossover = row.size
            break
        }
        var text = "Crossover sweep (clustered data, \(max(options.queries, 200)) fresh queries per size):\n\n"
        text += "| entries | scan p50 | HNSW p50 | HNSW recall@1 |\n|---:|---:|---:|---:|\n"
        for row in rows {
            text += "| \(row.size) | \(Self.micros(row.scan)) | \(Self.micros(row.graph)) | \(String(format: "%.3f", row.recall)) |\n"
        }
        text += "\nThe graph's p50 stays below the scan's from \(crossover.map(String.init) ?? "no size swept") entries on.\n"
        return text
    }

    private func partitionRow(_ distribution: Distribution, size: Int, progress: (String) -> Void) -> String {
        progress("\(distribution.rawValue): building \(size) entries")
        var (cache, seconds, grown, stored, generator) = build(distribution, size: size, samples: options.queries)
        progress("\(distribution.rawValue): built \(size) in \(String(format: "%.1f", seconds)) s; querying")
        let fresh = (0..<options.queries).map { _ in generator.next() }
        let nearDuplicates = stored.map { generator.nearDuplicate(of: $0) }
        let first = time(cache, fresh)
        let second = time(cache, nearDuplicates)
        let scan = first.scan + second.scan
        let graph = first.graph + second.graph
        let counted = Double(cache.statistics.bytes) / Double(size)
        withExtendedLifetime(cache) {}
        return "| \(distribution.rawValue) | \(size) | \(Self.micros(Self.percentile(scan, 0.5))) | \(Self.micros(Self.percentile(scan, 0.99)))"
            + " | \(Self.micros(Self.percentile(graph, 0.5))) | \(Self.micros(Self.percentile(graph, 0.99)))"
            + " | \(String(format: "%.3f", first.recall)) | \(String(format: "%.3f", second.recall))"
            + " | \(String(format: "%.1f", seconds)) s | \(Self.micros(seconds / Double(size)))"
            + " | \(grown / size) B | \(Int(counted)) B |"
    }

    /// Times each query with the scan and with the graph (alternating, so both see the same cache
    /// state), and counts how often the graph's best is the scan's best.
    private func time(_ cache: SemanticCache<Probe>, _ queries: [[Float]]) -> (scan: [Double], graph: [Double], recall: Double) {
        var scan: [Double] = []
        var graph: [Double] = []
        var agree = 0
        for query in queries {
            let t0 = ContinuousClock.now
            let exact = try? cache.nearest(in: Self.partition, to: query, minimumSimilarity: -1, limit: 1, now: 1, method: .exact)
            let t1 = ContinuousClock.now
            let approximate = try? cache.nearest(in: Self.partition, to: query, minimumSimilarity: -1, limit: 1, now: 1, method: .approximate)
            let t2 = ContinuousClock.now
            scan.append((t1 - t0).seconds)
            graph.append((t2 - t1).seconds)
            if exact?.first?.entry == approximate?.first?.entry { agree += 1 }
        }
        return (scan, graph, Double(agree) / Double(max(queries.count, 1)))
    }

    /// Fills one partition to `size` entries (the limit), then inserts fresh entries, each evicting
    /// the oldest, until a quarter of the partition was deleted and the rebuild it triggers is over;
    /// each insert and a lookup after it are timed alone. The longest call is an upper bound on the
    /// longest time one of them held the partition's lock (it includes waiting for that lock).
    private func rebuildRun(_ size: Int, progress: (String) -> Void) -> String {
        var generator = Generator(.clustered, size: size, dimension: options.dimension, seed: options.seed ^ 0x4EB1)
        let limits = CacheLimits(maxEntries: size, maxBytes: Int.max / 2, timeToLive: 1e12)
        let cache = SemanticCache<Probe>(limits: limits, index: options.index)
        progress("rebuild: filling \(size) entries")
        for n in 0..<size {
            _ = try? cache.insert(in: Self.partition, vector: generator.next(), payload: Probe(n: Int32(n)), now: 0)
        }
        cache.waitForRebuilds()
        let swappedBefore = cache.rebuildsSwapped
        progress("rebuild: evicting")
        var inserts: [Double] = []
        var lookups: [Double] = []
        var n = size
        let start = ContinuousClock.now
        // A quarter of the stored rows marked (a third of the live ones) triggers the rebuild; go on
        // while it runs, then a little more.
        var after = 0
        while after < 200 {
            let vector = generator.next()
            let t0 = ContinuousClock.now
            _ = try? cache.insert(in: Self.partition, vector: vector, payload: Probe(n: Int32(truncatingIfNeeded: n)), now: 0)
            let t1 = ContinuousClock.now
            _ = try? cache.nearest(in: Self.partition, to: generator.nearDuplicate(of: vector), minimumSimilarity: 0.5, limit: 1, now: 1)
            let t2 = ContinuousClock.now
            inserts.append((t1 - t0).seconds)
            lookups.append((t2 - t1).seconds)
            n += 1
            // Under sustained evictions one rebuild can follow another: stop after the first swap.
            if n - size > size / 3 + 100 && cache.rebuildsSwapped > swappedBefore { after += 1 }
        }
        let seconds = (ContinuousClock.now - start).seconds
        cache.waitForRebuilds()
        return "Rebuild run: \(size) entries (clustered), \(inserts.count) evicting inserts over \(String(format: "%.1f", seconds)) s, each followed by a lookup. "
            + "Insert p50 \(Self.micros(Self.percentile(inserts, 0.5))), p99 \(Self.micros(Self.percentile(inserts, 0.99))), max \(Self.micros(inserts.max() ?? 0)); "
            + "lookup p50 \(Self.micros(Self.percentile(lookups, 0.5))), p99 \(Self.micros(Self.percentile(lookups, 0.99))), max \(Self.micros(lookups.max() ?? 0)); "
            + "longest lock hold by the rebuild itself (snapshot, catch-up, swap): \(Self.micros(cache.longestRebuildLockHold)).\n"
    }

    private func exactRow(_ entries: Int, progress: (String) -> Void) -> String {
        progress("exact tier: \(entries) entries")
        var random = SplitMix64(seed: options.seed)
        let before = Self.residentBytes()
        let cache = ExactCache<Probe>(limits: CacheLimits(maxEntries: entries, maxBytes: Int.max / 2, timeToLive: 1e12))
        var keys: [CacheKey] = []
        keys.reserveCapacity(entries)
        for _ in 0..<entries { keys.append(CacheKey(high: random.next(), low: random.next())) }
        let keyBytes = Self.residentBytes() - before
        let start = ContinuousClock.now
        for (n, key) in keys.enumerated() { cache.insert(key, Probe(n: Int32(truncatingIfNeeded: n)), now: 0) }
        let insertMean = (ContinuousClock.now - start).seconds / Double(entries)
        let grown = Self.residentBytes() - before - keyBytes
        let lookups = 200_000
        var hit: [Double] = []
        var miss: [Double] = []
        hit.reserveCapacity(lookups)
        miss.reserveCapacity(lookups)
        var found = 0
        for _ in 0..<lookups {
            let key = keys[Int(random.next() % UInt64(entries))]
            let t0 = ContinuousClock.now
            if cache.lookup(key, now: 1) != nil { found += 1 }
            let t1 = ContinuousClock.now
            let absent = CacheKey(high: random.next(), low: random.next())
            let t2 = ContinuousClock.now
            if cache.lookup(absent, now: 1) != nil { found += 1 }
            let t3 = ContinuousClock.now
            hit.append((t1 - t0).seconds)
            miss.append((t3 - t2).seconds)
        }
        precondition(found == lookups, "every stored key must be found")
        let counted = cache.statistics.bytes / entries
        return "| \(entries) | \(Self.micros(Self.percentile(hit, 0.5))) | \(Self.micros(Self.percentile(hit, 0.99)))"
            + " | \(Self.micros(Self.percentile(miss, 0.5))) | \(Self.micros(Self.percentile(miss, 0.99)))"
            + " | \(Self.micros(insertMean)) | \(grown / entries) B | \(counted) B |"
    }

    // MARK: helpers

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }

    static func micros(_ seconds: Double) -> String {
        let us = seconds * 1e6
        if us >= 10_000 { return String(format: "%.0f ms", us / 1_000) }
        if us >= 1_000 { return String(format: "%.1f ms", us / 1_000) }
        if us >= 10 { return String(format: "%.0f µs", us) }
        return String(format: "%.2f µs", us)
    }

    /// This process's resident memory (Linux /proc/self/statm; 0 elsewhere).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

extension Duration {
    fileprivate var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
