import ArgumentParser
import Foundation
import ProximaCache

struct CacheIndexBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-index",
        abstract: "Time the semantic cache's search (exact scan, HNSW) and the exact tier's lookup.",
        discussion: """
            Builds one partition per size from synthetic vectors (clustered: sqrt(n) centres with points \
            at cosine 0.8 from theirs; uniform: random directions), then times fresh queries and \
            near-duplicates of stored entries (cosine 0.95) with the exact scan and with the graph, \
            one query at a time, and reports p50/p99, the graph's recall@1 against the scan, build time \
            and memory per entry (RSS growth and the cache's own count). A sweep over small sizes finds \
            where the graph starts to beat the scan. Build in release. Results: docs/cache.md.
            """)

    @Option(help: "Vector dimension.")
    var dimension = 384

    @Option(help: "Partition sizes, comma-separated (empty for none).")
    var sizes = "1000,100000,1000000"

    @Option(help: "Data: clustered, uniform or both (comma-separated).")
    var distributions = "clustered,uniform"

    @Option(help: "Queries per kind (fresh, near-duplicate) and size.")
    var queries = 200

    @Option(help: "Sizes of the crossover sweep, comma-separated (empty to skip).")
    var crossover = "250,500,1000,2000,4000,8000,16000"

    @Option(help: "HNSW links per node (2m on layer 0).")
    var m = 16

    @Option(help: "HNSW candidates per insertion.")
    var efConstruction = 100

    @Option(help: "HNSW candidates per query.")
    var efSearch = 64

    @Option(help: "efConstruction for partitions of at least --large-from entries (default: the same).")
    var largeEfConstruction: Int?

    @Option(help: "Size from which --large-ef-construction applies.")
    var largeFrom = 500_000

    @Option(help: "Exact-tier sizes, comma-separated (empty to skip).")
    var exactEntries = "100000,1000000"

    @Option(help: "Partition size of the rebuild run: evict a quarter of a full partition and time inserts and lookups while its graph rebuilds (0 to skip).")
    var rebuild = 0

    @Option(help: "Seed of the synthetic data.")
    var seed: UInt64 = 1

    func run() async throws {
        var options = CacheIndexBenchmark.Options()
        options.dimension = dimension
        options.sizes = try Self.integers(sizes, "--sizes")
        options.distributions = try distributions.split(separator: ",").map {
            guard let d = CacheIndexBenchmark.Distribution(rawValue: String($0)) else {
                throw ValidationError("unknown distribution '\($0)' (clustered, uniform)")
            }
            return d
        }
        options.queries = queries
        options.crossoverSizes = try Self.integers(crossover, "--crossover")
        options.index = HNSWParameters(m: m, efConstruction: efConstruction, efSearch: efSearch)
        if let largeEfConstruction {
            options.largeIndex = HNSWParameters(m: m, efConstruction: largeEfConstruction, efSearch: efSearch)
        }
        options.largeFrom = largeFrom
        options.exactEntries = try Self.integers(exactEntries, "--exact-entries")
        options.seed = seed
        options.rebuildSize = rebuild
        let report = CacheIndexBenchmark(options: options).run { line in
            FileHandle.standardError.write(Data("\(line)\n".utf8))
        }
        print(report)
    }

    static func integers(_ text: String, _ name: String) throws -> [Int] {
        try text.split(separator: ",").map {
            guard let n = Int($0.trimmingCharacters(in: .whitespaces)), n > 0 else {
                throw ValidationError("\(name): '\($0)' is not a positive integer")
            }
            return n
        }
    }
}
