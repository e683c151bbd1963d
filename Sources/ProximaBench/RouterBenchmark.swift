import Foundation
import ProximaCore

/// Measures how long `FleetRouter.decide` takes over synthetic fleets of growing size, per policy:
/// every endpoint serves the requested model, so every one is filtered, rated and scored.
///
/// Each cell (fleet size × policy) warms up, then times decisions for a fixed wall time with
/// `ContinuousClock`, varying the request (caller location, prompt size, prefix blocks) and the
/// entropy on every call. Decisions slower than `batchBelowNanoseconds` (by default 100 times the
/// cost of reading the clock twice, so that reading it would add more than 1%) are timed one by
/// one; faster ones (the small fleets) are timed in batches, and each batch's mean counts as one
/// sample of the percentiles, which smooths their tails.
public enum RouterBenchmark {
    public struct Settings: Sendable, Codable, Equatable {
        /// Fleet sizes: endpoints, all serving the requested model.
        public var candidates: [Int]
        /// Policy names (built-in kinds: balanced, slo, least-inflight, round-robin, ...).
        public var policies: [String]
        /// Measured wall time per cell, after the warm-up.
        public var secondsPerCell: Double
        /// Candidates returned in order (the gateway asks for 4).
        public var limit: Int
        /// Decisions faster than this (from the warm-up) are timed in batches; nil: 100 times the
        /// measured cost of a clock read pair.
        public var batchBelowNanoseconds: Double?
        /// Wall time a batch aims for.
        public var batchTargetNanoseconds: Double
        /// Samples taken even when the time is up (keeps very short runs meaningful).
        public var minimumSamples: Int
        public var seed: UInt64

        public init(
            candidates: [Int] = [10, 100, 1_000, 10_000],
            policies: [String] = ["balanced", "slo", "least-inflight", "round-robin"],
            secondsPerCell: Double = 0.3, limit: Int = 4, batchBelowNanoseconds: Double? = nil,
            batchTargetNanoseconds: Double = 20_000, minimumSamples: Int = 50, seed: UInt64 = 1
        ) {
            self.candidates = candidates
            self.policies = policies
            self.secondsPerCell = secondsPerCell
            self.limit = limit
            self.batchBelowNanoseconds = batchBelowNanoseconds
            self.batchTargetNanoseconds = batchTargetNanoseconds
            self.minimumSamples = minimumSamples
            self.seed = seed
        }
    }

    /// The figures of one cell.
    public struct Row: Sendable, Codable, Equatable {
        public var candidates: Int
        public var sites: Int
        public var policy: String
        /// Decisions timed (warm-up excluded).
        public var decisions: Int
        /// Decisions per timed sample: 1 when each call was timed alone.
        public var batchSize: Int
        public var samples: Int
        public var meanMicroseconds: Double
        public var p50Microseconds: Double
        public var p99Microseconds: Double
        public var maxMicroseconds: Double
        /// Decisions that returned no candidate (0 expected: nothing is excluded).
        public var decisionsWithoutCandidate: Int
        /// Smallest and largest number of candidates a decision returned.
        public var minCandidatesReturned: Int
        public var maxCandidatesReturned: Int
        /// Smallest and largest number of endpoints a decision rated (all of them, expected).
        public var minEvaluated: Int
        public var maxEvaluated: Int
        /// How many different endpoints were picked first over the run.
        public var distinctFirstChoices: Int
    }

    public struct Result: Sendable, Codable {
        public var settings: Settings
        /// Cost of one `ContinuousClock.now` pair, measured before the run.
        public var clockOverheadNanoseconds: Double
        /// Decisions faster than this were timed in batches.
        public var batchBelowNanoseconds: Double
        public var rows: [Row]

        /// candidates × policy → mean, p50, p99 in microseconds.
        public func markdownTable() -> String {
            var lines = [
                "| candidates | sites | policy | decisions | batch | mean µs | p50 µs | p99 µs |",
                "|---:|---:|---|---:|---:|---:|---:|---:|",
            ]
            for row in rows {
                lines.append(
                    "| \(RouterBenchmark.grouped(row.candidates)) | \(row.sites) | \(row.policy) | \(RouterBenchmark.grouped(row.decisions)) | \(row.batchSize) "
                        + "| \(RouterBenchmark.micro(row.meanMicroseconds)) | \(RouterBenchmark.micro(row.p50Microseconds)) | \(RouterBenchmark.micro(row.p99Microseconds)) |")
            }
            var notes = [
                "limit \(settings.limit), \(settings.secondsPerCell) s per cell; clock read pair \(String(format: "%.0f", clockOverheadNanoseconds)) ns"
            ]
            if rows.contains(where: { $0.batchSize > 1 }) {
                notes.append(
                    "batch > 1: decisions under \(RouterBenchmark.micro(batchBelowNanoseconds / 1_000)) µs timed in batches of that many, "
                        + "each batch's mean one percentile sample")
            }
            return lines.joined(separator: "\n") + "\n\n" + notes.joined(separator: "; ") + "\n"
        }

