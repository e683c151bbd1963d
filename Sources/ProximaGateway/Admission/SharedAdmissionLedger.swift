import Foundation
import Logging
import ProximaCore
import ProximaStore
import ServiceLifecycle
import Synchronization

/// Admission state shared by gateway replicas through the store's counters, without a round trip
/// per request.
///
/// - **Rate limits** (requests and tokens per minute of each limited key, principal and tenant)
///   are admitted locally from a ``RateLease`` per limit, whose units come from the store's shared
///   limiter (`rpm:tenant:acme`, `tpm:key:acme:…`). When a lease does not cover a request, the
///   request awaits one grant; requests arriving meanwhile await the same grant rather than asking
///   again. Expired leases give their unused units back in the background.
/// - **Budgets** are checked locally against what this replica spent plus what the others spent as
///   last read from the store; real spend is added to the store in batches (``flushInterval``), and
///   each batch's answer brings the others' spend in.
/// - **Concurrency caps** and `max_tokens` stay local (``LocalAdmissionLedger``): a cap of C holds
///   per replica.
///
/// When the store cannot be reached, a limit keeps admitting from its lease, then from a local
/// bucket at its share of the limit (N / replicas per minute, starting empty), for
/// `leases.hold_seconds` from the first failure; after that its callers get 503 (fail closed) until
/// the store answers again. Callers without shared limits are not affected.
final class SharedAdmissionLedger: AdmissionLedger {
    /// Concurrency, `max_tokens` and budgets (rate limits taken out).
    let local: LocalAdmissionLedger
    let counters: any SharedCounters
    let settings: LeaseSettings
    let logger: Logger
    let clock: @Sendable () -> Double
    /// How often spend is added to the store and the others' spend read back.
    let flushInterval: Double
    /// During an outage, the store is tried again at most this often per limit.
    static let retryInterval = 1.0

    private let rates = Mutex<[CounterKey: SharedRate]>([:])
    private let spending = Mutex(SpendState())

    init(
        counters: any SharedCounters, settings: LeaseSettings, local: LocalAdmissionLedger = LocalAdmissionLedger(),
        flushInterval: Double = 1, logger: Logger = Logger(label: "proxima.admission"),
        clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.counters = counters
        self.settings = settings.clamped
        self.local = local
        self.flushInterval = flushInterval
        self.logger = logger
        self.clock = clock
    }

    // MARK: Admission

    func admit(_ request: AdmissionRequest, caller: CallerIdentity, at now: Double) async throws(GatewayError)
        -> (AdmissionDecision, AdmissionPass?)
    {
        let scopes = Self.scopes(of: caller)
        var budgets: [ScopeKey] = []
        for (key, limits) in scopes where limits.dailyBudgetUSD != nil || limits.monthlyBudgetUSD != nil { budgets.append(key) }
        if !budgets.isEmpty, let failing = spending.withLock({ $0.failingSince }), now - failing >= settings.holdSeconds {
            throw .limitsUnavailable(retryAfterSeconds: Int(Self.retryInterval))
        }
        // Concurrency, max_tokens and budgets first (a refusal there charges no lease).
        var localCaller = caller
        localCaller.keyLimits = caller.keyLimits.withoutRates
        localCaller.principalLimits = caller.principalLimits.withoutRates
        localCaller.tenantLimits = caller.tenantLimits.withoutRates
        var (decision, localPass) = local.admit(request, caller: localCaller, at: now)
        let rates = sharedRates(scopes, at: now)
        guard decision.isAdmitted else {
            addHeaders(&decision.headers, rates, at: now)
            return (decision, nil)
        }
        var taken = 0
        var refusal: AdmissionRefusal?
        var unavailable = false
        for (index, rate) in rates.enumerated() {
            let cost = rate.key.kind == .requests ? 1 : max(request.estimatedTokens, 0)
            if cost > rate.perMinute {
                refusal = AdmissionRefusal(reason: .requestTooLarge, scope: rate.key.scope.scope, limit: Double(rate.perMinute), retryAfter: nil)
                break
            }
            switch await admit(cost: cost, on: rate, at: now) {
            case .admitted:
                taken = index + 1
                continue
            case .refused(let wait):
                refusal = AdmissionRefusal(
                    reason: rate.key.kind == .requests ? .requests : .tokens, scope: rate.key.scope.scope, limit: Double(rate.perMinute),
                    retryAfter: max(wait, 0.001))
            case .unavailable:
                unavailable = true
            }
            break
        }
        if refusal != nil || unavailable {
            // Undo: the units go back to their leases, the local charge is ended with nothing used.
            for rate in rates.prefix(taken) {
                let cost = rate.key.kind == .requests ? 1 : max(request.estimatedTokens, 0)
                rate.state.withLock { $0.lease.settle(estimated: cost, actual: 0) }
            }
            if let localPass { local.finish(localPass, promptTokens: 0, completionTokens: 0, price: .free, at: now) }
            if unavailable { throw .limitsUnavailable(retryAfterSeconds: Int(Self.retryInterval)) }
            var refused = decision
            refused.refusal = refusal
            addHeaders(&refused.headers, rates, at: now)
            refused.headers.retryAfterSeconds = refusal?.retryAfterSeconds
            return (refused, nil)
        }
        addHeaders(&decision.headers, rates, at: now)
        var pass = localPass ?? AdmissionPass(ticket: AdmissionTicket(estimatedTokens: max(request.estimatedTokens, 0), admittedAt: now))
        var charges = SharedCharges(budgets: budgets)
        for rate in rates where rate.key.kind == .tokens { charges.tokens.append(rate) }
        if !charges.isEmpty { pass.shared = charges }
        return (decision, pass)
    }

