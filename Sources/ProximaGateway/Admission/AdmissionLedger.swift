import ProximaCore
import Synchronization

/// Where the admission state of keys, principals and tenants is kept: what the admit stage asks
/// and the account stage settles. ``LocalAdmissionLedger`` keeps it in this process;
/// ``SharedAdmissionLedger`` shares rate limits and budgets between replicas through the store's
/// counters (leases, see ``RateLease``) behind the same calls.
protocol AdmissionLedger: Sendable {
    /// Checks the request against every limited scope of `caller` and, when all admit, charges
    /// each; `now` is Unix seconds. Async because a shared ledger may have to wait for one lease
    /// from the store; it throws only when it cannot decide (the store out of reach for too long).
    func admit(_ request: AdmissionRequest, caller: CallerIdentity, at now: Double) async throws(GatewayError)
        -> (AdmissionDecision, AdmissionPass?)

    /// Ends an admitted request, once: releases its concurrency, corrects its token estimate by the
    /// real usage and adds its cost (usage × the serving endpoint's price) to the budgets.
    func finish(_ pass: AdmissionPass, promptTokens: Int, completionTokens: Int, price: TokenPrice, at now: Double)

    /// The rate-limit headers `caller` would see now, for answers that charge nothing.
    func headers(for caller: CallerIdentity, at now: Double) -> RateLimitHeaders
}

/// An admitted request's hold on its scopes, settled once by ``AdmissionLedger/finish(_:promptTokens:completionTokens:price:at:)``.
struct AdmissionPass: Sendable {
    var ticket: AdmissionTicket
    var key: ScopeKey?
    var principal: ScopeKey?
    var tenant: ScopeKey?
    /// What a shared ledger settles besides the local scopes: its token leases and budgets.
    var shared: SharedCharges?
}

/// Names one scope's state: its kind and its identifiers (key ids and principal ids are unique
/// within their tenant; the tenant is part of every key so that a tenant's scopes share a shard).
struct ScopeKey: Sendable, Hashable {
    var scope: AdmissionScope
    var tenantID: String
    var id: String
}

/// Admission state in this process: one ``ScopeAllowance`` per limited key, principal and tenant,
/// in shards chosen by tenant (a request's three scopes are always in one shard, so one short lock
/// covers its check and charge; it is never held across an await). Memory is bounded: past
/// ``capacity`` scopes a shard drops the idle ones (nothing in flight, rate buckets refilled, no
/// spend this month), then, if still full, the least recently used with nothing in flight.
final class LocalAdmissionLedger: AdmissionLedger {
    /// Scopes kept at most (over all shards) before idle ones are dropped.
    let capacity: Int
    private let shards: [ShardLock]

    /// One shard behind its lock (a class, since a `Mutex` cannot be copied into an array).
    private final class ShardLock: Sendable {
        let mutex = Mutex(Shard())

        func withLock<Result>(_ body: (inout Shard) -> Result) -> Result { mutex.withLock { body(&$0) } }
    }

    /// A scope's state, changed only under its shard's lock (hence unchecked: it is never touched
    /// outside it).
    fileprivate final class Entry: @unchecked Sendable {
        var allowance: ScopeAllowance?
        var lastUsed: Double

        init(allowance: ScopeAllowance, lastUsed: Double) {
            self.allowance = allowance
            self.lastUsed = lastUsed
        }
    }

    fileprivate struct Shard: Sendable {
        var entries: [ScopeKey: Entry] = [:]
    }

    init(capacity: Int = 100_000, shardCount: Int = 16) {
        self.capacity = max(capacity, 16)
        shards = (0..<max(shardCount, 1)).map { _ in ShardLock() }
    }

    /// Scopes with state now (for tests and metrics).
    var count: Int { shards.reduce(0) { total, shard in total + shard.withLock { $0.entries.count } } }

    /// A scope's state as it stands (for tests and the admin API).
    func allowance(_ key: ScopeKey) -> ScopeAllowance? {
        shards[shard(key.tenantID)].withLock { $0.entries[key]?.allowance }
    }

