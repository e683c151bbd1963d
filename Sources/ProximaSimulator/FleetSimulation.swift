import ProximaCore

/// One request of a simulated workload: when and where it arises and how large it is.
public struct SimulatedRequest: Sendable, Equatable {
    public var arrival: Double
    public var location: Coordinates
    /// Index of the caller population (metro) it came from, for per-region reports.
    public var metro: Int
    public var promptTokens: Int
    public var outputTokens: Int
    /// Prefix block ids (shared prefixes share leading ids), used both by the router and the engines.
    public var prefixBlocks: [UInt64]

    public init(
        arrival: Double, location: Coordinates, metro: Int = 0, promptTokens: Int, outputTokens: Int, prefixBlocks: [UInt64] = []
    ) {
        self.arrival = arrival
        self.location = location
        self.metro = metro
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
        self.prefixBlocks = prefixBlocks
    }
}

/// A site or endpoint out of service for a while: either it fails (connections refused, running
/// requests lost) or it is drained (a capacity change: it takes no new requests and finishes the
/// running ones). A drain from 0 to T models capacity added at T; a drain from T on, capacity removed.
public struct Outage: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case failure
        case drain
    }

    public var endpoints: [String]
    public var start: Double
    public var end: Double
    public var kind: Kind

    public init(endpoints: [String], start: Double, end: Double, kind: Kind = .failure) {
        self.endpoints = endpoints
        self.start = start
        self.end = end
        self.kind = kind
    }

    /// An outage written as `NAME@START-END` (seconds of simulated time; `END` may be left out for
    /// "until the end"), where `NAME` is an endpoint or a site, whose endpoints all go down.
    public init(parsing text: String, in fleet: Fleet, kind: Kind = .failure) throws(OutageSyntaxError) {
        let parts = text.split(separator: "@", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty else { throw OutageSyntaxError(text: text, reason: "expected NAME@START-END") }
        let name = String(parts[0])
        let times = parts[1].split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard let start = Double(times[0]), start >= 0 else { throw OutageSyntaxError(text: text, reason: "the start is not a number of seconds") }
        var end = Double.infinity
        if times.count == 2, !times[1].isEmpty {
            guard let value = Double(times[1]), value > start else {
                throw OutageSyntaxError(text: text, reason: "the end must be a number of seconds after the start")
            }
            end = value
        }
        let endpoints: [String]
        if fleet.endpoints.contains(where: { $0.name == name }) {
            endpoints = [name]
        } else {
            endpoints = fleet.endpoints.filter { $0.siteName == name }.map(\.name)
        }
        guard !endpoints.isEmpty else { throw OutageSyntaxError(text: text, reason: "'\(name)' is neither an endpoint nor a site") }
        self.init(endpoints: endpoints, start: start, end: end, kind: kind)
    }
}

/// Why an outage could not be read.
public struct OutageSyntaxError: Error, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "outage '\(text)': \(reason)" }
}

/// How a simulation runs: the policy, the gateway's retry budget, how often it reads engine metrics,
/// the random seed, outages and capacity changes, and whether the router sees prompt prefixes.
public struct SimulationSettings: Sendable {
    public var policy: RoutingPolicy
    public var maxAttempts: Int
    public var scrapeIntervalSeconds: Double
    public var telemetry: TelemetrySettings
    public var breaker: BreakerSettings
    public var seed: UInt64
    public var outages: [Outage]
    /// Whether routing requests carry the prompts' prefix blocks; without them the router can neither
    /// prefer the endpoint that holds a prefix nor shorten its predicted prefill (engines still cache).
    public var routerSeesPrefixes: Bool
    /// Residency rule per caller population, indexed like `SimulatedRequest.metro` (nil or missing:
    /// no rule). Every request of a population with a rule routes with a `ResidencyConstraint`, retries
    /// included; one no allowed endpoint can take fails as `residency` rather than going elsewhere.
    public var residency: [ResidencyRule?]

