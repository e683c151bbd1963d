/// Reads a prompt once into the sets `PromptFeatures` compares.
struct PromptScanner {
    var words = Set<String>()
    var numbers = Set<String>()
    var units = Set<String>()
    var dates = Set<String>()
    var negations = 0
    var polarity: UInt64 = 0
    var reversedStems = Set<String>()
    var entities = Set<String>()
    var directions = Set<String>()
    var quoted = Set<String>()
    var code = Set<String>()
    var audience = Set<String>()

    /// Lower-case words seen so far, for the context of the next one.
    private var previous: [String] = []
    private var pendingDirection: String?

    mutating func scan(_ text: String) {
        // Quoted and backticked spans first; backticked code leaves the text, quoted text stays.
        var cleaned = ""
        cleaned.reserveCapacity(text.utf8.count)
        var span: String?
        var spanIsCode = false
        var spanStart = cleaned.endIndex
        for character in text {
            switch character {
            case "`":
                if let content = span, spanIsCode {
                    let trimmed = content.promptTrimmingSpaces
                    if !trimmed.isEmpty { code.insert(trimmed) }
                    span = nil
                    cleaned.append(" ")
                } else if span == nil {
                    span = ""
                    spanIsCode = true
                    spanStart = cleaned.endIndex
                } else {
                    span?.append(character)
                }
            case "\"", "\u{201C}", "\u{201D}":
                if let content = span, !spanIsCode {
                    let trimmed = content.promptTrimmingSpaces.lowercased()
                    if !trimmed.isEmpty { quoted.insert(trimmed) }
                    span = nil
                    cleaned.append(" ")
                } else if span == nil {
                    span = ""
                    spanIsCode = false
                    cleaned.append(" ")
                } else {
                    span?.append(character)
                }
            case "\u{2018}", "\u{2019}":
                if span != nil { span?.append("'") }
                if !(span != nil && spanIsCode) { cleaned.append("'") }
            default:
                if span != nil { span?.append(character) }
                if !(span != nil && spanIsCode) { cleaned.append(character) }
            }
        }
        // An unclosed backtick is not code: its text goes back into the prompt.
        if let content = span, spanIsCode {
            cleaned.replaceSubrange(spanStart..<cleaned.endIndex, with: " " + content)
        }

        var sentenceStart = true
        var token = ""
        var sawNewline = false
        for character in cleaned + " " {
            if character.isWhitespace {
                if character.isNewline { sawNewline = true }
                if !token.isEmpty {
                    let endsSentence = scanToken(token, atSentenceStart: sentenceStart)
                    sentenceStart = endsSentence
                    token = ""
                }
                if sawNewline {
                    sentenceStart = true
                    sawNewline = false
                }
            } else {
                token.append(character)
            }
        }
    }

    private static let leadingPunctuation: Set<Character> = ["(", "[", "{", "<", "'", "*", "¿", "¡"]
    private static let trailingPunctuation: Set<Character> = ["?", "!", ".", ",", ";", ":", ")", "]", "}", ">", "'", "*", "…"]
    private static let directionWords: Set<String> = ["to", "from", "into"]
    private static let determiners: Set<String> = ["a", "an", "the", "my", "your", "our", "their"]
    private static let compoundReversers: Set<String> = ["non", "un", "anti", "de", "dis"]

