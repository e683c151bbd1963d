import Foundation
import Testing
@testable import ProximaCore

@Suite struct UTCCalendarTests {
    @Test(arguments: [
        (0, UTCDate(year: 1970, month: 1, day: 1)), (-1, UTCDate(year: 1969, month: 12, day: 31)),
        (11_016, UTCDate(year: 2000, month: 2, day: 29)), (19_782, UTCDate(year: 2024, month: 2, day: 29)),
        (19_417, UTCDate(year: 2023, month: 3, day: 1)), (-25_508, UTCDate(year: 1900, month: 3, day: 1)),
        (2_932_896, UTCDate(year: 9999, month: 12, day: 31)), (-719_162, UTCDate(year: 1, month: 1, day: 1)),
    ])
    func knownDaysHaveTheirDates(dayNumber: Int, date: UTCDate) {
        #expect(UTCCalendar.date(dayNumber: dayNumber) == date)
        #expect(UTCCalendar.dayNumber(of: date) == dayNumber)
    }

    @Test func februaryOf1900HadNoLeapDay() {
        #expect(UTCCalendar.date(dayNumber: UTCCalendar.dayNumber(of: UTCDate(year: 1900, month: 2, day: 28)) + 1) == UTCDate(year: 1900, month: 3, day: 1))
    }

    /// Every day agrees with Foundation's Gregorian calendar in UTC (from 1583 on, where
    /// Foundation no longer uses the Julian calendar), on seeded random days.
    @Test func datesAgreeWithFoundation() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        var random = SplitMix64(seed: 42)
        for _ in 0..<5_000 {
            let day = -140_000 + Int(random.next() % 3_070_000)
            let components = calendar.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(day) * 86_400 + 3_600))
            let expected = UTCDate(year: components.year ?? 0, month: components.month ?? 0, day: components.day ?? 0)
            #expect(UTCCalendar.date(dayNumber: day) == expected, "day \(day)")
        }
    }

    @Test func dayNumbersAndDatesRoundTripOverManyMillennia() {
        var random = SplitMix64(seed: 7)
        for _ in 0..<20_000 {
            let day = Int(random.next() % 20_000_000) - 10_000_000
            #expect(UTCCalendar.dayNumber(of: UTCCalendar.date(dayNumber: day)) == day)
        }
    }

    @Test func monthsOutsideTheYearRollOver() {
        #expect(UTCCalendar.dayNumber(of: UTCDate(year: 2024, month: 13, day: 1)) == UTCCalendar.dayNumber(of: UTCDate(year: 2025, month: 1, day: 1)))
        #expect(UTCCalendar.dayNumber(of: UTCDate(year: 2024, month: 0, day: 1)) == UTCCalendar.dayNumber(of: UTCDate(year: 2023, month: 12, day: 1)))
        #expect(UTCCalendar.dayNumber(of: UTCDate(year: Int.max, month: Int.min, day: Int.max)) != 0)
    }

    @Test func windowsAreCalendarDaysAndMonthsInUTC() {
        let midFebruary = 1_707_998_400.0  // 2024-02-15T12:00:00Z
        let day = UTCCalendar.window(.day, at: midFebruary)
        #expect(day.start == 1_707_955_200)  // 2024-02-15T00:00:00Z
        #expect(day.end == 1_708_041_600)
        let month = UTCCalendar.window(.month, at: midFebruary)
        #expect(month.start == 1_706_745_600)  // 2024-02-01
        #expect(month.end == 1_709_251_200)  // 2024-03-01: 29 days later
        #expect(month.number == (2024 - 1970) * 12 + 1)
        let december = UTCCalendar.window(.month, at: 1_735_603_200)  // 2024-12-31
        #expect(december.end == 1_735_689_600)  // 2025-01-01
        #expect(UTCCalendar.window(.day, at: -0.5).number == -1)
        #expect(UTCCalendar.window(.day, at: .nan).number == 0)
    }
}

@Suite struct MoneyTests {
    @Test func spendIsUsageTimesThePricePerMillionTokens() {
        let price = TokenPrice(inputPerMillion: 0.15, outputPerMillion: 0.60)
        let spend = price.spend(promptTokens: 1_000, completionTokens: 500)
        #expect(spend == Money(nanodollars: 450_000))  // $0.00015 + $0.0003
        #expect(spend.description == "$0.000450")
        #expect(TokenPrice(PricingSettings(inputPerMillion: 3, outputPerMillion: 15)).spend(promptTokens: 1_000_000, completionTokens: 1_000_000) == Money(dollars: 18))
        #expect(TokenPrice(PricingSettings(gpuHour: 2)).spend(promptTokens: 1_000, completionTokens: 1_000) == .zero)
    }

    @Test func sumsOfSmallSpendsAreExact() {
        let price = TokenPrice(inputPerMillion: 0.1, outputPerMillion: 0.1)
        var total = Money.zero
        for _ in 0..<1_000_000 { total += price.spend(promptTokens: 1, completionTokens: 0) }
        #expect(total == Money(dollars: 0.1))
    }

    @Test func unusableAmountsAndPricesNeverTrap() {
        #expect(Money(dollars: .nan) == .zero)
        #expect(Money(dollars: -5) == .zero)
        #expect(Money(dollars: .infinity).nanodollars == Int64.max)
        #expect(Money(nanodollars: Int64.max) + Money(nanodollars: 1) == Money(nanodollars: Int64.max))
        #expect(Money(nanodollars: -1) == .zero)
        let wild = TokenPrice(inputPerMillion: .nan, outputPerMillion: -.infinity)
        #expect(wild == .free)
        #expect(TokenPrice(inputPerMillion: 1e300, outputPerMillion: 0).spend(promptTokens: Int.max, completionTokens: Int.min).nanodollars == Int64.max)
    }
}