    func finish(_ pass: AdmissionPass, promptTokens: Int, completionTokens: Int, price: TokenPrice, at now: Double) {
        local.finish(pass, promptTokens: promptTokens, completionTokens: completionTokens, price: price, at: now)
        guard let shared = pass.shared else { return }
        let (total, overflow) = max(promptTokens, 0).addingReportingOverflow(max(completionTokens, 0))
        for rate in shared.tokens {
            rate.state.withLock { $0.lease.settle(estimated: pass.ticket.estimatedTokens, actual: overflow ? .max : total) }
        }
        guard !shared.budgets.isEmpty else { return }
        let cost = price.spend(promptTokens: max(promptTokens, 0), completionTokens: max(completionTokens, 0))
        spending.withLock { state in
            for key in shared.budgets { state.scopes[key, default: SpendScope(lastUsed: now)].add(cost, at: now) }
        }
    }

    func headers(for caller: CallerIdentity, at now: Double) -> RateLimitHeaders {
        var headers = local.headers(for: caller, at: now)
        let known = rates.withLock { rates in
            Self.scopes(of: caller).flatMap { key, _ in
                [CounterKey(scope: key, kind: .requests), CounterKey(scope: key, kind: .tokens)].compactMap { rates[$0] }
            }
        }
        addHeaders(&headers, known, at: now)
        return headers
    }

    // MARK: Rate leases

    enum RateOutcome: Equatable {
        case admitted
        case refused(retryAfter: Double)
        case unavailable
    }

    private enum Step {
        case done(RateOutcome)
        case wait(Task<Void, Never>)
    }

    /// Admits `cost` units of `rate`: from its lease, after one grant, or (the store out of reach)
    /// from the outage bucket until `hold_seconds` have passed.
    func admit(cost: Int, on rate: SharedRate, at now: Double) async -> RateOutcome {
        // A few rounds: a grant that arrives may have gone to the requests that waited with this one.
        for _ in 0..<4 {
            let step: Step = rate.state.withLock { state in
                state.lastUsed = max(state.lastUsed, now)
                switch state.lease.admit(cost: cost, replicas: settings.replicas, at: now) {
                case .admitted: return .done(.admitted)
                case .refused(let wait): return .done(.refused(retryAfter: wait))
                case .needsLease(let request):
                    if let since = state.failingSince {
                        if state.grant == nil, now >= state.nextAttempt {
                            // Try the store again in the background; this request does not wait on a
                            // store that may hang until its timeout.
                            state.grant = startGrant(rate, request)
                        }
                        guard now - since < settings.holdSeconds else { return .done(.unavailable) }
                        var fallback =
                            state.fallback
                            ?? RateLimiter(
                                perMinute: max(rate.perMinute / settings.replicas, 1), level: Double(max(rate.perMinute / settings.replicas, 1)),
                                updatedAt: since, lastEmptiedAt: since, refundedTotal: 0)
                        let answer = fallback.admit(cost: cost, at: now)
                        state.fallback = fallback
                        return .done(answer.isAdmitted ? .admitted : .refused(retryAfter: answer.retryAfter ?? Self.retryInterval))
                    }
                    if let grant = state.grant { return .wait(grant) }
                    let grant = startGrant(rate, request)
                    state.grant = grant
                    return .wait(grant)
                }
            }
            switch step {
            case .done(let outcome): return outcome
            case .wait(let grant): await grant.value
            }
        }
        return .refused(retryAfter: settings.leaseSeconds)
    }

