/// A limit of `perMinute` units (requests or tokens) per minute, refilled continuously: a bucket that
/// holds up to one minute's units, drained by charges and refilled at `perMinute / 60` per second.
///
/// Why this algorithm: a token bucket with continuous refill (GCRA is the same arithmetic) keeps
/// one level and one time per limit, so a check is a few floating-point operations with no memory
/// per request; the refill gives exact `Retry-After` and reset times (OpenAI's `reset` is the time
/// until the bucket is full again); charges of any size (tokens) and refunds (an estimate corrected
/// by the real usage) are additions to the level; and a replica's lease (``RateLease``) is a bulk
/// charge. Fixed windows admit twice the limit across a window's edge, and sliding logs need memory
/// per request.
///
/// The state is the used part of the bucket (`level`, in units) rather than GCRA's theoretical
/// arrival time: a time near 1.7 × 10^9 s (Unix time) has a resolution of 0.24 µs in a `Double`,
/// coarser than one token's worth of time at high limits, while a level keeps full precision.
///
/// Never traps: negative costs count as zero, costs are capped at 2^53 units, NaN or infinite times
/// count as no time passing, and times beyond ±10^12 s are clamped. A clock that steps back by d
/// seconds refills nothing then, and the limiter counts on from the earlier time, so those d
/// seconds refill twice: pass a monotonic clock (budgets, not rate limits, need calendar time).
public struct RateLimiter: Sendable, Equatable {
    /// The limit, at least 1.
    public let perMinute: Int
    /// Units the bucket holds when full: one minute's worth.
    public var capacity: Double { Double(perMinute) }
    /// Refill speed, units per second.
    public var ratePerSecond: Double { Double(perMinute) / 60 }
    /// Units charged and not yet refilled; `capacity - level` can be admitted now. It can exceed the
    /// capacity after usage exceeded an estimate (``settle(_:actual:at:)``), up to
    /// ``maximumLevel``.
    public private(set) var level: Double = 0
    /// When `level` was last brought up to date.
    public private(set) var updatedAt: Double
    /// The last time the level reached zero: every unit charged before then has been refilled, so
    /// none of it can be refunded any more.
    public private(set) var lastEmptiedAt: Double
    /// Units refunded so far, ever: a charge's units sink towards the bottom of the bucket as
    /// units below them are refunded (see ``refund(units:of:at:)``).
    public private(set) var refundedTotal: Double = 0

    /// Tolerance for rounding in the refill arithmetic: a charge that exceeds the capacity by less
    /// than this share of it is admitted.
    static let relativeSlack = 1e-9

    /// A limiter with a full bucket at `at`.
    public init(perMinute: Int, at: Double) {
        self.perMinute = min(max(perMinute, 1), Int(AdmissionArithmetic.maximumUnits))
        let now = AdmissionArithmetic.time(at, fallback: 0)
        updatedAt = now
        lastEmptiedAt = now
    }

    /// The most the level can reach: two minutes' worth, so that one answer far larger than its
    /// estimate (or a bogus usage report) delays the scope by at most one more minute.
    public var maximumLevel: Double { 2 * capacity }

    // MARK: Checks

    /// Whether `cost` units could be admitted at `at`, without charging them.
    public func check(cost: Int, at: Double) -> RateCheck {
        var copy = self
        copy.refill(to: at)
        return copy.evaluate(AdmissionArithmetic.units(cost))
    }

    /// Admits `cost` units at `at` if the bucket has room for them, and charges them; an admitted
    /// check carries the charge's receipt, for ``settle(_:actual:at:)``.
    @discardableResult
    public mutating func admit(cost: Int, at: Double) -> RateCheck {
        refill(to: at)
        var result = evaluate(AdmissionArithmetic.units(cost))
        if result.isAdmitted { result.charge = add(result.cost) }
        return result
    }

    /// The headers' view at `at`: limit, whole units left, and seconds until the bucket is full.
    public func snapshot(at: Double) -> RateLimitSnapshot {
        var copy = self
        copy.refill(to: at)
        return copy.currentSnapshot(afterCharging: 0)
    }

    // MARK: Corrections