    private func shard(_ tenantID: String) -> Int {
        var hasher = Hasher()
        hasher.combine(tenantID)
        return Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))
    }

    func admit(_ request: AdmissionRequest, caller: CallerIdentity, at now: Double) -> (AdmissionDecision, AdmissionPass?) {
        let keyKey = caller.keyID.flatMap { caller.keyLimits.isUnlimited ? nil : ScopeKey(scope: .key, tenantID: caller.tenantID, id: $0) }
        let principalKey =
            caller.principalLimits.isUnlimited ? nil : ScopeKey(scope: .principal, tenantID: caller.tenantID, id: caller.principalID)
        let tenantKey = caller.tenantLimits.isUnlimited ? nil : ScopeKey(scope: .tenant, tenantID: caller.tenantID, id: caller.tenantID)
        guard keyKey != nil || principalKey != nil || tenantKey != nil else {
            // Nothing limited: nothing to check, keep or settle.
            return (AdmissionDecision(key: nil, principal: nil, tenant: nil), nil)
        }
        let capacityPerShard = capacity / shards.count
        return shards[shard(caller.tenantID)].withLock { shard in
            let key = keyKey.map { shard.entry($0, limits: caller.keyLimits, at: now, capacity: capacityPerShard) }
            let principal = principalKey.map { shard.entry($0, limits: caller.principalLimits, at: now, capacity: capacityPerShard) }
            let tenant = tenantKey.map { shard.entry($0, limits: caller.tenantLimits, at: now, capacity: capacityPerShard) }
            // The allowances are copied out, decided on and written back: plain values, no allocation.
            var keyAllowance = key?.allowance
            var principalAllowance = principal?.allowance
            var tenantAllowance = tenant?.allowance
            let (decision, ticket) = AdmissionDecision.admit(
                request, at: now, key: &keyAllowance, principal: &principalAllowance, tenant: &tenantAllowance)
            key?.allowance = keyAllowance
            principal?.allowance = principalAllowance
            tenant?.allowance = tenantAllowance
            return (decision, ticket.map { AdmissionPass(ticket: $0, key: keyKey, principal: principalKey, tenant: tenantKey) })
        }
    }

    func finish(_ pass: AdmissionPass, promptTokens: Int, completionTokens: Int, price: TokenPrice, at now: Double) {
        guard let tenantID = (pass.tenant ?? pass.principal ?? pass.key)?.tenantID else { return }
        shards[shard(tenantID)].withLock { shard in
            func settle(_ key: ScopeKey?) {
                guard let key, let entry = shard.entries[key] else { return }
                entry.allowance?.finish(pass.ticket, promptTokens: promptTokens, completionTokens: completionTokens, price: price, at: now)
                entry.lastUsed = max(entry.lastUsed, now)
            }
            settle(pass.key)
            settle(pass.principal)
            settle(pass.tenant)
        }
    }

    func headers(for caller: CallerIdentity, at now: Double) -> RateLimitHeaders {
        shards[shard(caller.tenantID)].withLock { shard in
            var keys: [ScopeKey] = [ScopeKey(scope: .tenant, tenantID: caller.tenantID, id: caller.tenantID)]
            keys.append(ScopeKey(scope: .principal, tenantID: caller.tenantID, id: caller.principalID))
            if let keyID = caller.keyID { keys.append(ScopeKey(scope: .key, tenantID: caller.tenantID, id: keyID)) }
            var headers = RateLimitHeaders()
            for key in keys {
                guard let entry = shard.entries[key], let allowance = entry.allowance else { continue }
                let scoped = allowance.headers(at: now)
                if let requests = scoped.requests, headers.requests.map({ requests.remainingShare < $0.remainingShare }) ?? true {
                    headers.requests = requests
                }
                if let tokens = scoped.tokens, headers.tokens.map({ tokens.remainingShare < $0.remainingShare }) ?? true {
                    headers.tokens = tokens
                }
            }
            return headers
        }
    }

    /// Adds what other replicas spent to a scope's budgets, if the scope has state here.
    func recordSharedSpend(_ key: ScopeKey, today: Money, thisMonth: Money, at now: Double) {
        shards[shard(key.tenantID)].withLock { shard in
            shard.entries[key]?.allowance?.recordSharedSpend(today: today, thisMonth: thisMonth, at: now)
        }
    }

    /// How long a scope must go unused before it may be dropped: its rate buckets have refilled
    /// by then (a bucket holds at most two minutes' worth).
    static let idleSeconds = 120.0

    fileprivate static func isIdle(_ entry: Entry, at now: Double) -> Bool {
        guard let allowance = entry.allowance, allowance.inFlight == 0, now - entry.lastUsed >= idleSeconds else { return false }
        return allowance.budget.isUnlimited || allowance.budget.spent(.month, at: now) == .zero
    }
}

extension LocalAdmissionLedger.Shard {
    /// The entry of `key`, made (or its limits updated) as needed.
    fileprivate mutating func entry(_ key: ScopeKey, limits: ScopeLimits, at now: Double, capacity: Int) -> LocalAdmissionLedger.Entry {
        if let entry = entries[key] {
            if entry.allowance?.limits != limits { entry.allowance?.update(limits: limits, at: now) }
            entry.lastUsed = max(entry.lastUsed, now)
            return entry
        }
        if entries.count >= capacity { evict(at: now, capacity: capacity) }
        let entry = LocalAdmissionLedger.Entry(allowance: ScopeAllowance(scope: key.scope, limits: limits, at: now), lastUsed: now)
        entries[key] = entry
        return entry
    }

    /// Drops idle scopes; if that leaves the shard over 90% full, the least recently used ones with
    /// nothing in flight too.
    private mutating func evict(at now: Double, capacity: Int) {
        entries = entries.filter { !LocalAdmissionLedger.isIdle($0.value, at: now) }
        let target = capacity * 9 / 10
        guard entries.count > target else { return }
        let disposable = entries.filter { ($0.value.allowance?.inFlight ?? 0) == 0 }.sorted { $0.value.lastUsed < $1.value.lastUsed }
        for (key, _) in disposable.prefix(entries.count - target) { entries[key] = nil }
    }
}