    /// Reads one whitespace-separated token; returns whether it ends a sentence.
    private mutating func scanToken(_ raw: String, atSentenceStart: Bool) -> Bool {
        let leading = Self.leadingPunctuation, trailing = Self.trailingPunctuation
        let endsSentence = raw.last.map { "?!.:".contains($0) } ?? false
        var token = Substring(raw)
        let isCall = token.hasSuffix("()") || token.hasSuffix("();")
        while let last = token.last, trailing.contains(last) { token.removeLast() }
        if token.hasSuffix("()") { token.removeLast(2) }
        while let first = token.first, leading.contains(first) { token.removeFirst() }
        guard !token.isEmpty else { return endsSentence }

        if isCall || Self.looksLikeCode(token) {
            code.insert(String(token))
            words.insert(token.lowercased())
            previous.append(token.lowercased())
            return endsSentence
        }
        scanNumbers(in: token)

        // Words: runs of letters and apostrophes; a hyphenated compound also counts whole.
        let parts = token.split(whereSeparator: { !($0.isLetter || $0 == "'" || $0 == "-") })
        for part in parts {
            let compound = part.promptTrimming("-'")
            guard !compound.isEmpty else { continue }
            let lowerCompound = compound.lowercased()
            if compound.contains("-") {
                words.insert(lowerCompound)
                if let group = PromptLexicon.audience[lowerCompound] { audience.insert(group) }
                if let date = PromptLexicon.dateWords[lowerCompound] { dates.insert(date) }
                for bit in PromptLexicon.polarity[lowerCompound] ?? [] { polarity |= 1 << UInt64(bit) }
                let pieces = lowerCompound.split(separator: "-")
                if pieces.count >= 2, Self.compoundReversers.contains(String(pieces[0])) {
                    reversedStems.insert(pieces.dropFirst().joined(separator: "-"))
                }
            }
            let pieces = compound.split(separator: "-")
            for (index, piece) in pieces.enumerated() {
                scanWord(piece, atSentenceStart: atSentenceStart && index == 0 && part.startIndex == token.startIndex,
                         inCompound: pieces.count > 1)
            }
        }
        return endsSentence
    }

    private mutating func scanWord(_ original: Substring, atSentenceStart: Bool, inCompound: Bool) {
        var word = original.promptTrimming("'")
        guard !word.isEmpty else { return }
        var lower = word.lowercased()
        if lower.hasSuffix("n't") {
            negations += 1
            lower.removeLast(3)
            word.removeLast(3)
            previous.append("not")
            return
        }
        if lower.hasSuffix("'s") {
            lower.removeLast(2)
            word.removeLast(2)
        } else if lower == "'" {
            return
        }
        guard !lower.isEmpty else { return }
        words.insert(lower)
        let before = previous.last

        if PromptLexicon.negators.contains(lower) { negations += 1 }
        if let number = PromptLexicon.numberWords[lower] { numbers.insert(number) }
        if lower.count >= 2, !inCompound || lower.count >= 3, let unit = PromptLexicon.units[lower] { units.insert(unit) }
        if let date = PromptLexicon.dateWords[lower] {
            dates.insert(date)
        } else if PromptLexicon.ambiguousMonths.contains(lower), let before, PromptLexicon.datePrepositions.contains(before) {
            dates.insert(lower)
        }
        if let before, PromptLexicon.relativeMarkers.contains(before), PromptLexicon.relativeUnits.contains(lower.promptSingular) {
            dates.insert(before + " " + lower.promptSingular)
        }
        if let bits = PromptLexicon.polarity[lower] {
            let counts = !PromptLexicon.particles.contains(lower)
                || previous.suffix(2).contains(where: { PromptLexicon.particleVerbs.contains($0) })
            if counts {
                for bit in bits { polarity |= 1 << UInt64(bit) }
            }
        }
        if !inCompound {
            for prefix in PromptLexicon.reversingPrefixes where lower.hasPrefix(prefix) && lower.utf8.count >= prefix.utf8.count + 3 {
                reversedStems.insert(String(lower.dropFirst(prefix.count)))
            }
        }
        if let group = PromptLexicon.audience[lower] ?? (lower.hasSuffix("s") ? PromptLexicon.audience[String(lower.dropLast())] : nil) {
            audience.insert(group)  // "childs" is "child's" without its apostrophe
        }

        // Names: acronyms anywhere, capitalised words not at the start of a sentence.
        let uppercase = word.reduce(0) { $0 + ($1.isUppercase ? 1 : 0) }
        let isAcronym = uppercase >= 2 && !word.contains(where: \.isLowercase)
        let isInnerCapital = uppercase >= 1 && word.first?.isLowercase == true
        let isCapitalised = word.first?.isUppercase == true && !atSentenceStart && !PromptLexicon.notEntities.contains(lower)
        let isName = (isAcronym || isInnerCapital || isCapitalised) && !PromptLexicon.notEntities.contains(lower)
        if isName { entities.insert(lower) }
        if let direction = pendingDirection { directions.insert(direction + " " + lower) }
        if Self.directionWords.contains(lower) {
            pendingDirection = lower == "into" ? "to" : lower
        } else if !Self.determiners.contains(lower) {
            pendingDirection = nil
        }
        previous.append(lower)
    }