    /// Corrects a charge once the real cost `actual` is known: usage beyond the estimate is charged
    /// on top (never refused: the work is done), usage below it is refunded as far as the charge's
    /// units are still in the bucket (``refund(units:of:at:)``). Returns the change of the level
    /// (positive: charged, negative: refunded).
    @discardableResult
    public mutating func settle(_ charge: RateCharge, actual: Int, at: Double) -> Double {
        let actualUnits = AdmissionArithmetic.units(actual)
        if actualUnits > charge.units {
            return self.charge(units: actualUnits - charge.units, at: at).units
        }
        return -refund(units: charge.units - actualUnits, of: charge, at: at)
    }

    /// Charges `units` without asking whether they fit (usage beyond an estimate, an admitted
    /// request's commit), up to ``maximumLevel``. Returns the receipt of what was charged.
    @discardableResult
    public mutating func charge(units: Double, at: Double) -> RateCharge {
        refill(to: at)
        return add(Self.clampUnits(units))
    }

    /// Gives back up to `units` of an earlier charge; returns the units refunded.
    ///
    /// Only units of that charge still in the bucket come back. The bucket refills oldest units
    /// first, so the charge's units are gone once the refill since it was made (plus refunds since,
    /// which lower everything above them) has passed the level it was stacked on; and all of them
    /// are gone if the bucket emptied since. Refunding more would make room for units that were
    /// used by nobody: a late refund never lets the limiter admit more than if the true cost had
    /// been charged in the first place.
    @discardableResult
    public mutating func refund(units: Double, of charge: RateCharge, at: Double) -> Double {
        refill(to: at)
        // A NaN time of charge compares false, so it counts as refilled long ago.
        guard lastEmptiedAt <= charge.at else { return 0 }
        let refilledSince = max(updatedAt - charge.at, 0) * ratePerSecond
        let refundedSince = max(refundedTotal - charge.refundedBefore, 0)
        let present = min(charge.units, charge.levelBefore + charge.units - refilledSince - refundedSince)
        let refunded = min(Self.clampUnits(units), present, level)
        guard refunded > 0 else { return 0 }
        level -= refunded
        refundedTotal = min(refundedTotal + refunded, .greatestFiniteMagnitude)
        if level <= 0 {
            level = 0
            lastEmptiedAt = updatedAt
        }
        return refunded
    }

    // MARK: Bulk grants (leases)

    /// Admits `requested` units at once if they fit, and charges them: how a replica takes a lease
    /// from a shared limit. A request for more than the whole limit is cut to the limit, but never
    /// below `minimum` (what the request at hand needs; more than the limit can never be granted).
    /// When the units do not fit, the grant is refused with the wait until they do. Granting all or
    /// nothing keeps a replica at one round trip per lease even when the limit binds: partial
    /// grants would hand out the few units refilled since the last one, one round trip each.
    public mutating func grant(requested: Int, minimum: Int, at: Double) -> RateGrant {
        refill(to: at)
        let least = max(AdmissionArithmetic.units(minimum), 1)
        guard least <= capacity + slack else {
            return RateGrant(units: 0, retryAfter: nil, snapshot: currentSnapshot(afterCharging: 0), charge: nil)
        }
        let wanted = max(min(AdmissionArithmetic.units(requested), capacity), least)
        guard level + wanted <= capacity + slack else {
            return RateGrant(
                units: 0, retryAfter: AdmissionArithmetic.seconds((level + wanted - capacity) / ratePerSecond),
                snapshot: currentSnapshot(afterCharging: 0), charge: nil)
        }
        let receipt = add(wanted)
        return RateGrant(
            units: AdmissionArithmetic.wholeUnits(wanted), retryAfter: 0, snapshot: currentSnapshot(afterCharging: 0),
            charge: receipt)
    }

    // MARK: Arithmetic

    private var slack: Double { capacity * Self.relativeSlack }

    /// Stacks `units` on the level (up to ``maximumLevel``) and returns where they lie.
    private mutating func add(_ units: Double) -> RateCharge {
        let before = level
        level = min(level + units, maximumLevel)
        return RateCharge(units: level - before, at: updatedAt, levelBefore: before, refundedBefore: refundedTotal)
    }

    private static func clampUnits(_ units: Double) -> Double {
        units > 0 ? min(units, AdmissionArithmetic.maximumUnits) : 0
    }

