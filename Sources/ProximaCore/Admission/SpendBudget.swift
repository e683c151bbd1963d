/// A scope's spend against its daily and monthly budgets, counted in UTC calendar days and months.
///
/// A request is admitted while the spend of the current day and month is below each budget; its
/// cost is known only when its answer ends (usage × the serving endpoint's price) and is added to
/// the windows of that moment. So the spend can pass a budget by what was already running when it
/// was reached: the overshoot is at most the cost of the requests in flight at the crossing (with
/// a concurrency cap C and a `max_tokens` cap, at most C × the largest answer's cost). A budget of
/// zero refuses everything.
///
/// Times are Unix seconds (the windows are calendar ones); NaN counts as 1970-01-01.
public struct SpendBudget: Sendable, Equatable {
    public var dailyLimit: Money?
    public var monthlyLimit: Money?
    /// The day (days since 1970-01-01) `spentToday` belongs to.
    public private(set) var day: Int
    /// The month (months since January 1970) `spentThisMonth` belongs to.
    public private(set) var month: Int
    public private(set) var spentToday: Money = .zero
    public private(set) var spentThisMonth: Money = .zero

    public init(dailyLimit: Money?, monthlyLimit: Money?, at unixTime: Double) {
        self.dailyLimit = dailyLimit
        self.monthlyLimit = monthlyLimit
        day = UTCCalendar.window(.day, at: unixTime).number
        month = UTCCalendar.window(.month, at: unixTime).number
    }

    /// The budgets of a scope's limits, in dollars.
    public init(limits: ScopeLimits, at unixTime: Double) {
        self.init(
            dailyLimit: limits.dailyBudgetUSD.map(Money.init(dollars:)),
            monthlyLimit: limits.monthlyBudgetUSD.map(Money.init(dollars:)), at: unixTime)
    }

    public var isUnlimited: Bool { dailyLimit == nil && monthlyLimit == nil }

    /// Spend of the day or month holding `unixTime`: zero once that window has passed. A time
    /// before the current window (a clock stepped back) sees the current window's spend.
    public func spent(_ period: BudgetPeriod, at unixTime: Double) -> Money {
        let window = UTCCalendar.window(period, at: unixTime)
        switch period {
        case .day: return window.number > day ? .zero : spentToday
        case .month: return window.number > month ? .zero : spentThisMonth
        }
    }

    /// Whether a request may start at `unixTime`. When both budgets are spent, the refusal names
    /// the month, which resets no earlier than the day.
    public func check(at unixTime: Double) -> BudgetCheck {
        if let monthlyLimit, let refusal = refusal(.month, limit: monthlyLimit, at: unixTime) { return refusal }
        if let dailyLimit, let refusal = refusal(.day, limit: dailyLimit, at: unixTime) { return refusal }
        return .withinBudget
    }

    private func refusal(_ period: BudgetPeriod, limit: Money, at unixTime: Double) -> BudgetCheck? {
        let window = UTCCalendar.window(period, at: unixTime)
        let number = period == .day ? day : month
        let spent = window.number > number ? .zero : (period == .day ? spentToday : spentThisMonth)
        guard spent >= limit else { return nil }
        let wait = AdmissionArithmetic.seconds(window.end - AdmissionArithmetic.time(unixTime, fallback: 0))
        return BudgetCheck(exhausted: period, limit: limit, spent: spent, retryAfter: wait)
    }

    /// Adds the cost of an answer that ended at `unixTime`, starting a new day or month when the
    /// time has passed into one. A time earlier than the current windows (a clock stepped back)
    /// counts in the current windows.
    public mutating func record(_ spend: Money, at unixTime: Double) {
        let today = UTCCalendar.window(.day, at: unixTime).number
        if today > day {
            day = today
            spentToday = .zero
        }
        let thisMonth = UTCCalendar.window(.month, at: unixTime).number
        if thisMonth > month {
            month = thisMonth
            spentThisMonth = .zero
        }
        spentToday += spend
        spentThisMonth += spend
    }

    /// Adds spend counted elsewhere (other replicas, learnt from the store's shared counters) to
    /// the day and the month holding `unixTime`; the two differ when the others spent on earlier
    /// days of the month.
    public mutating func recordShared(today: Money, thisMonth: Money, at unixTime: Double) {
        record(.zero, at: unixTime)
        spentToday += today
        spentThisMonth += thisMonth
    }

    /// New budgets (a reload or an admin change), keeping what was spent.
    public mutating func update(dailyLimit: Money?, monthlyLimit: Money?) {
        self.dailyLimit = dailyLimit
        self.monthlyLimit = monthlyLimit
    }
}

/// The answer of a ``SpendBudget`` to one request.
public struct BudgetCheck: Sendable, Equatable {
    /// The budget that is spent, `nil` when the request may start.
    public var exhausted: BudgetPeriod?
    public var limit: Money
    public var spent: Money
    /// Seconds until the spent window ends (0 when within budget).
    public var retryAfter: Double

    public static let withinBudget = BudgetCheck(exhausted: nil, limit: .zero, spent: .zero, retryAfter: 0)

    public var isWithinBudget: Bool { exhausted == nil }
}