    /// One grant from the store, taken in by the lease when it arrives (or the failure noted).
    /// Started under the rate's lock and awaited outside it; it owns the only store call in flight
    /// for this limit.
    private func startGrant(_ rate: SharedRate, _ request: LeaseRequest) -> Task<Void, Never> {
        let counters = counters
        let clock = clock
        let logger = logger
        return Task {
            let asked = clock()
            do throws(StoreError) {
                let grant = try await counters.grantLease(
                    counter: rate.name, perMinute: rate.perMinute, requested: request.units, minimum: request.minimum, at: asked)
                let now = clock()
                let recovered = rate.state.withLock { state in
                    _ = state.lease.receive(grant, cost: 0, at: now)
                    state.grant = nil
                    defer {
                        state.failingSince = nil
                        state.fallback = nil
                    }
                    return state.failingSince != nil
                }
                if recovered { logger.notice("shared limit reachable again", metadata: ["counter": "\(rate.name)"]) }
            } catch {
                let now = clock()
                let first = rate.state.withLock { state in
                    state.grant = nil
                    state.nextAttempt = now + Self.retryInterval
                    defer { state.failingSince = state.failingSince ?? now }
                    return state.failingSince == nil
                }
                if first {
                    logger.warning(
                        "cannot take a lease from the store: admitting from leases held for hold_seconds, then refusing",
                        metadata: ["counter": "\(rate.name)", "error": "\(error)"])
                }
            }
        }
    }

    /// The shared limits of the scopes, made as needed (a changed limit starts a new lease; the
    /// store keeps the level under the new limit).
    private func sharedRates(_ scopes: [(ScopeKey, ScopeLimits)], at now: Double) -> [SharedRate] {
        var wanted: [(CounterKey, Int)] = []
        for (key, limits) in scopes {
            if let perMinute = limits.requestsPerMinute { wanted.append((CounterKey(scope: key, kind: .requests), perMinute)) }
            if let perMinute = limits.tokensPerMinute { wanted.append((CounterKey(scope: key, kind: .tokens), perMinute)) }
        }
        guard !wanted.isEmpty else { return [] }
        return rates.withLock { rates in
            wanted.map { key, perMinute in
                if let rate = rates[key], rate.perMinute == perMinute { return rate }
                let rate = SharedRate(key: key, perMinute: perMinute, settings: settings, at: now)
                rates[key] = rate
                return rate
            }
        }
    }

    private func addHeaders(_ headers: inout RateLimitHeaders, _ rates: [SharedRate], at now: Double) {
        for rate in rates {
            let snapshot = rate.state.withLock { $0.lease.snapshot(at: now) }
            switch rate.key.kind {
            case .requests:
                if headers.requests.map({ snapshot.remainingShare < $0.remainingShare }) ?? true { headers.requests = snapshot }
            case .tokens:
                if headers.tokens.map({ snapshot.remainingShare < $0.remainingShare }) ?? true { headers.tokens = snapshot }
            }
        }
    }

    /// When the store first failed for `caller`'s first shared rate limit, if it is failing (for
    /// tests and the admin API).
    func failingSince(of caller: CallerIdentity) -> Double? {
        let keys = Self.scopes(of: caller).flatMap { key, _ in [CounterKey(scope: key, kind: .requests), CounterKey(scope: key, kind: .tokens)] }
        return rates.withLock { rates in keys.compactMap { rates[$0] }.first }?.state.withLock { $0.failingSince }
    }

