import ProximaCore

/// What a store does differently for the shared rate counters: read a counter (full when it has no
/// row yet), apply a change and write it back, atomically. The checks and the lease arithmetic
/// around it are the same for every store, here.
protocol SharedCounterBackend {
    func changeCounter<T: Sendable>(
        _ name: String, perMinute: Int, at now: Double, _ change: @escaping @Sendable (inout RateLimiter) -> T
    ) async throws(StoreError) -> T
}

extension SharedCounterBackend {
    public func grantLease(counter: String, perMinute: Int, requested: Int, minimum: Int, at now: Double)
        async throws(StoreError) -> RateGrant
    {
        try StoreRecords.checkCounter(counter, perMinute: perMinute, at: now)
        try StoreRecords.checkUnits(requested, field: "requested")
        try StoreRecords.checkUnits(minimum, field: "minimum")
        return try await changeCounter(counter, perMinute: perMinute, at: now) { limiter in
            limiter.grant(requested: requested, minimum: minimum, at: now)
        }
    }

    public func refundLease(counter: String, perMinute: Int, units: Double, of charge: RateCharge, at now: Double)
        async throws(StoreError) -> Double
    {
        try StoreRecords.checkCounter(counter, perMinute: perMinute, at: now)
        try StoreRecords.checkUnits(units, field: "units")
        try StoreRecords.check(charge)
        return try await changeCounter(counter, perMinute: perMinute, at: now) { limiter in
            limiter.refund(units: units, of: charge, at: now)
        }
    }
}
