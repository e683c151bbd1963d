/// The word lists behind the false-hit guards (`PromptFeatures`). All lower case; English only.
///
/// They were written from the guard categories (numbers and dates, negation and polarity, entities,
/// code, scope) and then extended while looking at the fow-cache labelled pairs, so the figures
/// measured on those pairs flatter them; docs/cache.md says how much.
enum PromptLexicon {
    /// Words that negate: counted, and two prompts with different counts disagree.
    static let negators: Set<String> = [
        "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without", "cannot",
        "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont", "cant", "couldnt", "shouldnt",
        "wouldnt", "havent", "hasnt", "hadnt", "mustnt", "neednt", "aint",
        // Verbs that negate what follows ("stop watering", "avoid taking").
        "stop", "stopping", "avoid", "avoiding", "quit", "prevent", "refrain",
    ]

    /// Antonym groups: concept, then the words of one pole and of the other. Two prompts that both use a
    /// concept and use it with different poles disagree.
    static let polarityGroups: [(String, [String], [String])] = [
        ("switch", ["enable", "enabled", "enables", "enabling", "activate", "activated", "activating", "on"],
         ["disable", "disabled", "disables", "disabling", "deactivate", "deactivated", "deactivating", "off"]),
        ("open", ["open", "opens", "opened", "opening", "unlock", "unlocked", "reopen"],
         ["close", "closes", "closed", "closing", "shut", "shuts", "lock", "locked"]),
        ("allow", ["allow", "allowed", "allows", "permit", "permitted", "permits", "legal", "lawful"],
         ["ban", "banned", "bans", "forbid", "forbidden", "prohibit", "prohibited", "illegal", "unlawful", "disallowed"]),
        ("safe", ["safe", "safely", "harmless", "safer", "safest"],
         ["unsafe", "dangerous", "harmful", "risky", "hazardous", "toxic"]),
        ("consume", ["eat", "eating", "drink", "drinking", "consume", "consuming"], ["avoid", "avoiding", "skip"]),
        ("include", ["include", "includes", "included", "including", "cover", "covers", "covered", "inclusive"],
         ["exclude", "excludes", "excluded", "excluding", "exclusion", "exclusions", "uncovered"]),
        ("add", ["add", "adds", "added", "adding", "insert", "attach", "deposit", "put", "upload", "import", "install"],
         ["remove", "removes", "removed", "removing", "delete", "deletes", "deleted", "deleting", "withdraw",
          "detach", "out", "download", "export", "uninstall"]),
        ("amount", ["increase", "increases", "increased", "raise", "raised", "boost", "more", "higher", "upgrade", "maximum", "max", "most", "over", "above"],
         ["decrease", "decreases", "decreased", "reduce", "reduced", "lower", "cut", "downgrade", "less", "fewer", "minimum", "min", "least", "under", "below"]),
        ("grant", ["grant", "granted", "give", "assign", "assigned", "approve", "approved", "accept", "accepted"],
         ["revoke", "revoked", "deny", "denied", "reject", "rejected", "decline", "declined", "refuse", "refused"]),
        ("start", ["start", "starts", "started", "begin", "resume", "join", "subscribe", "sign-up"],
         ["stop", "stops", "stopped", "end", "pause", "paused", "leave", "quit", "unsubscribe", "cancel", "cancelled"]),
        ("buy", ["buy", "buying", "bought", "purchase", "borrow", "borrowing", "receive", "received"],
         ["sell", "selling", "sold", "lend", "lending", "send", "sent"]),
        ("time", ["before", "within", "earlier", "early", "earliest"], ["after", "later", "late", "latest"]),
        ("merge", ["merge", "merged", "merging", "combine", "join"], ["split", "splitting", "separate"]),
        ("show", ["show", "shows", "unhide", "visible", "display"], ["hide", "hides", "hidden", "invisible"]),
        ("mute", ["mute", "muted", "silence"], ["unmute", "unmuted"]),
        ("block", ["block", "blocked", "blocking"], ["unblock", "unblocked", "unblocking"]),
        ("follow", ["follow", "followed"], ["unfollow", "unfollowed"]),
        ("encrypt", ["encrypt", "encrypted", "encrypting"], ["decrypt", "decrypted", "decrypting"]),
        ("archive", ["archive", "archived"], ["unarchive", "unarchived", "restore", "restored"]),
        ("pass", ["pass", "passed", "win", "won", "succeed"], ["fail", "failed", "lose", "lost"]),
        ("true", ["true", "correct"], ["false", "incorrect", "wrong"]),
        ("good", ["good", "best", "better", "benefit", "benefits", "advantage", "advantages", "pros"],
         ["bad", "worst", "worse", "risk", "risks", "disadvantage", "disadvantages", "cons", "drawbacks", "downsides"]),
        ("busy", ["busy", "crowded", "packed", "popular"], ["quiet", "empty"]),
        ("hot", ["hot", "warm", "heat", "warmer"], ["cold", "cool", "freeze", "frozen", "colder"]),
        ("extent", ["full", "fully", "whole", "entire"], ["part", "partial", "partly", "half"]),
        ("location", ["home", "domestic", "inside", "internal", "local"], ["abroad", "overseas", "international", "outside", "external", "foreign"]),
        ("channel", ["online", "digital", "electronic", "e-mail", "email"], ["in-store", "paper", "branch", "in-person", "postal"]),
        ("check", ["in"], ["out"]),
        ("up", ["up", "upstairs", "upload"], ["down", "downstairs", "download"]),
        ("import", ["import", "imports", "imported"], ["export", "exports", "exported"]),
    ]

