/// One replica's share of a rate limit that several gateway replicas enforce together through a
/// shared counter, without a round trip per request.
///
/// The shared counter is a ``RateLimiter`` kept in the store (its level, two times and its refund
/// total), changed atomically there. A replica takes a lease: L units granted all or nothing by
/// ``RateLimiter/grant(requested:minimum:at:)`` and charged to the shared limiter at once; it
/// admits requests locally from those units, and gives back what it has not used when the lease
/// ends (``RateLimiter/refund(units:of:at:)``). After a refused grant it refuses what its units do
/// not cover until a whole lease would fit, so the limit binding costs no extra round trips.
/// Units are usable only until the lease expires (`holdSeconds` after the last grant), since the
/// shared limiter starts refilling them as soon as they are charged.
///
/// The lease size L is the replica's observed demand over `leaseSeconds`, at least what the
/// request needs, and at most `tolerance × N / (2 × replicas)` for a limit of N. So all replicas
/// together hold at most `tolerance × N / 2` unused units at any moment, and the units admitted in
/// any interval differ from what one limiter would admit by at most that at the interval's start
/// plus that at its end: within `tolerance × N` (5% by default). A request that alone needs more
/// than the cap (a large token estimate) leases what it needs, so for tokens the bound is
/// `replicas × max(cap, largest request)`.
public struct RateLease: Sendable, Equatable {
    public let perMinute: Int
    public let settings: LeaseSettings
    /// Leased units not yet used; negative when usage beyond an estimate is owed (the next lease
    /// covers it first).
    public private(set) var balance: Double = 0
    /// The receipt of the latest grant: the unused units are the newest ones (a lease is spent
    /// oldest units first), so a return refers to it. Unused units beyond it are not given back.
    public private(set) var latestCharge: RateCharge?
    /// Units leased are usable until then.
    public private(set) var expiresAt: Double
    /// Unused units of an expired lease, to give back to the shared limiter.
    public private(set) var returnDue: LeaseReturn?
    /// After a refused grant, requests that the balance does not cover are refused until then
    /// without asking the shared limiter again.
    public private(set) var blockedUntil: Double = -.infinity
    /// This replica's demand, units per second.
    public private(set) var demand: DemandRate
    /// The shared limit as the last grant saw it, and when.
    public private(set) var shared: RateLimitSnapshot?
    public private(set) var sharedSeenAt: Double

    public init(perMinute: Int, settings: LeaseSettings, at: Double) {
        self.perMinute = min(max(perMinute, 1), Int(AdmissionArithmetic.maximumUnits))
        self.settings = settings.clamped
        let now = AdmissionArithmetic.time(at, fallback: 0)
        expiresAt = now
        sharedSeenAt = now
        demand = DemandRate(halfLife: self.settings.leaseSeconds, at: now)
    }

    /// Admits `cost` units from the lease, or says how many units to lease first. `replicas` is
    /// the number of replicas sharing the limit (at least 1).
    public mutating func admit(cost: Int, replicas: Int, at: Double) -> LeaseAdmission {
        let now = AdmissionArithmetic.time(at, fallback: sharedSeenAt)
        expire(at: now)
        let units = AdmissionArithmetic.units(cost)
        demand.record(units: units, at: now)
        if units <= balance {
            balance -= units
            return .admitted
        }
        if now < blockedUntil { return .refused(retryAfter: blockedUntil - now) }
        let needed = units - balance
        let size = Self.leaseSize(
            perMinute: perMinute, replicas: replicas, demandPerSecond: demand.perSecond(at: now), settings: settings,
            needed: needed)
        return .needsLease(LeaseRequest(units: size, minimum: AdmissionArithmetic.wholeUnits(needed.rounded(.up))))
    }

    /// Takes in what the shared limiter granted for a request of `cost` units that
    /// ``admit(cost:replicas:at:)`` sent to lease, and admits the request from it if it now fits.
    /// After a refused grant (zero units) the request is refused with the grant's `retryAfter`, and
    /// so are the requests the balance does not cover until that time has passed.
    public mutating func receive(_ grant: RateGrant, cost: Int, at: Double) -> Bool {
        let now = AdmissionArithmetic.time(at, fallback: sharedSeenAt)
        shared = grant.snapshot
        sharedSeenAt = now
        guard grant.units > 0 else {
            if let wait = grant.retryAfter { blockedUntil = now + wait }
            return false
        }
        expire(at: now)
        latestCharge = grant.charge
        balance = min(balance + Double(grant.units), AdmissionArithmetic.maximumUnits)
        expiresAt = now + settings.holdSeconds
        let units = AdmissionArithmetic.units(cost)
        guard units <= balance else { return false }
        balance -= units
        return true
    }

