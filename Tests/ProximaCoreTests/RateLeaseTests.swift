import Foundation
import Testing
@testable import ProximaCore

/// Several gateway replicas sharing one limit through a shared limiter, in virtual time.
struct LeasedCluster {
    var shared: RateLimiter
    var replicas: [RateLease]
    /// Calls to the shared limiter: grants and returns.
    var roundTrips = 0

    init(perMinute: Int, replicas: Int, settings: LeaseSettings = .init(), at: Double = 0) {
        shared = RateLimiter(perMinute: perMinute, at: at)
        self.replicas = Array(repeating: RateLease(perMinute: perMinute, settings: settings, at: at), count: replicas)
    }

    /// Replica `index` admits `cost` units at `time`, leasing from the shared limiter if needed.
    mutating func admit(replica index: Int, cost: Int, at time: Double) -> Bool {
        giveBackExpired(at: time)
        switch replicas[index].admit(cost: cost, replicas: replicas.count, at: time) {
        case .admitted:
            return true
        case .refused:
            return false
        case .needsLease(let request):
            roundTrips += 1
            let grant = shared.grant(requested: request.units, minimum: request.minimum, at: time)
            return replicas[index].receive(grant, cost: cost, at: time)
        }
    }

    /// Each replica's timer: expired leases give their unused units back.
    mutating func giveBackExpired(at time: Double) {
        for index in replicas.indices {
            guard let back = replicas[index].takeReturn(at: time) else { continue }
            roundTrips += 1
            shared.refund(units: back.units, of: back.charge, at: time)
        }
    }
}

/// Seeded arrival patterns, in seconds.
enum ArrivalPattern: CaseIterable {
    /// Poisson arrivals at 1.5 times the limit: the limit binds all the time.
    case saturating
    /// A new Poisson rate every minute, between 0.1 and 3 times the limit.
    case changingEveryMinute
    /// Bursts at four times the limit for 5 to 30 s, separated by 5 to 60 s of silence.
    case onOff

    func arrivals(perMinute: Int, minutes: Int, seed: UInt64) -> [Double] {
        var random = SplitMix64(seed: seed)
        func uniform() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
        func exponential(rate: Double) -> Double { -log(1 - uniform()) / rate }
        let limitRate = Double(perMinute) / 60
        let end = Double(minutes) * 60
        var times: [Double] = []
        var time = 0.0
        switch self {
        case .saturating:
            while true {
                time += exponential(rate: 1.5 * limitRate)
                if time >= end { break }
                times.append(time)
            }
        case .changingEveryMinute:
            for minute in 0..<minutes {
                let rate = limitRate * (0.1 + 2.9 * uniform())
                time = Double(minute) * 60
                while true {
                    time += exponential(rate: rate)
                    if time >= Double(minute + 1) * 60 { break }
                    times.append(time)
                }
            }
        case .onOff:
            while time < end {
                let burstEnd = time + 5 + 25 * uniform()
                while true {
                    time += exponential(rate: 4 * limitRate)
                    if time >= min(burstEnd, end) { break }
                    times.append(time)
                }
                time = burstEnd + 5 + 55 * uniform()
            }
        }
        return times
    }
}

@Suite struct RateLeaseTests {
    @Test func theCapSharesTheToleranceAmongReplicas() {
        #expect(RateLease.leaseCap(perMinute: 1_200, replicas: 3, tolerance: 0.05) == 10)
        #expect(RateLease.leaseCap(perMinute: 60_000, replicas: 3, tolerance: 0.05) == 500)
        #expect(RateLease.leaseCap(perMinute: 10, replicas: 3, tolerance: 0.05) == 1)
        #expect(RateLease.leaseCap(perMinute: 1_200, replicas: 0, tolerance: .nan) == 1)
        #expect(RateLease.leaseCap(perMinute: Int.max, replicas: Int.max, tolerance: 0.5) > 0)
    }