        public func json() throws -> Data {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return try encoder.encode(self)
        }
    }

    /// Microseconds with three significant figures or so.
    static func micro(_ value: Double) -> String {
        value < 10 ? String(format: "%.2f", value) : value < 100 ? String(format: "%.1f", value) : String(format: "%.0f", value)
    }

    /// An integer with thousands separators: 10,000.
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var result = ""
        for (offset, digit) in digits.enumerated() {
            if offset > 0, (digits.count - offset) % 3 == 0 { result.append(",") }
            result.append(digit)
        }
        return value < 0 ? "-" + result : result
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The model every synthetic endpoint serves.
    public static let modelName = "m"
    static let profiles: [(name: String, pricePerGPUHour: Double)] = [
        ("H100-8B", 3.5), ("L40S-8B", 1.4), ("RTX-PRO-6000-8B", 1.6), ("H200-8B", 5.9),
    ]
    /// Prefix families the telemetry and requests share, each a chain of block hashes.
    static let prefixFamilies = 8
    static let blocksPerFamily = 8
    /// Time of the decisions; telemetry is recorded at 0, so engine reads are fresh (stale after 10 s).
    static let decisionTime = 1.0

    // MARK: running

    /// Runs every cell in order: sizes outer, policies inner.
    public static func run(_ settings: Settings) throws -> Result {
        let policies = try settings.policies.map(policy(named:))
        guard !settings.candidates.isEmpty, settings.candidates.allSatisfy({ $0 > 0 }) else {
            throw Failure(description: "candidate counts must be positive, got \(settings.candidates)")
        }
        let router = FleetRouter()
        let clockPair = clockOverhead()
        let batchBelow = settings.batchBelowNanoseconds ?? 100 * clockPair
        var rows: [Row] = []
        for size in settings.candidates {
            let fleet = try makeFleet(endpoints: size, seed: settings.seed)
            let telemetry = makeTelemetry(fleet: fleet, seed: settings.seed)
            let requests = makeRequests(fleet: fleet, count: 64, seed: settings.seed)
            for policy in policies {
                rows.append(
                    measure(router: router, policy: policy, fleet: fleet, telemetry: telemetry, requests: requests, settings: settings,
                        batchBelowNanoseconds: batchBelow))
            }
        }
        return Result(settings: settings, clockOverheadNanoseconds: clockPair, batchBelowNanoseconds: batchBelow, rows: rows)
    }