    public init(
        policy: RoutingPolicy, maxAttempts: Int = 3, scrapeIntervalSeconds: Double = 2, telemetry: TelemetrySettings = .init(),
        breaker: BreakerSettings = .init(), seed: UInt64 = 1, outages: [Outage] = [], routerSeesPrefixes: Bool = true,
        residency: [ResidencyRule?] = []
    ) {
        self.policy = policy
        self.maxAttempts = maxAttempts
        self.scrapeIntervalSeconds = scrapeIntervalSeconds
        self.telemetry = telemetry
        self.breaker = breaker
        self.seed = seed
        self.outages = outages
        self.routerSeesPrefixes = routerSeesPrefixes
        self.residency = residency
    }
}

/// One endpoint's work over a run: how busy its GPUs were, what they drew and what its prefix cache saved.
public struct EndpointUsage: Sendable, Equatable {
    public var busySeconds = 0.0
    public var energyJoules = 0.0
    public var promptTokens = 0
    public var cachedPromptTokens = 0
    public var generatedTokens = 0

    public init() {}

    mutating func add(_ engine: EngineModel) {
        busySeconds += engine.busySeconds
        energyJoules += engine.energyJoules
        promptTokens += engine.promptTokensProcessed + engine.cachedPromptTokens
        cachedPromptTokens += engine.cachedPromptTokens
        generatedTokens += engine.generatedTokens
    }
}

/// What happened to one simulated request.
public struct SimulatedOutcome: Sendable, Equatable {
    public var endpoint: Int?
    /// Seconds from arrival until the caller sees the first token (network back to the caller included).
    public var timeToFirstToken: Double?
    public var endToEnd: Double?
    public var outputTokens: Int
    public var cachedPromptTokens: Int
    public var attempts: Int
    /// Round trip between the caller and the serving endpoint: the network's share of the TTFT.
    public var roundTripSeconds: Double?
    /// The serving engine's prefill time for the uncached prompt when it has nothing else to do: the
    /// TTFT less this and the round trip is time spent waiting behind other work.
    public var unloadedPrefillSeconds: Double?
    /// The TTFT the router predicted for the serving endpoint when it chose it.
    public var predictedTTFTSeconds: Double?
    /// Why it failed, nil on success: `no_endpoint`, `refused`, `aborted`, or `residency` when no
    /// endpoint its population's residency rule allows could take it (the gateway's 503 `residency`).
    public var error: String?
}

/// A discrete-event simulation, in virtual time, of callers, the network and a fleet: every request is
/// placed by the same `FleetRouter` the gateway runs, fed by the same `FleetTelemetry` (optimistic
/// in-flight counts, engine metrics read on an interval, observed TTFT, breakers), and served by an
/// `EngineModel` per endpoint. The network between a caller and a site is the router's round-trip
/// model, half each way, as the emulator applies it.
public struct FleetSimulation {
    public let fleet: Fleet
    public let settings: SimulationSettings
    public let requests: [SimulatedRequest]
    private let router: FleetRouter

    private enum Event {
        case arrival(Int)
        case reach(request: Int, endpoint: Int)
        case refused(request: Int, endpoint: Int)
        case wake(endpoint: Int)
        case scrape
        case outage(endpoint: Int, down: Bool)
        case drain(endpoint: Int, drained: Bool)
    }

    /// Per request: its route and where it stands.
    private struct Flight {
        var candidates: [RouteCandidate] = []
        var attempt = 0
        var sentAt = 0.0
        var endpoint: Int?
        var firstTokenAt: Double?
    }

    private var queue = EventQueue<Event>()
    private var engines: [EngineModel]
    private var down: [Bool]
    private var onEndpoint: [Set<Int>]
    private var lastWake: [Double]
    private var telemetry: FleetTelemetry
    /// Work of engines replaced after a failure.
    private var retiredUsage: [EndpointUsage]
    private var random: SplitMix64
    private var flights: [Flight]
    public private(set) var outcomes: [SimulatedOutcome]
    public private(set) var now = 0.0
    /// Routing decisions made, including retries; each comes from `FleetRouter`.
    public private(set) var decisions = 0
    /// Requests sent to each endpoint (first attempts and retries), per caller population: where
    /// every population's requests were placed, whether or not they were answered there.
    public private(set) var sends: [[Int]]
    /// Per population, the route constraints its requests carry (built once, shared by every request).
    private let populationConstraints: [[any RouteConstraint]]