    /// Numbers in a token: digits with thousands separators, decimals and clock times, with what is
    /// glued to them (a currency before; a unit, am/pm, an ordinal or "k" after).
    private mutating func scanNumbers(in token: Substring) {
        let characters = Array(token)
        var index = 0
        while index < characters.count {
            guard characters[index].isASCII && characters[index].isNumber else {
                if let unit = PromptLexicon.units[String(characters[index])], !characters[index].isLetter { units.insert(unit) }
                index += 1
                continue
            }
            var digits = ""
            var isTime = false
            while index < characters.count {
                let character = characters[index]
                if character.isASCII && character.isNumber {
                    digits.append(character)
                } else if (character == "," || character == "." || character == ":") && index + 1 < characters.count
                            && characters[index + 1].isASCII && characters[index + 1].isNumber {
                    if character == "." { digits.append(".") }
                    if character == ":" { digits.append(":"); isTime = true }
                } else {
                    break
                }
                index += 1
            }
            if digits.contains(".") && !isTime {
                while digits.hasSuffix("0") { digits.removeLast() }
                if digits.hasSuffix(".") { digits.removeLast() }
            }
            var suffix = ""
            while index < characters.count && characters[index].isLetter {
                suffix.append(characters[index])
                index += 1
            }
            let lowerSuffix = suffix.lowercased()
            switch lowerSuffix {
            case "":
                break
            case "am", "pm", "a", "p":
                dates.insert(lowerSuffix.hasPrefix("a") ? "am" : "pm")
            case "st", "nd", "rd", "th", "s":
                break
            case "k":
                digits += "000"
            default:
                if let unit = PromptLexicon.units[lowerSuffix] {
                    units.insert(unit)
                } else {
                    entities.insert(digits + lowerSuffix)
                    words.insert(digits + lowerSuffix)
                }
            }
            // Strip leading zeros of plain integers ("007" is 7), not of clock times.
            if !isTime && !digits.contains(".") {
                while digits.count > 1 && digits.hasPrefix("0") { digits.removeFirst() }
            }
            numbers.insert(digits)
        }
    }

    /// snake_case, camelCase (a lower-case letter then an upper-case one after the first letter),
    /// dotted.names, paths, .extensions and --flags.
    static func looksLikeCode(_ token: Substring) -> Bool {
        let scalars = Array(token.unicodeScalars)
        if token.hasPrefix("--") && scalars.count > 2 { return true }
        if token.hasPrefix(".") && scalars.count > 1 && scalars[1].properties.isAlphabetic { return true }
        var slashes = 0
        for (index, scalar) in scalars.enumerated() {
            switch scalar {
            case "_" where index > 0 && index + 1 < scalars.count: return true
            case "/": slashes += 1
            case "." where index > 0 && index + 1 < scalars.count:
                if scalars[index - 1].properties.isAlphabetic && scalars[index + 1].properties.isAlphabetic {
                    let lower = token.lowercased()
                    if !["e.g", "i.e", "a.m", "p.m", "u.k", "u.s", "etc"].contains(where: { lower.hasPrefix($0) }) { return true }
                }
            default:
                if index > 1 && scalar.properties.isUppercase && scalars[index - 1].properties.isLowercase
                    && scalars[0].properties.isLowercase {
                    return true
                }
            }
        }
        if slashes > 0 && (token.hasPrefix("/") || token.hasPrefix("~") || token.hasPrefix("./") || slashes >= 2) { return true }
        return false
    }
}

fileprivate extension StringProtocol {
    var promptTrimmingSpaces: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }

    func promptTrimming(_ set: String) -> Substring {
        let sub = self[...]
        let start = sub.firstIndex(where: { !set.contains($0) }) ?? sub.endIndex
        let end = sub.lastIndex(where: { !set.contains($0) }).map { sub.index(after: $0) } ?? start
        return start < end ? Substring(sub[start..<end]) : ""
    }
}

fileprivate extension String {
    /// A crude singular: "weeks" → "week".
    var promptSingular: String { hasSuffix("s") && count > 3 ? String(dropLast()) : self }
}