    /// The caller's scopes with limits, broadest first.
    static func scopes(of caller: CallerIdentity) -> [(ScopeKey, ScopeLimits)] {
        var scopes: [(ScopeKey, ScopeLimits)] = []
        if !caller.tenantLimits.isUnlimited {
            scopes.append((ScopeKey(scope: .tenant, tenantID: caller.tenantID, id: caller.tenantID), caller.tenantLimits))
        }
        if !caller.principalLimits.isUnlimited {
            scopes.append((ScopeKey(scope: .principal, tenantID: caller.tenantID, id: caller.principalID), caller.principalLimits))
        }
        if let keyID = caller.keyID, !caller.keyLimits.isUnlimited {
            scopes.append((ScopeKey(scope: .key, tenantID: caller.tenantID, id: keyID), caller.keyLimits))
        }
        return scopes
    }

    // MARK: Background work

    /// Gives back the unused units of expired leases and forgets limits unused for a while.
    func returnExpiredLeases(at now: Double) async {
        let idleAfter = max(4 * settings.holdSeconds, 120)
        let due: [(SharedRate, LeaseReturn)] = rates.withLock { rates in
            var due: [(SharedRate, LeaseReturn)] = []
            for (key, rate) in rates {
                let (returned, idle) = rate.state.withLock { state in
                    (state.lease.takeReturn(at: now), state.grant == nil && now - state.lastUsed > idleAfter)
                }
                if let returned { due.append((rate, returned)) }
                if idle && returned == nil { rates[key] = nil }
            }
            return due
        }
        for (rate, returned) in due {
            // A return that fails leaves the units charged: the shared limit errs on the safe side.
            _ = try? await counters.refundLease(
                counter: rate.name, perMinute: rate.perMinute, units: returned.units, of: returned.charge, at: clock())
        }
    }

    /// Adds the spend made since the last flush to the store and brings the others' spend into
    /// the local budgets. A failed flush keeps its spend for the next one.
    func flushSpend(at now: Double) async {
        let batch: [(ScopeKey, Money)] = spending.withLock { state in
            var batch: [(ScopeKey, Money)] = []
            for (key, scope) in state.scopes {
                if scope.pending == .zero && now - scope.lastUsed > 120 {
                    state.scopes[key] = nil
                    continue
                }
                batch.append((key, scope.pending))
                state.scopes[key]?.pending = .zero
            }
            return batch
        }
        for (key, amount) in batch {
            let name = Self.spendScopeName(key)
            do throws(StoreError) {
                let totals =
                    amount == .zero
                    ? try await counters.spend(scope: name, at: now) : try await counters.addSpend(scope: name, amount: amount, at: now)
                let others = spending.withLock { state in
                    state.failingSince = nil
                    return state.scopes[key]?.learn(totals, flushed: amount)
                }
                if let others, others.today != .zero || others.thisMonth != .zero {
                    local.recordSharedSpend(key, today: others.today, thisMonth: others.thisMonth, at: now)
                }
            } catch {
                let first = spending.withLock { state in
                    state.scopes[key, default: SpendScope(lastUsed: now)].pending += amount
                    defer { state.failingSince = state.failingSince ?? now }
                    return state.failingSince == nil
                }
                if first { logger.warning("cannot add spend to the store; kept for the next flush", metadata: ["error": "\(error)"]) }
            }
        }
    }

    /// The store's name of a scope's spend counter: `tenant:acme`, `principal:acme:bob`, `key:acme:<id>`.
    static func spendScopeName(_ key: ScopeKey) -> String {
        key.scope == .tenant ? "tenant:\(key.tenantID)" : "\(key.scope.rawValue):\(key.tenantID):\(key.id)"
    }
}

/// Which limit of which scope: the key of a shared counter.
struct CounterKey: Sendable, Hashable {
    enum Kind: String, Sendable { case requests = "rpm", tokens = "tpm" }
    var scope: ScopeKey
    var kind: Kind

    /// The store's counter name: `rpm:tenant:acme`, `tpm:principal:acme:bob`, `rpm:key:acme:<id>`.
    var name: String { "\(kind.rawValue):\(SharedAdmissionLedger.spendScopeName(scope))" }
}