    /// Corrects an estimate once the real cost is known: a refund stays in the lease, usage beyond
    /// the estimate is owed to it.
    public mutating func settle(estimated: Int, actual: Int) {
        let change = AdmissionArithmetic.units(estimated) - AdmissionArithmetic.units(actual)
        balance = min(max(balance + change, -AdmissionArithmetic.maximumUnits), AdmissionArithmetic.maximumUnits)
    }

    /// The unused units to give back at `at`, if the lease has expired; the caller refunds them to
    /// the shared limiter (``RateLimiter/refund(units:of:at:)``).
    public mutating func takeReturn(at: Double) -> LeaseReturn? {
        expire(at: AdmissionArithmetic.time(at, fallback: sharedSeenAt))
        defer { returnDue = nil }
        return returnDue
    }

    /// The headers' view: the shared limit as last seen, refilled since, plus this replica's unused
    /// units. Other replicas' unused units are not known here, so `remaining` can be low by at most
    /// what they hold (the lease tolerance).
    public func snapshot(at: Double) -> RateLimitSnapshot {
        let capacity = Double(perMinute)
        let rate = capacity / 60
        let elapsed = max(AdmissionArithmetic.time(at, fallback: sharedSeenAt) - sharedSeenAt, 0)
        let sharedRemaining = shared.map { Double($0.remaining) } ?? capacity
        let sharedReset = shared?.resetSeconds ?? 0
        let remaining = min(sharedRemaining + elapsed * rate, capacity) + max(balance, 0)
        return RateLimitSnapshot(
            limit: perMinute, remaining: AdmissionArithmetic.wholeUnits(min(remaining, capacity)),
            resetSeconds: AdmissionArithmetic.seconds(sharedReset - elapsed))
    }

    /// The most units one replica holds: `tolerance × N / (2 × replicas)`, at least 1.
    public static func leaseCap(perMinute: Int, replicas: Int, tolerance: Double) -> Int {
        let share = Double(max(perMinute, 1)) * tolerance / Double(2 * min(max(replicas, 1), 1_000_000))
        return max(1, AdmissionArithmetic.wholeUnits(share))
    }

    /// The lease to ask for: the demand expected over `leaseSeconds`, between 1 and the cap, and
    /// at least `needed`.
    public static func leaseSize(
        perMinute: Int, replicas: Int, demandPerSecond: Double, settings: LeaseSettings, needed: Double
    ) -> Int {
        let cap = leaseCap(perMinute: perMinute, replicas: replicas, tolerance: settings.tolerance)
        let expected = AdmissionArithmetic.wholeUnits((demandPerSecond * settings.leaseSeconds).rounded(.up))
        let size = min(max(expected, 1), cap)
        return max(size, AdmissionArithmetic.wholeUnits(needed.rounded(.up)))
    }

    /// Moves the unused units of an expired lease to `returnDue` (at most the latest grant's).
    private mutating func expire(at now: Double) {
        guard now >= expiresAt, balance > 0 else { return }
        if let charge = latestCharge, returnDue == nil {
            returnDue = LeaseReturn(units: min(balance, charge.units), charge: charge)
        }
        balance = 0
        latestCharge = nil
    }
}

/// A replica's answer to a request under a shared limit.
public enum LeaseAdmission: Sendable, Equatable {
    case admitted
    /// The lease does not cover the request: lease this from the shared limiter and hand the grant
    /// to ``RateLease/receive(_:cost:at:)``.
    case needsLease(LeaseRequest)
    /// The shared limiter refused a lease a moment ago; it will have room after `retryAfter`.
    case refused(retryAfter: Double)
}

/// Units to ask the shared limiter for: `units` if they fit, no fewer than `minimum`.
public struct LeaseRequest: Sendable, Equatable {
    public var units: Int
    public var minimum: Int
}

/// Unused units going back to the shared limiter, with the receipt of the grant they came from.
public struct LeaseReturn: Sendable, Equatable {
    public var units: Double
    public var charge: RateCharge
}