    /// Words whose pole counts only after a particle verb ("turn it on", "log out", "take money out"),
    /// because alone they are mostly prepositions.
    static let particles: Set<String> = ["on", "off", "in", "out", "up", "down"]
    static let particleVerbs: Set<String> = [
        "turn", "turned", "turning", "switch", "switched", "switching", "toggle", "power", "log", "logged", "logging",
        "sign", "signed", "signing", "opt", "opted", "check", "checking", "checked", "clock", "plug", "put", "take", "taking",
        "pay", "paying", "move", "moving", "set", "cash", "scale", "back", "keep", "leave",
    ]

    /// Word → the (concept, pole) bits it sets: bit `2 * concept + pole`. A word may belong to
    /// several concepts ("out": removing and checking out).
    static let polarity: [String: [Int]] = {
        var map: [String: [Int]] = [:]
        for (index, group) in polarityGroups.enumerated() {
            for word in group.1 { map[word, default: []].append(2 * index) }
            for word in group.2 { map[word, default: []].append(2 * index + 1) }
        }
        return map
    }()

    /// Prefixes that reverse a word: "unsafe" against "safe", "non-members" against "members".
    static let reversingPrefixes = ["un", "dis", "non", "in", "im", "il", "ir", "de", "anti"]

    static let numberWords: [String: String] = [
        "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
        "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15",
        "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30",
        "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
        "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000", "dozen": "12",
        "once": "1x", "twice": "2x", "double": "2x", "triple": "3x", "half": "0.5", "quarter": "0.25",
        "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
    ]

    /// Units and currencies, by canonical name.
    static let units: [String: String] = [
        "£": "gbp", "gbp": "gbp", "pound": "gbp", "pounds": "gbp", "quid": "gbp", "p": "pence", "pence": "pence",
        "$": "usd", "usd": "usd", "dollar": "usd", "dollars": "usd", "€": "eur", "eur": "eur", "euro": "eur", "euros": "eur",
        "¥": "jpy", "yen": "jpy", "₹": "inr", "rupees": "inr", "%": "percent", "percent": "percent", "per cent": "percent",
        "kg": "kg", "kgs": "kg", "kilo": "kg", "kilos": "kg", "kilogram": "kg", "kilograms": "kg", "g": "g", "gram": "g", "grams": "g",
        "mg": "mg", "milligram": "mg", "milligrams": "mg", "lb": "lb", "lbs": "lb", "oz": "oz", "ounce": "oz", "ounces": "oz",
        "ml": "ml", "millilitre": "ml", "millilitres": "ml", "l": "l", "litre": "l", "litres": "l", "liter": "l", "liters": "l",
        "km": "km", "kilometre": "km", "kilometres": "km", "kilometer": "km", "kilometers": "km", "mile": "mile", "miles": "mile",
        "m": "m", "metre": "m", "metres": "m", "meter": "m", "meters": "m", "cm": "cm", "mm": "mm", "inch": "inch", "inches": "inch",
        "ft": "ft", "foot": "ft", "feet": "ft", "mph": "mph", "kph": "kph", "gb": "gb", "mb": "mb", "tb": "tb", "kb": "kb",
        "ghz": "ghz", "mhz": "mhz", "kw": "kw", "kwh": "kwh", "w": "w", "watt": "w", "watts": "w", "v": "v", "volt": "v", "volts": "v",
        "°c": "celsius", "c": "celsius", "celsius": "celsius", "°f": "fahrenheit", "f": "fahrenheit", "fahrenheit": "fahrenheit",
        "second": "second", "seconds": "second", "sec": "second", "secs": "second", "minute": "minute", "minutes": "minute",
        "min": "minute", "mins": "minute", "hour": "hour", "hours": "hour", "hr": "hour", "hrs": "hour", "h": "hour",
        "day": "day", "days": "day", "week": "week", "weeks": "week", "month": "month", "months": "month",
        "year": "year", "years": "year", "yr": "year", "yrs": "year", "k": "thousand", "bn": "billion",
        "bedroom": "bedroom", "bedrooms": "bedroom", "bed": "bedroom",
    ]