    /// Endpoints without a catalog GPU profile run as `defaultProfile`.
    public init(
        fleet: Fleet, requests: [SimulatedRequest], settings: SimulationSettings,
        defaultProfile: GPUProfile = GPUProfile.named("H100-8B")!
    ) {
        self.fleet = fleet
        self.settings = settings
        self.requests = requests.sorted { $0.arrival < $1.arrival }
        self.router = FleetRouter(defaultLocation: .init(latitude: 0, longitude: 0))
        self.engines = FleetCapacity.profiles(of: fleet, defaultProfile: defaultProfile).map { EngineModel(profile: $0) }
        self.down = Array(repeating: false, count: fleet.endpoints.count)
        self.retiredUsage = Array(repeating: EndpointUsage(), count: fleet.endpoints.count)
        self.onEndpoint = Array(repeating: [], count: fleet.endpoints.count)
        self.lastWake = Array(repeating: -1, count: fleet.endpoints.count)
        self.telemetry = FleetTelemetry(endpointCount: fleet.endpoints.count, breaker: settings.breaker, settings: settings.telemetry)
        self.random = SplitMix64(seed: settings.seed)
        self.flights = Array(repeating: Flight(), count: requests.count)
        let populations = max(settings.residency.count, (requests.map(\.metro).max() ?? -1) + 1)
        self.sends = Array(repeating: Array(repeating: 0, count: fleet.endpoints.count), count: populations)
        self.populationConstraints = (0..<populations).map { population in
            guard population < settings.residency.count, let rule = settings.residency[population] else { return [] }
            return [ResidencyConstraint(rule: rule)]
        }
        self.outcomes = Array(
            repeating: SimulatedOutcome(
                endpoint: nil, timeToFirstToken: nil, endToEnd: nil, outputTokens: 0, cachedPromptTokens: 0, attempts: 0, roundTripSeconds: nil,
                unloadedPrefillSeconds: nil, predictedTTFTSeconds: nil),
            count: requests.count)
    }

    /// The simulated time by which every request has ended, and each endpoint's work until then.
    public var usage: [EndpointUsage] {
        engines.indices.map { endpoint in
            var usage = retiredUsage[endpoint]
            usage.add(engines[endpoint])
            return usage
        }
    }

    /// Runs until every request has finished or failed, calling `progress` now and then with the
    /// share of requests that have ended.
    public mutating func run(progress: ((Double) -> Void)? = nil) {
        // Fleet events first: at equal times they apply before the arrivals.
        for outage in settings.outages {
            for name in outage.endpoints {
                guard let endpoint = fleet.endpoints.firstIndex(where: { $0.name == name }) else { continue }
                switch outage.kind {
                case .failure:
                    queue.schedule(.outage(endpoint: endpoint, down: true), at: outage.start)
                    if outage.end.isFinite { queue.schedule(.outage(endpoint: endpoint, down: false), at: outage.end) }
                case .drain:
                    queue.schedule(.drain(endpoint: endpoint, drained: true), at: outage.start)
                    if outage.end.isFinite { queue.schedule(.drain(endpoint: endpoint, drained: false), at: outage.end) }
                }
            }
        }
        for index in requests.indices { queue.schedule(.arrival(index), at: requests[index].arrival) }
        if settings.scrapeIntervalSeconds > 0, !requests.isEmpty { queue.schedule(.scrape, at: 0) }
        var open = requests.count
        var events = 0
        while open > 0, let (time, event) = queue.next() {
            now = time
            events &+= 1
            if let progress, events & 0xFFFF == 0 { progress(Double(finished) / Double(requests.count)) }
            switch event {
            case .arrival(let request):
                route(request)
            case .reach(let request, let endpoint):
                reach(request, endpoint)
            case .refused(let request, let endpoint):
                telemetry.end(endpoint, outcome: .failure, sawFirstToken: false, prefillTokens: prefillTokens(of: request), at: now)
                retry(request, error: "refused")
            case .wake(let endpoint):
                deliver(engines[endpoint].advance(to: now), endpoint: endpoint)
                scheduleWake(endpoint)
            case .scrape:
                scrape()
                if open > 0 { queue.schedule(.scrape, at: now + settings.scrapeIntervalSeconds) }
            case .outage(let endpoint, let isDown):
                setDown(endpoint, isDown)
            case .drain(let endpoint, let drained):
                telemetry.setDrained(endpoint, drained)
            }
            open = requests.count - finished
        }
        // Engines idle since their last request still count their idle power until the end.
        for endpoint in engines.indices { _ = engines[endpoint].advance(to: now) }
        progress?(1)
    }