/// One shared limit in this replica: its lease and the grant in flight, under one lock (held for
/// arithmetic only, never across the store call).
final class SharedRate: Sendable {
    let key: CounterKey
    let name: String
    let perMinute: Int
    let state: Mutex<State>

    struct State {
        var lease: RateLease
        /// The one grant in flight for this limit.
        var grant: Task<Void, Never>?
        /// The first failed store call since the last answer.
        var failingSince: Double?
        /// This replica's share of the limit while the store is out of reach (starts empty).
        var fallback: RateLimiter?
        var nextAttempt = -Double.infinity
        var lastUsed: Double
    }

    init(key: CounterKey, perMinute: Int, settings: LeaseSettings, at now: Double) {
        self.key = key
        self.name = key.name
        self.perMinute = perMinute
        state = Mutex(State(lease: RateLease(perMinute: perMinute, settings: settings, at: now), lastUsed: now))
    }
}

/// What an admitted request settles in a shared ledger.
struct SharedCharges: Sendable {
    /// Scopes with a budget (at most three).
    var budgets: [ScopeKey]
    /// Token limits whose estimate is corrected by the real usage.
    var tokens: [SharedRate] = []

    var isEmpty: Bool { budgets.isEmpty && tokens.isEmpty }
}

/// A budget scope's spend as this replica knows it.
struct SpendScope: Sendable {
    /// Spent here, not yet added to the store.
    var pending = Money.zero
    /// The store's windows this replica last saw, its own spend added to them and the others'.
    var day = 0
    var month = 0
    var mineToday: Int64 = 0
    var mineThisMonth: Int64 = 0
    var othersToday: Int64 = 0
    var othersThisMonth: Int64 = 0
    var lastUsed: Double

    init(lastUsed: Double) { self.lastUsed = lastUsed }

    mutating func add(_ cost: Money, at now: Double) {
        pending += cost
        lastUsed = max(lastUsed, now)
    }

    /// Takes in the store's totals after `flushed` was added: returns what the others spent since
    /// the last flush (for the local budgets).
    mutating func learn(_ totals: SpendTotals, flushed: Money) -> (today: Money, thisMonth: Money) {
        if totals.day != day {
            day = totals.day
            mineToday = 0
            othersToday = 0
        }
        if totals.month != month {
            month = totals.month
            mineThisMonth = 0
            othersThisMonth = 0
        }
        let (today, todayOverflow) = mineToday.addingReportingOverflow(flushed.nanodollars)
        mineToday = todayOverflow ? .max : today
        let (month, monthOverflow) = mineThisMonth.addingReportingOverflow(flushed.nanodollars)
        mineThisMonth = monthOverflow ? .max : month
        let othersNowToday = max(totals.spentToday.nanodollars - mineToday, 0)
        let othersNowMonth = max(totals.spentThisMonth.nanodollars - mineThisMonth, 0)
        defer {
            othersToday = max(othersToday, othersNowToday)
            othersThisMonth = max(othersThisMonth, othersNowMonth)
        }
        return (Money(nanodollars: max(othersNowToday - othersToday, 0)), Money(nanodollars: max(othersNowMonth - othersThisMonth, 0)))
    }
}

/// The replicas' spend in batches: what is pending per scope, and whether the store answers.
struct SpendState: Sendable {
    var scopes: [ScopeKey: SpendScope] = [:]
    /// The first failed flush since the last one that worked.
    var failingSince: Double?
}

extension ScopeLimits {
    /// These limits without the rate limits (which a shared ledger keeps in leases).
    var withoutRates: ScopeLimits {
        var limits = self
        limits.requestsPerMinute = nil
        limits.tokensPerMinute = nil
        return limits
    }
}

/// Runs a shared ledger's background work while the gateway runs: spend flushed every
/// `flushInterval`, expired leases given back.
struct SharedLedgerService: Service {
    let ledger: SharedAdmissionLedger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(ledger.flushInterval))
                let now = ledger.clock()
                await ledger.flushSpend(at: now)
                await ledger.returnExpiredLeases(at: now)
            }
        }
        // The last batch of spend, so that a stopping replica does not lose it.
        await ledger.flushSpend(at: ledger.clock())
    }
}
