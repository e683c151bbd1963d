import Benchmark
import ProximaCore

// MARK: - 5. Admission

// What admission adds to a request: the checks over its key, principal and tenant, the charges,
// and the end of the request (in flight released, token estimate corrected, spend recorded). The
// limits are high enough that every request is admitted, the common case; time advances 1 ms per
// request (Unix time, so the budget windows are real calendar ones).
func admissionBenchmarks() {
    let start = 1_795_485_600.0
    let request = AdmissionRequest(estimatedTokens: 2_400, maxTokens: 512)
    let price = TokenPrice(inputPerMillion: 0.15, outputPerMillion: 0.60)
    let keyLimits = ScopeLimits(requestsPerMinute: 1_000_000_000, tokensPerMinute: 1_000_000_000_000, concurrentRequests: 100, maxTokens: 4_096)
    let principalLimits = ScopeLimits(tokensPerMinute: 1_000_000_000_000)
    let tenantLimits = ScopeLimits(
        requestsPerMinute: 1_000_000_000, tokensPerMinute: 1_000_000_000_000, dailyBudgetUSD: 1_000_000_000,
        monthlyBudgetUSD: 1_000_000_000)

    // Check the path once: a refusal here would make the benchmark measure the refusal path.
    var checkKey: ScopeAllowance? = ScopeAllowance(scope: .key, limits: keyLimits, at: start)
    var checkPrincipal: ScopeAllowance? = ScopeAllowance(scope: .principal, limits: principalLimits, at: start)
    var checkTenant: ScopeAllowance? = ScopeAllowance(scope: .tenant, limits: tenantLimits, at: start)
    let (first, firstTicket) = AdmissionDecision.admit(
        request, at: start, key: &checkKey, principal: &checkPrincipal, tenant: &checkTenant)
    precondition(first.isAdmitted && firstTicket != nil && first.headers.requests != nil, "the benchmark request is not admitted")

    // One request's whole admission: admit over three scopes, then finish on each.
    Benchmark("Admission admit and finish, 3 scopes") { benchmark in
        var key: ScopeAllowance? = ScopeAllowance(scope: .key, limits: keyLimits, at: start)
        var principal: ScopeAllowance? = ScopeAllowance(scope: .principal, limits: principalLimits, at: start)
        var tenant: ScopeAllowance? = ScopeAllowance(scope: .tenant, limits: tenantLimits, at: start)
        benchmark.startMeasurement()
        var time = start
        for _ in benchmark.scaledIterations {
            time += 0.001
            let (decision, ticket) = AdmissionDecision.admit(request, at: time, key: &key, principal: &principal, tenant: &tenant)
            if let ticket {
                key?.finish(ticket, promptTokens: 1_843, completionTokens: 312, price: price, at: time)
                principal?.finish(ticket, promptTokens: 1_843, completionTokens: 312, price: price, at: time)
                tenant?.finish(ticket, promptTokens: 1_843, completionTokens: 312, price: price, at: time)
            }
            blackHole(decision)
        }
    }

    // The header fields of an answer, as strings (what the HTTP edge writes on every response).
    let headers = first.headers
    Benchmark("RateLimitHeaders.fields requests and tokens") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(headers.fields)
        }
    }

    // A replica admitting from its lease, the common case with several replicas: no round trip.
    Benchmark("RateLease.admit from the lease") { benchmark in
        var lease = RateLease(perMinute: 1_000_000_000, settings: LeaseSettings(), at: start)
        var shared = RateLimiter(perMinute: 1_000_000_000, at: start)
        benchmark.startMeasurement()
        var time = start
        for _ in benchmark.scaledIterations {
            time += 0.001
            switch lease.admit(cost: 1, replicas: 3, at: time) {
            case .admitted, .refused: break
            case .needsLease(let wanted):
                let grant = shared.grant(requested: wanted.units, minimum: wanted.minimum, at: time)
                blackHole(lease.receive(grant, cost: 1, at: time))
            }
            if let back = lease.takeReturn(at: time) { blackHole(shared.refund(units: back.units, of: back.charge, at: time)) }
        }
    }
}
