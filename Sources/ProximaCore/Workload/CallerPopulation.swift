/// A metro area callers send requests from, with its share of traffic and its time-zone offset
/// (so one trace replayed over several regions peaks at each region's own busy hours). A metro is a
/// caller population: it may carry a residency rule that every request from it must obey.
public struct Metro: Sendable, Equatable {
    public var name: String
    public var location: Coordinates
    public var utcOffsetHours: Double
    /// Relative share of callers (weights need not sum to 1).
    public var weight: Double
    /// The continent-scale region it belongs to (`europe`, `americas`, ...), so that a rule can name
    /// several metros at once.
    public var region: String?
    /// Where its callers' data may be processed; nil for no rule.
    public var residency: ResidencyRule?

    public init(
        name: String, location: Coordinates, utcOffsetHours: Double, weight: Double = 1, region: String? = nil,
        residency: ResidencyRule? = nil
    ) {
        self.name = name
        self.location = location
        self.utcOffsetHours = utcOffsetHours
        self.weight = weight
        self.region = region
        self.residency = residency
    }

    /// Large metros on every inhabited continent, a default population for demos and simulations.
    public static let world: [Metro] = [
        Metro(name: "new-york", location: .init(latitude: 40.71, longitude: -74.01), utcOffsetHours: -5, weight: 3, region: "americas"),
        Metro(name: "san-francisco", location: .init(latitude: 37.77, longitude: -122.42), utcOffsetHours: -8, weight: 2, region: "americas"),
        Metro(name: "sao-paulo", location: .init(latitude: -23.55, longitude: -46.63), utcOffsetHours: -3, weight: 1.5, region: "americas"),
        Metro(name: "london", location: .init(latitude: 51.51, longitude: -0.13), utcOffsetHours: 0, weight: 2, region: "europe"),
        Metro(name: "frankfurt", location: .init(latitude: 50.11, longitude: 8.68), utcOffsetHours: 1, weight: 2, region: "europe"),
        Metro(name: "lagos", location: .init(latitude: 6.52, longitude: 3.38), utcOffsetHours: 1, weight: 1, region: "africa"),
        Metro(name: "mumbai", location: .init(latitude: 19.08, longitude: 72.88), utcOffsetHours: 5.5, weight: 2, region: "asia"),
        Metro(name: "singapore", location: .init(latitude: 1.35, longitude: 103.82), utcOffsetHours: 8, weight: 1.5, region: "asia"),
        Metro(name: "tokyo", location: .init(latitude: 35.68, longitude: 139.69), utcOffsetHours: 9, weight: 2, region: "asia"),
        Metro(name: "sydney", location: .init(latitude: -33.87, longitude: 151.21), utcOffsetHours: 10, weight: 1, region: "oceania"),
    ]
}

/// Assigns each request of a workload to a caller metro, deterministically for a seed, in
/// proportion to the metros' weights.
public struct CallerAssignment: Sendable {
    public let metros: [Metro]
    private let cumulative: [Double]
    private var generator: SplitMix64

    public init(metros: [Metro], seed: UInt64) {
        precondition(!metros.isEmpty, "a caller population needs at least one metro")
        self.metros = metros
        var running = 0.0
        self.cumulative = metros.map {
            running += max(0, $0.weight)
            return running
        }
        self.generator = SplitMix64(seed: seed)
    }

    /// Index into `metros` of the caller of a request sent at `utcHour`, each metro weighted by its
    /// share and by how busy it is at that hour of its local day.
    public mutating func nextMetro(atUTCHour utcHour: Double) -> Int {
        var total = 0.0
        for metro in metros { total += max(0, metro.weight) * metro.activity(atUTCHour: utcHour) }
        guard total > 0 else { return nextMetro() }
        var draw = Double(generator.next() >> 11) / Double(1 << 53) * total
        for (index, metro) in metros.enumerated() {
            draw -= max(0, metro.weight) * metro.activity(atUTCHour: utcHour)
            if draw < 0 { return index }
        }
        return metros.count - 1
    }

    /// Index into `metros` of the next request's caller.
    public mutating func nextMetro() -> Int {
        let total = cumulative.last ?? 0
        guard total > 0 else { return Int(generator.next() % UInt64(metros.count)) }
        let draw = Double(generator.next() >> 11) / Double(1 << 53) * total
        var low = 0
        var high = cumulative.count - 1
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] > draw { high = middle } else { low = middle + 1 }
        }
        return low
    }
}

/// A small, fast, seedable pseudo-random generator (SplitMix64), so that workloads and simulations
/// are reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