    /// Weekdays, months (the ambiguous "may" and "march" only next to a number or a date preposition),
    /// seasons, parts of the day, relative days.
    static let dateWords: [String: String] = {
        var map: [String: String] = [:]
        for day in ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] {
            map[day] = day
            map[day + "s"] = day
        }
        for month in ["january", "february", "april", "june", "july", "august", "september", "october", "november", "december"] {
            map[month] = month
        }
        for (short, month) in [("jan", "january"), ("feb", "february"), ("apr", "april"), ("jun", "june"), ("jul", "july"),
                               ("aug", "august"), ("sept", "september"), ("oct", "october"), ("nov", "november"), ("dec", "december")] {
            map[short] = month
        }
        for word in ["today", "tonight", "tomorrow", "yesterday", "weekend", "weekday", "morning", "afternoon", "evening",
                     "night", "midnight", "noon", "midday", "overnight", "spring", "summer", "autumn", "winter",
                     "am", "pm", "daily", "weekly", "monthly", "yearly", "annually", "annual", "hourly", "now", "currently"] {
            map[word] = word
        }
        map["weekends"] = "weekend"
        map["weekdays"] = "weekday"
        map["mornings"] = "morning"
        map["evenings"] = "evening"
        map["nights"] = "night"
        map["fortnight"] = "fortnight"
        map["same-day"] = "same-day"
        map["next-day"] = "next-day"
        return map
    }()

    /// Words that make the next time word relative ("next week", "last month").
    static let relativeMarkers: Set<String> = ["next", "last", "this", "previous", "coming", "past"]
    static let relativeUnits: Set<String> = ["day", "week", "month", "year", "weekend", "time", "quarter", "season", "term"]
    static let ambiguousMonths: Set<String> = ["may", "march"]
    static let datePrepositions: Set<String> = ["in", "of", "by", "until", "till", "since", "before", "after", "during", "early", "late", "mid", "from", "to", "next", "last", "this"]

    /// Who a question is for: audience words by canonical group. Pronouns of the first and second
    /// person are not here (a caller says "I" or "you" about the same question either way).
    static let audience: [String: String] = {
        var map: [String: String] = [:]
        let groups: [(String, [String])] = [
            ("child", ["child", "children", "kid", "kids", "son", "sons", "daughter", "daughters", "boy", "girl", "junior", "pupil", "schoolchild"]),
            ("baby", ["baby", "babies", "infant", "infants", "newborn", "toddler", "toddlers"]),
            ("teen", ["teen", "teens", "teenager", "teenagers", "adolescent"]),
            ("adult", ["adult", "adults", "grown-up", "grown-ups"]),
            ("elderly", ["elderly", "senior", "seniors", "pensioner", "pensioners", "retiree", "retirees"]),
            ("partner", ["partner", "wife", "husband", "spouse", "boyfriend", "girlfriend", "fiance", "fiancee"]),
            ("parent", ["parent", "parents", "mum", "mom", "mother", "dad", "father", "grandparent", "grandparents"]),
            ("colleague", ["colleague", "colleagues", "coworker", "coworkers", "co-worker", "teammate"]),
            ("friend", ["friend", "friends", "neighbour", "neighbor", "guest", "guests", "visitor", "visitors"]),
            ("he", ["he", "him", "his", "himself"]),
            ("she", ["she", "her", "hers", "herself"]),
            ("they", ["they", "them", "their", "theirs", "themselves"]),
            ("dog", ["dog", "dogs", "puppy", "puppies"]),
            ("cat", ["cat", "cats", "kitten", "kittens"]),
            ("pregnant", ["pregnant", "pregnancy", "breastfeeding"]),
            ("student", ["student", "students"]),
            ("employee", ["employee", "employees", "employed", "staff", "worker", "workers"]),
            ("contractor", ["contractor", "contractors", "freelancer", "freelancers", "self-employed"]),
            ("member", ["member", "members", "subscriber", "subscribers"]),
            ("resident", ["resident", "residents", "citizen", "citizens", "local", "locals"]),
            ("business", ["business", "businesses", "commercial", "premises", "corporate", "enterprise"]),
            ("tenant", ["tenant", "tenants", "renter", "renting", "rented", "rental", "tenancy", "landlord", "landlords"]),
            ("owner", ["owner", "owners", "homeowner", "homeowners", "own", "owned"]),
            ("joint", ["joint", "shared", "share"]),
            ("beginner", ["beginner", "beginners", "novice", "first-time"]),
            ("expert", ["expert", "experts", "advanced", "professional", "professionals"]),
        ]
        for (group, words) in groups {
            for word in words { map[word] = group }
        }
        return map
    }()

    /// Capitalised words that are not names when they start a clause mid-text ("Hi team, How ...").
    static let notEntities: Set<String> = [
        "i", "i'm", "i've", "i'd", "i'll", "hi", "hello", "hey", "thanks", "thank", "please", "ok", "okay", "so", "and", "but",
        "what", "how", "why", "when", "where", "which", "who", "whose", "can", "could", "should", "would", "will", "do",
        "does", "did", "is", "are", "was", "were", "the", "a", "an", "if", "my", "also", "just", "quick", "question",
    ]
}