    private var finished = 0

    // MARK: requests

    private mutating func route(_ index: Int) {
        let request = requests[index]
        let constraints = request.metro >= 0 && request.metro < populationConstraints.count ? populationConstraints[request.metro] : []
        let routeRequest = RouteRequest(
            model: fleet.models[0], stream: true, promptTokens: request.promptTokens, maxOutputTokens: request.outputTokens,
            prefixBlocks: settings.routerSeesPrefixes ? request.prefixBlocks : [], prefixBlockTokens: 512, clientLocation: request.location,
            constraints: constraints)
        decisions += 1
        let decision = router.decide(
            routeRequest, policy: settings.policy, fleet: fleet, telemetry: telemetry, now: now, entropy: random.next(),
            limit: settings.maxAttempts)
        // Nothing the rule allows can serve: refused, as the gateway answers 503 `residency`, never
        // placed outside the rule. Retries below only walk this decision's candidates, all inside it.
        if decision.candidates.isEmpty, !constraints.isEmpty, decision.exclusions.contains(where: { $0.kind == .residency }) {
            fail(index, "residency")
            return
        }
        flights[index].candidates = decision.candidates
        flights[index].attempt = 0
        send(index)
    }

    /// Sends a request to its current candidate, or fails it when none is left.
    private mutating func send(_ index: Int) {
        var flight = flights[index]
        while flight.attempt < flight.candidates.count {
            let candidate = flight.candidates[flight.attempt]
            let blocks = settings.routerSeesPrefixes ? requests[index].prefixBlocks : []
            if telemetry.begin(candidate.endpoint, prefixBlocks: blocks, prefillTokens: Self.prefillTokens(candidate, requests[index]), at: now) {
                flight.sentAt = now
                flight.endpoint = candidate.endpoint
                flights[index] = flight
                outcomes[index].attempts += 1
                sends[requests[index].metro][candidate.endpoint] += 1
                queue.schedule(.reach(request: index, endpoint: candidate.endpoint), at: now + candidate.evaluation.rttSeconds / 2)
                return
            }
            flight.attempt += 1
        }
        flights[index] = flight
        fail(index, outcomes[index].attempts == 0 ? "no_endpoint" : outcomes[index].error ?? "no_endpoint")
    }

    private mutating func reach(_ index: Int, _ endpoint: Int) {
        let rtt = flights[index].candidates[flights[index].attempt].evaluation.rttSeconds
        if down[endpoint] {
            queue.schedule(.refused(request: index, endpoint: endpoint), at: now + rtt / 2)
            return
        }
        let request = requests[index]
        onEndpoint[endpoint].insert(index)
        engines[endpoint].submit(
            EngineRequest(
                id: index, promptTokens: request.promptTokens, outputTokens: request.outputTokens, prefixBlockIDs: request.prefixBlocks,
                arrival: request.arrival), at: now)
        scheduleWake(endpoint)
    }

    /// Tries the next candidate, if the retry budget allows.
    private mutating func retry(_ index: Int, error: String) {
        outcomes[index].error = error
        flights[index].attempt += 1
        if outcomes[index].attempts >= settings.maxAttempts {
            fail(index, error)
            return
        }
        send(index)
    }

    /// A request's share of its endpoint's prefill queue, as the gateway counts it.
    private static func prefillTokens(_ candidate: RouteCandidate, _ request: SimulatedRequest) -> Int {
        max(0, request.promptTokens - candidate.evaluation.cachedPromptTokens)
    }

    private func prefillTokens(of index: Int) -> Int {
        let flight = flights[index]
        return Self.prefillTokens(flight.candidates[flight.attempt], requests[index])
    }