@Suite struct SpendBudgetTests {
    static let midnight = 1_707_955_200.0  // 2024-02-15T00:00:00Z

    @Test func aSpentDailyBudgetRefusesUntilMidnightUTC() {
        var budget = SpendBudget(dailyLimit: Money(dollars: 1), monthlyLimit: nil, at: Self.midnight)
        budget.record(Money(dollars: 0.6), at: Self.midnight + 100)
        #expect(budget.check(at: Self.midnight + 200).isWithinBudget)
        budget.record(Money(dollars: 0.5), at: Self.midnight + 300)
        let refused = budget.check(at: Self.midnight + 3_600)
        #expect(refused.exhausted == .day)
        #expect(refused.retryAfter == 86_400 - 3_600)
        #expect(refused.spent == Money(dollars: 1.1))
        #expect(budget.check(at: Self.midnight + 86_400).isWithinBudget)
        budget.record(Money(dollars: 0.2), at: Self.midnight + 86_400)
        #expect(budget.spentToday == Money(dollars: 0.2))
        #expect(budget.spentThisMonth == Money(dollars: 1.3))
    }

    @Test func aSpentMonthNamesTheMonthAndWaitsForItsEnd() {
        var budget = SpendBudget(dailyLimit: Money(dollars: 1), monthlyLimit: Money(dollars: 1.5), at: Self.midnight)
        budget.record(Money(dollars: 1), at: Self.midnight)
        budget.record(Money(dollars: 1), at: Self.midnight + 86_400)
        let refused = budget.check(at: Self.midnight + 86_400)
        #expect(refused.exhausted == .month)
        #expect(refused.retryAfter == 1_709_251_200 - (Self.midnight + 86_400))
        #expect(budget.check(at: 1_709_251_200).isWithinBudget)
    }

    @Test func aZeroBudgetRefusesEverything() {
        let budget = SpendBudget(limits: ScopeLimits(monthlyBudgetUSD: 0), at: Self.midnight)
        #expect(budget.check(at: Self.midnight).exhausted == .month)
    }

    @Test func aClockSteppedBackCountsInTheCurrentWindow() {
        var budget = SpendBudget(dailyLimit: Money(dollars: 1), monthlyLimit: nil, at: Self.midnight)
        budget.record(Money(dollars: 2), at: Self.midnight - 10)
        #expect(budget.spentToday == Money(dollars: 2))
        #expect(budget.check(at: Self.midnight - 10).exhausted == .day)
    }

    /// Requests start while the day's spend is below the budget and pay when they end, so the
    /// spend passes the budget by at most what was in flight when it was reached. Measured on
    /// seeded random traffic: up to 16 requests at once, each costing up to $0.017.
    @Test(arguments: [11 as UInt64, 12, 13])
    func overshootIsBoundedByWhatWasInFlight(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let price = TokenPrice(inputPerMillion: 3, outputPerMillion: 15)
        let concurrency = 16
        var allowance = ScopeAllowance(
            scope: .tenant, limits: ScopeLimits(concurrentRequests: concurrency, dailyBudgetUSD: 1), at: Self.midnight)
        var running: [(end: Double, ticket: AdmissionTicket, prompt: Int, completion: Int)] = []
        var time = Self.midnight
        var inFlightCostAtCrossing: Money?
        var largestInFlightCost = Money.zero
        while time < Self.midnight + 3_000 {
            time += Double(random.next() % 100) / 1_000
            running.sort { $0.end > $1.end }
            while let last = running.last, last.end <= time {
                running.removeLast()
                let wasBelow = allowance.budget.spentToday < Money(dollars: 1)
                allowance.finish(last.ticket, promptTokens: last.prompt, completionTokens: last.completion, price: price, at: last.end)
                if wasBelow && allowance.budget.spentToday >= Money(dollars: 1) {
                    // What was in flight just before: this request and those still running.
                    inFlightCostAtCrossing = running.reduce(price.spend(promptTokens: last.prompt, completionTokens: last.completion)) {
                        $0 + price.spend(promptTokens: $1.prompt, completionTokens: $1.completion)
                    }
                }
            }
            var scope: ScopeAllowance? = allowance
            var none: ScopeAllowance?
            var alsoNone: ScopeAllowance?
            let prompt = 100 + Int(random.next() % 2_000)
            let completion = Int(random.next() % 700)
            let (decision, ticket) = AdmissionDecision.admit(
                AdmissionRequest(estimatedTokens: prompt + 700, maxTokens: 700), at: time, key: &none, principal: &alsoNone,
                tenant: &scope)
            allowance = scope!
            guard decision.isAdmitted, let ticket else { continue }
            running.append((time + 0.5 + Double(random.next() % 5_000) / 1_000, ticket, prompt, completion))
            largestInFlightCost = max(largestInFlightCost, running.reduce(Money.zero) { $0 + price.spend(promptTokens: $1.prompt, completionTokens: $1.completion) })
        }
        for request in running {
            allowance.finish(request.ticket, promptTokens: request.prompt, completionTokens: request.completion, price: price, at: time)
        }
        let spent = allowance.budget.spentToday
        let overshoot = Money(nanodollars: spent.nanodollars - Money(dollars: 1).nanodollars)
        let crossing = try #require(inFlightCostAtCrossing)
        #expect(spent > Money(dollars: 1))
        #expect(overshoot <= crossing)
        // The documented bound: the concurrency cap times the largest answer's cost.
        #expect(overshoot <= Money(dollars: Double(concurrency) * (2_100 * 3 + 700 * 15) / 1e6))
        #expect(crossing <= largestInFlightCost)
    }
}