    /// Brings the level to time `at`: refills what the elapsed time allows and remembers when the
    /// bucket became empty.
    mutating func refill(to at: Double) {
        let now = AdmissionArithmetic.time(at, fallback: updatedAt)
        let elapsed = now - updatedAt
        if elapsed > 0 && level > 0 {
            let refilled = elapsed * ratePerSecond
            if refilled >= level {
                lastEmptiedAt = updatedAt + level / ratePerSecond
                level = 0
            } else {
                level -= refilled
            }
        }
        updatedAt = now
    }

    private func evaluate(_ units: Double) -> RateCheck {
        let current = currentSnapshot(afterCharging: 0)
        if units > capacity + slack {
            return RateCheck(outcome: .exceedsCapacity, cost: units, retryAfter: nil, current: current, afterAdmission: current)
        }
        let after = level + units
        if after <= capacity + slack {
            return RateCheck(
                outcome: .admitted, cost: units, retryAfter: 0, current: current, afterAdmission: currentSnapshot(afterCharging: units))
        }
        return RateCheck(
            outcome: .refused, cost: units, retryAfter: AdmissionArithmetic.seconds((after - capacity) / ratePerSecond),
            current: current, afterAdmission: current)
    }

    private func currentSnapshot(afterCharging units: Double) -> RateLimitSnapshot {
        let used = level + units
        return RateLimitSnapshot(
            limit: perMinute, remaining: AdmissionArithmetic.wholeUnits(capacity - used + slack),
            resetSeconds: AdmissionArithmetic.seconds(used / ratePerSecond))
    }
}

/// The answer of a ``RateLimiter`` to one charge.
public struct RateCheck: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case admitted
        /// Not now; there will be room after `retryAfter`.
        case refused
        /// More than the whole limit: it can never be admitted.
        case exceedsCapacity
    }

    public var outcome: Outcome
    /// The units charged or asked for, after clamping.
    public var cost: Double
    /// Seconds until the charge would fit: 0 when admitted, `nil` when it never can.
    public var retryAfter: Double?
    /// The limit as the headers show it before this charge.
    public var current: RateLimitSnapshot
    /// The limit as the headers show it once this charge is made; `current` when it is refused.
    public var afterAdmission: RateLimitSnapshot
    /// The receipt of the charge, when ``RateLimiter/admit(cost:at:)`` made it.
    public var charge: RateCharge?

    public var isAdmitted: Bool { outcome == .admitted }
}

/// What a bulk ``RateLimiter/grant(requested:minimum:at:)`` handed out.
public struct RateGrant: Sendable, Equatable {
    /// Units granted (and charged); 0 when refused.
    public var units: Int
    /// Seconds until the minimum would fit; `nil` when it never can (more than the whole limit).
    public var retryAfter: Double?
    /// The shared limit after the grant.
    public var snapshot: RateLimitSnapshot
    /// The receipt of the granted units, for giving back what is not used.
    public var charge: RateCharge?

    public var isGranted: Bool { units > 0 }
}

/// Where a charge lies in a ``RateLimiter``'s bucket, kept to refund part of it later.
public struct RateCharge: Sendable, Equatable {
    /// Units charged (after clamping).
    public var units: Double
    /// When they were charged.
    public var at: Double
    /// The level they were stacked on.
    public var levelBefore: Double
    /// The limiter's ``RateLimiter/refundedTotal`` at the time.
    public var refundedBefore: Double

    public init(units: Double, at: Double, levelBefore: Double, refundedBefore: Double) {
        self.units = units
        self.at = at
        self.levelBefore = levelBefore
        self.refundedBefore = refundedBefore
    }
}

extension RateLimiter {
    /// A limiter with the state another one had: how a shared limiter kept in a store (its level,
    /// two times and its refund total) becomes a value again, to be changed and written back in one
    /// transaction. Stored numbers are distrusted like any other: a NaN or negative level counts as
    /// empty, a level beyond ``maximumLevel`` is cut to it, times are clamped as everywhere, and the
    /// last emptying cannot lie after the last update.
    public init(perMinute: Int, level: Double, updatedAt: Double, lastEmptiedAt: Double, refundedTotal: Double) {
        self.init(perMinute: perMinute, at: updatedAt)
        self.level = level > 0 ? min(level, maximumLevel) : 0
        self.lastEmptiedAt = min(AdmissionArithmetic.time(lastEmptiedAt, fallback: self.updatedAt), self.updatedAt)
        self.refundedTotal = refundedTotal > 0 ? min(refundedTotal, .greatestFiniteMagnitude) : 0
    }
}
