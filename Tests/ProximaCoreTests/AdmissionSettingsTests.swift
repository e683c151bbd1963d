import Foundation
import Testing
@testable import ProximaCore

@Suite struct AdmissionSettingsTests {
    static func decode(_ json: String) throws -> AdmissionSettings {
        try JSONDecoder().decode(AdmissionSettings.self, from: Data(json.utf8))
    }

    @Test func everyScopeIsUnlimitedByDefault() throws {
        let settings = try Self.decode("{}")
        #expect(settings == AdmissionSettings())
        for scope in AdmissionScope.allCases { #expect(settings.limits(for: scope).isUnlimited) }
        #expect(settings.leases == LeaseSettings(tolerance: 0.05, leaseSeconds: 1, holdSeconds: 5))
        #expect(settings.problems(at: "limits").isEmpty)
    }

    @Test func limitsDecodeFromTheirSnakeCaseKeys() throws {
        let settings = try Self.decode(
            """
            {"key": {"requests_per_minute": 60, "tokens_per_minute": 90000, "concurrent_requests": 4, "max_tokens": 2048},
             "tenant": {"daily_budget_usd": 25.5, "monthly_budget_usd": 500},
             "leases": {"tolerance": 0.02, "lease_seconds": 0.5, "hold_seconds": 2}}
            """)
        #expect(settings.key == ScopeLimits(requestsPerMinute: 60, tokensPerMinute: 90_000, concurrentRequests: 4, maxTokens: 2048))
        #expect(settings.tenant == ScopeLimits(dailyBudgetUSD: 25.5, monthlyBudgetUSD: 500))
        #expect(settings.principal.isUnlimited)
        #expect(settings.leases == LeaseSettings(tolerance: 0.02, leaseSeconds: 0.5, holdSeconds: 2))
        #expect(settings.problems(at: "limits").isEmpty)
    }

    @Test func aMisspeltKeyIsRefusedWhenDecoding() {
        #expect(throws: DecodingError.self) { try Self.decode(#"{"key": {"request_per_minute": 60}}"#) }
        #expect(throws: DecodingError.self) { try Self.decode(#"{"tenants": {}}"#) }
    }

    @Test func eachOutOfRangeValueIsNamedByItsKey() {
        let settings = AdmissionSettings(
            key: ScopeLimits(requestsPerMinute: 0, tokensPerMinute: -5, concurrentRequests: 2_000_000, maxTokens: 0),
            principal: ScopeLimits(dailyBudgetUSD: .nan, monthlyBudgetUSD: -1),
            tenant: ScopeLimits(tokensPerMinute: Int.max, dailyBudgetUSD: .infinity),
            leases: LeaseSettings(tolerance: 0.9, leaseSeconds: .nan, holdSeconds: 0))
        let problems = settings.problems(at: "limits")
        #expect(
            Set(problems.map(\.keyPath)) == [
                "limits.key.requests_per_minute", "limits.key.tokens_per_minute", "limits.key.concurrent_requests",
                "limits.key.max_tokens", "limits.principal.daily_budget_usd", "limits.principal.monthly_budget_usd",
                "limits.tenant.tokens_per_minute", "limits.tenant.daily_budget_usd", "limits.leases.tolerance",
                "limits.leases.lease_seconds", "limits.leases.hold_seconds",
            ])
        #expect(problems.count == 11)
        #expect(problems.first { $0.keyPath == "limits.key.requests_per_minute" }?.message == "must be between 1 and 1000000000, got 0")
        #expect(problems.first { $0.keyPath == "limits.principal.daily_budget_usd" }?.message.contains("nan") == true)
    }

    @Test func aHoldShorterThanALeaseIsRefused() {
        let leases = LeaseSettings(tolerance: 0.05, leaseSeconds: 3, holdSeconds: 2)
        #expect(leases.problems(at: "limits.leases").map(\.keyPath) == ["limits.leases.hold_seconds"])
        #expect(leases.clamped.holdSeconds == 3)
    }

    @Test func clampedLeaseSettingsAreAlwaysUsable() {
        let wild = LeaseSettings(tolerance: .nan, leaseSeconds: -.infinity, holdSeconds: .infinity).clamped
        #expect(wild.problems(at: "leases").isEmpty)
        #expect(wild.tolerance == 0.05)
    }

    @Test func aZeroBudgetIsAllowed() {
        #expect(ScopeLimits(dailyBudgetUSD: 0, monthlyBudgetUSD: 0).problems(at: "limits.key").isEmpty)
    }
}
