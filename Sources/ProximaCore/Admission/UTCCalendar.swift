/// A date in the proleptic Gregorian calendar, in UTC.
public struct UTCDate: Sendable, Hashable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int

    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    public var description: String {
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)-\(two(month))-\(two(day))"
    }
}

/// Calendar arithmetic on Unix time in UTC, without Foundation: days and months as budget windows.
/// Unix time has no leap seconds, so every day is 86,400 s and only the Gregorian rules of month
/// lengths and leap years matter.
public enum UTCCalendar {
    public static let secondsPerDay = 86_400

    /// Days since 1970-01-01 of the day holding `unixTime`. NaN counts as 0; times are clamped to
    /// ±10^12 s.
    public static func dayNumber(at unixTime: Double) -> Int {
        let time = AdmissionArithmetic.time(unixTime, fallback: 0)
        return Int((time / Double(secondsPerDay)).rounded(.down))
    }

    /// The date of a day number (days since 1970-01-01).
    public static func date(dayNumber: Int) -> UTCDate {
        // Count from 0000-03-01, so that a year's leap day is its last day, in cycles of 400 years
        // (146,097 days: the Gregorian calendar repeats exactly).
        let days = dayNumber + daysFromYearZeroMarchToEpoch
        let cycle = floorDivision(days, daysPer400Years)
        let dayOfCycle = days - cycle * daysPer400Years
        // Years of 365 days, corrected by the leap days of every 4th year, except every 100th,
        // except every 400th (the cycle's last day).
        let yearOfCycle = (dayOfCycle - dayOfCycle / 1_460 + dayOfCycle / 36_524 - dayOfCycle / 146_096) / 365
        let dayOfYear = dayOfCycle - (365 * yearOfCycle + yearOfCycle / 4 - yearOfCycle / 100)
        // Months from March: 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, (February); the lengths
        // follow (153 * m + 2) / 5, which grows by 153 days every 5 months.
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        let year = cycle * 400 + yearOfCycle + (month <= 2 ? 1 : 0)
        return UTCDate(year: year, month: month, day: day)
    }

    /// The day number (days since 1970-01-01) of a date; months outside 1...12 and days beyond the
    /// month's length roll over into the next ones. Years beyond ±10^6, months beyond ±10^6 and
    /// days beyond ±10^9 are clamped.
    public static func dayNumber(of date: UTCDate) -> Int {
        let dateYear = min(max(date.year, -1_000_000), 1_000_000)
        let dateMonth = min(max(date.month, -1_000_000), 1_000_000)
        let dateDay = min(max(date.day, -1_000_000_000), 1_000_000_000)
        let monthsFromYearZero = dateYear * 12 + (dateMonth - 1)
        let year = floorDivision(monthsFromYearZero, 12)
        let month = monthsFromYearZero - year * 12 + 1
        let marchYear = month <= 2 ? year - 1 : year
        let cycle = floorDivision(marchYear, 400)
        let yearOfCycle = marchYear - cycle * 400
        let monthFromMarch = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * monthFromMarch + 2) / 5 + dateDay - 1
        let dayOfCycle = yearOfCycle * 365 + yearOfCycle / 4 - yearOfCycle / 100 + dayOfYear
        return cycle * daysPer400Years + dayOfCycle - daysFromYearZeroMarchToEpoch
    }

    /// Months since January 1970 of a date.
    public static func monthNumber(of date: UTCDate) -> Int {
        (min(max(date.year, -1_000_000), 1_000_000) - 1970) * 12 + (min(max(date.month, -1_000_000), 1_000_000) - 1)
    }

    /// The window of `period` that holds `unixTime`: its number and its bounds in Unix seconds.
    public static func window(_ period: BudgetPeriod, at unixTime: Double) -> CalendarWindow {
        let day = dayNumber(at: unixTime)
        switch period {
        case .day:
            return CalendarWindow(
                number: day, start: Double(day) * Double(secondsPerDay), end: Double(day + 1) * Double(secondsPerDay))
        case .month:
            let date = date(dayNumber: day)
            let first = dayNumber(of: UTCDate(year: date.year, month: date.month, day: 1))
            let next = dayNumber(of: UTCDate(year: date.year, month: date.month + 1, day: 1))
            return CalendarWindow(
                number: monthNumber(of: date), start: Double(first) * Double(secondsPerDay),
                end: Double(next) * Double(secondsPerDay))
        }
    }

    private static let daysPer400Years = 146_097
    /// Days from 0000-03-01 to 1970-01-01.
    private static let daysFromYearZeroMarchToEpoch = 719_468

    private static func floorDivision(_ value: Int, _ divisor: Int) -> Int {
        let quotient = value / divisor
        return value % divisor < 0 ? quotient - 1 : quotient
    }
}

/// A calendar period a budget is counted over.
public enum BudgetPeriod: String, Sendable, Equatable, CaseIterable {
    case day, month
}

/// One day or one month: its number (days or months since 1970's first) and its bounds in Unix
/// seconds, start included, end excluded.
public struct CalendarWindow: Sendable, Equatable {
    public var number: Int
    public var start: Double
    public var end: Double
}