    @Test func aLeaseCoversTheObservedDemandWithinTheCap() {
        let settings = LeaseSettings()
        #expect(RateLease.leaseSize(perMinute: 60_000, replicas: 3, demandPerSecond: 120, settings: settings, needed: 1) == 120)
        #expect(RateLease.leaseSize(perMinute: 60_000, replicas: 3, demandPerSecond: 5_000, settings: settings, needed: 1) == 500)
        #expect(RateLease.leaseSize(perMinute: 60_000, replicas: 3, demandPerSecond: 0, settings: settings, needed: 1) == 1)
        // A large token estimate leases what it needs, beyond the cap.
        #expect(RateLease.leaseSize(perMinute: 60_000, replicas: 3, demandPerSecond: 10, settings: settings, needed: 4_000) == 4_000)
        #expect(RateLease.leaseSize(perMinute: 60_000, replicas: 3, demandPerSecond: .nan, settings: settings, needed: .infinity) > 0)
    }

    @Test func aReplicaAdmitsLocallyUntilItsLeaseRunsOut() {
        var cluster = LeasedCluster(perMinute: 60_000, replicas: 3)
        var admitted = 0
        for step in 0..<2_000 where cluster.admit(replica: 0, cost: 1, at: Double(step) / 200) { admitted += 1 }
        #expect(admitted == 2_000)
        // 200 per second: leases grow with the observed demand, up to the cap of 500.
        #expect(cluster.roundTrips < 100)
        #expect(cluster.replicas[0].balance <= 500)
    }

    @Test func anExpiredLeaseGivesBackItsUnusedUnits() throws {
        let settings = LeaseSettings(tolerance: 0.05, leaseSeconds: 1, holdSeconds: 5)
        var lease = RateLease(perMinute: 6_000, settings: settings, at: 0)
        var shared = RateLimiter(perMinute: 6_000, at: 0)
        guard case .needsLease(let request) = lease.admit(cost: 1, replicas: 1, at: 0) else {
            Issue.record("a fresh lease has no units")
            return
        }
        let grant = shared.grant(requested: 100, minimum: request.minimum, at: 0)
        let admitted = lease.receive(grant, cost: 1, at: 0)
        #expect(admitted)
        #expect(lease.balance == 99)
        #expect(lease.takeReturn(at: 4.9) == nil)
        let returned = lease.takeReturn(at: 5)
        let back = try #require(returned)
        #expect(back.units == 99)
        #expect(lease.balance == 0)
        // The shared limiter refilled 500 units in 5 s, which covered the 100 charged: all gone.
        #expect(shared.refund(units: back.units, of: back.charge, at: 5) == 0)
        // Given back early, while still in the bucket, the units come back.
        let second = shared.grant(requested: 6_000, minimum: 1, at: 5)
        #expect(second.units == 6_000)
        #expect(shared.refund(units: 2_000, of: try #require(second.charge), at: 6) == 2_000)
    }

    @Test func unitsOfAnExpiredLeaseCannotBeUsed() {
        var lease = RateLease(perMinute: 600, settings: LeaseSettings(tolerance: 0.5, leaseSeconds: 1, holdSeconds: 2), at: 0)
        var shared = RateLimiter(perMinute: 600, at: 0)
        if case .needsLease = lease.admit(cost: 1, replicas: 1, at: 0) {
            let admitted = lease.receive(shared.grant(requested: 50, minimum: 1, at: 0), cost: 1, at: 0)
            #expect(admitted)
        }
        #expect(lease.admit(cost: 1, replicas: 1, at: 1) == .admitted)
        guard case .needsLease = lease.admit(cost: 1, replicas: 1, at: 2) else {
            Issue.record("an expired lease admitted a request")
            return
        }
        #expect(lease.takeReturn(at: 2)?.units == 48)
    }