    private mutating func fail(_ index: Int, _ error: String) {
        guard outcomes[index].endToEnd == nil else { return }
        outcomes[index].error = error
        outcomes[index].endpoint = nil
        flights[index] = Flight()  // its route is no longer needed: memory stays bounded by what is in flight
        finished += 1
    }

    // MARK: engines

    private mutating func deliver(_ events: [EngineEvent], endpoint: Int) {
        for event in events {
            let index = event.id
            guard onEndpoint[endpoint].contains(index) else { continue }
            let flight = flights[index]
            let candidate = flight.candidates[flight.attempt]
            let oneWay = candidate.evaluation.rttSeconds / 2
            switch event {
            case .firstToken(_, let at):
                flights[index].firstTokenAt = at
                outcomes[index].timeToFirstToken = at + oneWay - requests[index].arrival
                let evaluation = candidate.evaluation
                telemetry.firstToken(
                    endpoint, ttft: at + oneWay - flight.sentAt,
                    predicted: evaluation.uncorrectedTTFTSeconds(includingRoundTrip: true),
                    prefillTokens: Self.prefillTokens(candidate, requests[index]), at: now)
            case .token:
                break
            case .finished(_, let at, _, let outputTokens, let cachedPromptTokens):
                onEndpoint[endpoint].remove(index)
                let first = flights[index].firstTokenAt ?? at
                let pace = outputTokens > 1 ? (at - first) / Double(outputTokens - 1) : nil
                telemetry.end(endpoint, outcome: .success, sawFirstToken: true, timePerOutputToken: pace, at: now)
                outcomes[index].endToEnd = at + oneWay - requests[index].arrival
                outcomes[index].outputTokens = outputTokens
                outcomes[index].cachedPromptTokens = cachedPromptTokens
                outcomes[index].endpoint = endpoint
                outcomes[index].roundTripSeconds = 2 * oneWay
                outcomes[index].predictedTTFTSeconds = candidate.evaluation.predictedTTFTSeconds
                outcomes[index].unloadedPrefillSeconds =
                    Double(max(1, requests[index].promptTokens - cachedPromptTokens)) / engines[endpoint].profile.prefillTokensPerSecond
                outcomes[index].error = nil
                flights[index] = Flight()
                finished += 1
            }
        }
    }

    private mutating func scheduleWake(_ endpoint: Int) {
        guard let next = engines[endpoint].nextEventTime(), next != lastWake[endpoint] else { return }
        lastWake[endpoint] = next
        queue.schedule(.wake(endpoint: endpoint), at: next)
    }

    /// Engine metrics and health, as the gateway's monitor reads them.
    private mutating func scrape() {
        for endpoint in engines.indices {
            if down[endpoint] {
                telemetry.recordCheck(endpoint, succeeded: false, at: now)
                continue
            }
            let engine = engines[endpoint]
            telemetry.recordEngineRead(
                endpoint,
                snapshot: EngineLoadSnapshot(
                    running: Double(engine.runningCount), waiting: Double(engine.waitingCount), kvCacheUsage: engine.kvUsage,
                    powerWatts: engine.powerWatts(at: now)),
                at: now)
            telemetry.recordCheck(endpoint, succeeded: true, at: now)
        }
    }

    /// An endpoint goes down (its requests are lost: those without a first token are retried, the
    /// others end broken) or comes back with an empty engine.
    private mutating func setDown(_ endpoint: Int, _ isDown: Bool) {
        down[endpoint] = isDown
        guard isDown else { return }
        let lost = onEndpoint[endpoint].sorted()
        onEndpoint[endpoint] = []
        _ = engines[endpoint].advance(to: now)
        retiredUsage[endpoint].add(engines[endpoint])
        engines[endpoint] = EngineModel(profile: engines[endpoint].profile, startTime: now)
        lastWake[endpoint] = -1
        for index in lost {
            let sawFirst = flights[index].firstTokenAt != nil
            telemetry.end(endpoint, outcome: .failure, sawFirstToken: sawFirst, prefillTokens: prefillTokens(of: index), at: now)
            if sawFirst {
                fail(index, "aborted")
            } else {
                retry(index, error: "aborted")
            }
        }
    }
}