    static func policy(named name: String) throws -> RoutingPolicy {
        guard let kind = PolicyKind(rawValue: name) else {
            throw Failure(description: "unknown policy '\(name)' (known: \(PolicyKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return RoutingPolicy(name: name, kind: kind)
    }

    /// Times one cell.
    static func measure(
        router: FleetRouter, policy: RoutingPolicy, fleet: Fleet, telemetry: FleetTelemetry, requests: [RouteRequest],
        settings: Settings, batchBelowNanoseconds: Double
    ) -> Row {
        let clock = ContinuousClock()
        let size = fleet.endpoints.count
        let nameSeed = policy.name.utf8.reduce(UInt64(0)) { $0 &* 31 &+ UInt64($1) }
        var entropy = SplitMix64(seed: settings.seed &+ UInt64(size) &* 0x9E37_79B9 &+ nameSeed)
        var requestIndex = 0
        var tally = Tally(endpoints: size)

        // Warm-up: caches, branch predictors, the allocator's free lists; also sizes the batch.
        let warmupSeconds = min(0.1, max(0.005, settings.secondsPerCell * 0.25))
        // The batch follows the warm-up's median, which a burst of noise on a shared machine moves
        // less than the mean.
        let warmupStart = clock.now
        var warmup: [Double] = []
        while warmup.count < 10 || (clock.now - warmupStart).seconds < warmupSeconds {
            let start = clock.now
            let decision = router.decide(
                requests[requestIndex], policy: policy, fleet: fleet, telemetry: telemetry, now: decisionTime,
                entropy: entropy.next(), limit: settings.limit)
            tally.add(decision)
            warmup.append((clock.now - start).seconds * 1e9)
            requestIndex = (requestIndex + 1) % requests.count
        }
        warmup.sort()
        let typical = percentile(warmup, 0.5)
        let batch =
            typical >= batchBelowNanoseconds
            ? 1 : max(1, min(256, Int((settings.batchTargetNanoseconds / max(typical, 1)).rounded(.up))))

        tally = Tally(endpoints: size)
        var samples: [Double] = []  // nanoseconds per decision
        samples.reserveCapacity(min(10_000_000, Int(settings.secondsPerCell * 1e9 / max(typical * Double(batch), 1)) + 16))
        var measured: Duration = .zero
        let budget = Duration.seconds(clampedSeconds: settings.secondsPerCell)
        while measured < budget || samples.count < settings.minimumSamples {
            let start = clock.now
            for _ in 0..<batch {
                let decision = router.decide(
                    requests[requestIndex], policy: policy, fleet: fleet, telemetry: telemetry, now: decisionTime,
                    entropy: entropy.next(), limit: settings.limit)
                tally.add(decision)
                requestIndex &+= 1
                if requestIndex == requests.count { requestIndex = 0 }
            }
            let elapsed = clock.now - start
            measured += elapsed
            samples.append(elapsed.seconds * 1e9 / Double(batch))
        }

        samples.sort()
        let decisions = samples.count * batch
        let mean = measured.seconds * 1e9 / Double(decisions)
        return Row(
            candidates: size, sites: fleet.siteNames.count, policy: policy.name, decisions: decisions, batchSize: batch,
            samples: samples.count, meanMicroseconds: mean / 1_000, p50Microseconds: percentile(samples, 0.50) / 1_000,
            p99Microseconds: percentile(samples, 0.99) / 1_000, maxMicroseconds: (samples.last ?? 0) / 1_000,
            decisionsWithoutCandidate: tally.withoutCandidate, minCandidatesReturned: tally.minReturned,
            maxCandidatesReturned: tally.maxReturned, minEvaluated: tally.minEvaluated, maxEvaluated: tally.maxEvaluated,
            distinctFirstChoices: tally.chosen.reduce(0) { $0 + ($1 ? 1 : 0) })
    }

    /// Nearest-rank percentile of sorted values.
    static func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    /// What the decisions returned, kept cheap enough to sit inside a timed batch.
    struct Tally {
        var withoutCandidate = 0
        var minReturned = Int.max
        var maxReturned = 0
        var minEvaluated = Int.max
        var maxEvaluated = 0
        var chosen: [Bool]

        init(endpoints: Int) { chosen = [Bool](repeating: false, count: endpoints) }

        @inline(__always)
        mutating func add(_ decision: RouteDecision) {
            let returned = decision.candidates.count
            if returned == 0 { withoutCandidate += 1 } else { chosen[decision.candidates[0].endpoint] = true }
            minReturned = min(minReturned, returned)
            maxReturned = max(maxReturned, returned)
            minEvaluated = min(minEvaluated, decision.evaluatedCount)
            maxEvaluated = max(maxEvaluated, decision.evaluatedCount)
        }
    }

    /// Nanoseconds for reading the clock twice, the floor under any single timed sample: the best of
    /// 50 rounds of 2,000 pairs, so that being descheduled during one round does not count.
    static func clockOverhead() -> Double {
        let clock = ContinuousClock()
        var best = Double.infinity
        var sink: Duration = .zero
        for _ in 0..<50 {
            let start = clock.now
            for _ in 0..<2_000 {
                let a = clock.now
                sink += clock.now - a
            }
            best = min(best, (clock.now - start).seconds * 1e9 / 2_000)
        }
        return sink >= .zero ? best : 0
    }

    // MARK: the synthetic fleet

    /// `endpoints` vLLM endpoints over `sites` (default min(endpoints, 50)) sites spread around the
    /// world, GPU profiles mixed over four 8B deployments, each priced per GPU-hour around the
    /// profile's rental price.
    public static func makeFleet(endpoints: Int, sites: Int? = nil, seed: UInt64 = 1) throws -> Fleet {
        var random = SplitMix64(seed: seed ^ 0xF1EE7)
        let siteCount = max(1, min(endpoints, sites ?? 50))
        var configuration = ProximaConfiguration()
        configuration.sites = (0..<siteCount).map { index in
            // Inhabited latitudes, any longitude.
            SiteSettings(
                name: String(format: "site-%02d", index), latitude: -45 + 105 * unit(&random),
                longitude: -180 + 360 * unit(&random))
        }
        configuration.endpoints = (0..<endpoints).map { index in
            let profile = profiles[Int(random.next() % UInt64(profiles.count))]
            return EndpointSettings(
                name: "endpoint-\(index)",
                url: "http://10.\(index / 65_536 % 256).\(index / 256 % 256).\(index % 256):\(8000 + index % 8)/v1",
                site: configuration.sites[index % siteCount].name, engine: .vllm,
                models: [ServedModelSettings(name: modelName, upstream: "meta-llama/Llama-3.1-8B-Instruct")],
                gpu: GPUSettings(profile: profile.name),
                pricing: PricingSettings(gpuHour: profile.pricePerGPUHour * (0.7 + 0.6 * unit(&random))))
        }
        configuration.models = [ModelSettings(name: modelName, contextLength: 32_768)]
        do {
            return try Fleet(configuration: configuration)
        } catch {
            throw Failure(description: "synthetic fleet rejected: \(error)")
        }
    }

    /// Varied load: 0-23 requests in flight (one endpoint in ten near 200), a share of them past
    /// their first token, engine metrics for about 60% (so both load sources are used), power
    /// readings for some, TTFT corrections for some, and prompt prefixes sent to about a quarter.
    public static func makeTelemetry(fleet: Fleet, seed: UInt64 = 1) -> FleetTelemetry {
        var random = SplitMix64(seed: seed ^ 0x7E1E)
        var telemetry = FleetTelemetry(endpointCount: fleet.endpoints.count)
        for endpoint in fleet.endpoints.indices {
            var inFlight = Int(random.next() % 24)
            if random.next() % 10 == 0 { inFlight += 180 + Int(random.next() % 40) }
            for _ in 0..<inFlight { _ = telemetry.begin(endpoint, at: 0) }
            if random.next() % 4 == 0 {
                let family = Int(random.next() % UInt64(prefixFamilies))
                let depth = 1 + Int(random.next() % UInt64(blocksPerFamily))
                if telemetry.begin(endpoint, prefixBlocks: Array(prefixBlocks(family: family).prefix(depth)), at: 0) {
                    inFlight += 1
                }
            }
            let started = Int(Double(inFlight) * unit(&random))
            for _ in 0..<started { telemetry.firstToken(endpoint, ttft: nil, predicted: nil, at: 0) }
            if started < inFlight, random.next() % 5 == 0 {
                // A TTFT observation against a prediction: the residual path of the router.
                telemetry.firstToken(endpoint, ttft: 0.2 + unit(&random), predicted: 0.4, at: 0)
            }
            if random.next() % 10 < 6 {
                let slots = 256.0
                let running = min(slots, Double(inFlight) * (1 + unit(&random)))
                let waiting = running >= slots ? Double(random.next() % 50) : 0
                let power = random.next() % 2 == 0 ? 200 + 400 * unit(&random) : nil
                telemetry.recordEngineRead(
                    endpoint,
                    snapshot: EngineLoadSnapshot(
                        running: running, waiting: waiting, kvCacheUsage: 0.05 + 0.9 * unit(&random), powerWatts: power),
                    at: 0)
            }
        }
        return telemetry
    }

    /// Requests from the world's metros, 1,000-4,000 prompt tokens, half with a `max_tokens`, half
    /// with prompt-prefix blocks from the families the telemetry knows.
    public static func makeRequests(fleet: Fleet, count: Int, seed: UInt64 = 1) -> [RouteRequest] {
        var random = SplitMix64(seed: seed ^ 0x12E0)
        guard let model = fleet.model(named: modelName) else { return [] }
        return (0..<count).map { index in
            let promptTokens = 1_000 + Int(random.next() % 3_001)
            var blocks: [UInt64] = []
            if index % 2 == 0 {
                let family = Int(random.next() % UInt64(prefixFamilies))
                blocks = Array(prefixBlocks(family: family).prefix(min(blocksPerFamily, promptTokens / 512)))
            }
            return RouteRequest(
                model: model, stream: true, promptTokens: promptTokens,
                maxOutputTokens: index % 4 < 2 ? 256 + Int(random.next() % 769) : nil, prefixBlocks: blocks,
                prefixBlockTokens: 512, clientLocation: Metro.world[index % Metro.world.count].location)
        }
    }

    /// The chained block hashes of a prefix family.
    static func prefixBlocks(family: Int) -> [UInt64] {
        var hash = SplitMix64(seed: 0xB10C_0000 &+ UInt64(family))
        return (0..<blocksPerFamily).map { _ in hash.next() }
    }

    static func unit(_ random: inout SplitMix64) -> Double {
        Double(random.next() >> 11) / Double(1 << 53)
    }
}