    @Test func settlingMovesTheBalanceAndDebtIsLeasedFirst() {
        var lease = RateLease(perMinute: 100_000, settings: LeaseSettings(), at: 0)
        var shared = RateLimiter(perMinute: 100_000, at: 0)
        if case .needsLease(let request) = lease.admit(cost: 1_000, replicas: 2, at: 0) {
            #expect(request.minimum == 1_000)
            let admitted = lease.receive(shared.grant(requested: request.units, minimum: request.minimum, at: 0), cost: 1_000, at: 0)
            #expect(admitted)
        }
        lease.settle(estimated: 1_000, actual: 3_000)
        #expect(lease.balance < 0)
        let debt = -lease.balance
        guard case .needsLease(let next) = lease.admit(cost: 10, replicas: 2, at: 0.1) else {
            Issue.record("a lease in debt admitted a request")
            return
        }
        #expect(Double(next.minimum) == debt + 10)
    }

    @Test func theHeadersCountTheSharedLimitAndTheReplicasOwnUnits() {
        var cluster = LeasedCluster(perMinute: 6_000, replicas: 3)
        let admitted = cluster.admit(replica: 1, cost: 1, at: 0)
        #expect(admitted)
        let snapshot = cluster.replicas[1].snapshot(at: 0)
        #expect(snapshot.limit == 6_000)
        #expect(snapshot.remaining == 5_999)
        #expect(RateLease(perMinute: 6_000, settings: .init(), at: 0).snapshot(at: 0).remaining == 6_000)
    }

    /// Three replicas behind a round-robin caller, limit N = 1,200 per minute, tolerance 5%: in
    /// every minute the replicas admit within 5% of N of what a single limiter would have admitted
    /// from the same arrivals, and under sustained overload within N ± 5% once the full bucket a
    /// new limit starts with is spent (arriving at 1.5 N, after two minutes).
    @Test(arguments: [(ArrivalPattern.saturating, 1 as UInt64), (.saturating, 2), (.changingEveryMinute, 3), (.changingEveryMinute, 4), (.onOff, 5), (.onOff, 6)])
    func threeReplicasAdmitWithinFivePercentOfOneLimiter(pattern: ArrivalPattern, seed: UInt64) {
        let perMinute = 1_200
        let minutes = 30
        var cluster = LeasedCluster(perMinute: perMinute, replicas: 3)
        var single = RateLimiter(perMinute: perMinute, at: 0)
        var leased = Array(repeating: 0, count: minutes)
        var ideal = Array(repeating: 0, count: minutes)
        for (index, time) in pattern.arrivals(perMinute: perMinute, minutes: minutes, seed: seed).enumerated() {
            let minute = Int(time / 60)
            if cluster.admit(replica: index % 3, cost: 1, at: time) { leased[minute] += 1 }
            if single.admit(cost: 1, at: time).isAdmitted { ideal[minute] += 1 }
        }
        let tolerance = Int(0.05 * Double(perMinute))
        for minute in 0..<minutes {
            #expect(abs(leased[minute] - ideal[minute]) <= tolerance, "minute \(minute): \(leased[minute]) vs \(ideal[minute])")
            if pattern == .saturating && minute >= 3 {
                #expect(abs(leased[minute] - perMinute) <= tolerance, "minute \(minute): \(leased[minute])")
            }
        }
        #expect(leased.reduce(0, +) <= ideal.reduce(0, +) + tolerance)
        // The shared counter is asked about once per lease, not once per request.
        #expect(Double(cluster.roundTrips) < 0.35 * Double(leased.reduce(0, +)))
    }

    @Test func atHighRatesALeaseSavesAlmostEveryRoundTrip() {
        let perMinute = 60_000
        var cluster = LeasedCluster(perMinute: perMinute, replicas: 3)
        var admitted = 0
        let arrivals = ArrivalPattern.saturating.arrivals(perMinute: perMinute, minutes: 3, seed: 9)
        for (index, time) in arrivals.enumerated() where cluster.admit(replica: index % 3, cost: 1, at: time) {
            admitted += 1
        }
        #expect(abs(admitted - 4 * perMinute) <= perMinute / 20)  // a full bucket plus three minutes
        #expect(Double(cluster.roundTrips) < 0.02 * Double(admitted))
    }
}
