/// A class of false semantic hit that a guard prevents: two prompts that embed close together but ask
/// different questions.
public enum CacheGuard: String, CaseIterable, Sendable {
    /// Different numbers, amounts or units ("£50" against "£500", "2kg" against "2lb").
    case number
    /// Different days, months, times of day or relative days ("Saturday" against "Sunday", "7am" against "7pm").
    case date
    /// One prompt negated or with the opposite polarity word ("enable" against "disable", "safe" against "unsafe").
    case negation
    /// A named entity or acronym of one prompt missing from the other, or the direction between them
    /// reversed ("UK" against "US", "Word to PDF" against "PDF to Word").
    case entity
    /// Different quoted strings.
    case quoted
    /// Different code identifiers (snake_case, camelCase, dotted.names, paths, `backticked`).
    case code
    /// A different audience or owner ("my password" against "my colleague's password", "adults" against "children").
    case scope
}

/// What a prompt says that an embedding tends to blur: numbers, dates, polarity, names, quotes, code and
/// audience. Computed once per cached prompt; `disagreement(with:)` then compares small sets.
public struct PromptFeatures: Sendable {
    /// Every word, lower case (hyphenated words also in their parts), for matching the other prompt's names.
    let words: Set<String>
    let numbers: Set<String>
    let units: Set<String>
    let dates: Set<String>
    let negations: Int
    /// Bit `2 * concept + pole` of `PromptLexicon.polarityGroups`.
    let polarity: UInt64
    /// Stems of words with a reversing prefix ("safe" for "unsafe").
    let reversedStems: Set<String>
    /// Names and acronyms, lower case.
    let entities: Set<String>
    /// "to X" and "from X" ("into" counts as "to"), X the next word after articles and possessives.
    let directions: Set<String>
    let quoted: Set<String>
    let code: Set<String>
    let audience: Set<String>

    public init(_ text: String) {
        var scanner = PromptScanner()
        scanner.scan(text)
        words = scanner.words
        numbers = scanner.numbers
        units = scanner.units
        dates = scanner.dates
        negations = scanner.negations
        polarity = scanner.polarity
        reversedStems = scanner.reversedStems
        entities = scanner.entities
        directions = scanner.directions
        quoted = scanner.quoted
        code = scanner.code
        audience = scanner.audience
    }

    /// The first guard on which the two prompts disagree, or nil when they agree on all.
    public func disagreement(with other: PromptFeatures) -> CacheGuard? {
        // Quoted strings and code first: words inside them would otherwise be blamed on other guards.
        if quoted != other.quoted { return .quoted }
        if code != other.code { return .code }
        if negations != other.negations || Self.polarityConflict(polarity, other.polarity)
            || reversedStems.contains(where: { other.words.contains($0) && !other.reversedStems.contains($0) })
            || other.reversedStems.contains(where: { words.contains($0) && !reversedStems.contains($0) }) {
            return .negation
        }
        if numbers != other.numbers || (!units.isEmpty && !other.units.isEmpty && units != other.units) { return .number }
        if dates != other.dates { return .date }
        if !Self.namesFound(entities, in: other.words) || !Self.namesFound(other.entities, in: words)
            || Self.directionsReversed(self, other) || Self.directionsReversed(other, self) {
            return .entity
        }
        if audience != other.audience { return .scope }
        return nil
    }

    /// Whether a word is a destination in one prompt and a source in the other ("from savings to
    /// current account" against "from current account to savings"), or the two destinations swap
    /// ("Word to PDF" against "PDF to Word").
    static func directionsReversed(_ a: PromptFeatures, _ b: PromptFeatures) -> Bool {
        guard !a.directions.isEmpty, !b.directions.isEmpty else { return false }
        for direction in a.directions where !b.directions.contains(direction) {
            let isDestination = direction.hasPrefix("to ")
            let target = String(direction.dropFirst(isDestination ? 3 : 5))
            if b.directions.contains((isDestination ? "from " : "to ") + target) && !a.directions.contains((isDestination ? "from " : "to ") + target) {
                return true
            }
            guard isDestination, b.words.contains(target) else { continue }
            if b.directions.contains(where: { $0.hasPrefix("to ") && a.words.contains(String($0.dropFirst(3))) && !a.directions.contains($0) }) {
                return true
            }
        }
        return false
    }

    /// Whether some concept is used by both prompts with different poles.
    static func polarityConflict(_ a: UInt64, _ b: UInt64) -> Bool {
        guard a != b else { return false }
        for concept in 0..<32 {
            let left = (a >> UInt64(2 * concept)) & 3, right = (b >> UInt64(2 * concept)) & 3
            if left != 0 && right != 0 && left != right { return true }
        }
        return false
    }

    /// Whether every name appears among `words`, allowing one typo (an edit or a swap of neighbours) in
    /// names of five letters or more, none in short ones ("UK" against "US"); "Austria" is two edits
    /// from "Australia".
    static func namesFound(_ names: Set<String>, in words: Set<String>) -> Bool {
        for name in names where !words.contains(name) {
            let letters = Array(name.utf8)
            guard letters.count >= 5 else { return false }
            let allowed = 1
            let close = words.contains { word in
                let other = Array(word.utf8)
                return abs(other.count - letters.count) <= allowed && other.count >= 5
                    && EditDistance.restricted(letters, other, limit: allowed) <= allowed
            }
            if !close { return false }
        }
        return true
    }
}

/// The two prompts' agreement, for callers that hold only the texts.
public enum PromptAgreement {
    /// The guard on which the prompts disagree, nil when the cached answer may serve the incoming prompt.
    public static func check(_ cached: String, _ incoming: String) -> CacheGuard? {
        PromptFeatures(cached).disagreement(with: PromptFeatures(incoming))
    }
}

/// Optimal string alignment distance (insertions, deletions, substitutions, adjacent transpositions),
/// stopping early once every path exceeds `limit`.
enum EditDistance {
    static func restricted(_ a: [UInt8], _ b: [UInt8], limit: Int) -> Int {
        if a == b { return 0 }
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previousPrevious = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            var rowMinimum = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    value = min(value, previousPrevious[j - 2] + 1)
                }
                current[j] = value
                rowMinimum = min(rowMinimum, value)
            }
            if rowMinimum > limit { return rowMinimum }
            swap(&previousPrevious, &previous)
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
