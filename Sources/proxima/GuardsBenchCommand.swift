import ArgumentParser
import Foundation
import ProximaBench
import ProximaCore
import ProximaGuard

struct GuardsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guards",
        abstract: "Measure the content guards: injection recall and false positives, secrets and PII precision and recall, cost.",
        discussion: """
            Injection: bastioncorpus (118 injections, 63 benign look-alikes; channels user_input, tool_output and
            memory, the last two scanned as the indirect channel) and the garak subset (all injections), split by a
            hash of each text into a dev half (may be read and tuned on) and a test half (never read: its misses
            are counted, never listed),
            against benign traffic: bastioncorpus' benign rows, every fow-cache prompt and conversation message,
            and the synthetic prompts of the load generator. Prints the threshold sweep, recall and false
            positive rate per category, channel and language at the chosen threshold, and what is missed.
            Secrets and personal data: per-entity precision and recall on data/guard-eval/pii.jsonl and
            secrets.jsonl (a finding counts when it overlaps a labelled span of the same entity). Cost: both
            guards on 1 KB and 4 KB prompts, and the stream redactor per event.
            """)

    @Option(help: "The data directory (guard-eval/ and fow-cache/).")
    var data: String = "data"

    @Option(help: "Report at this threshold (default: GuardSettings.Injection.defaultThreshold).")
    var threshold: Double?

    @Option(help: "Timing iterations per measurement.")
    var iterations: Int = 3_000

    @Flag(help: "List every miss (bastioncorpus and garak-dev; never garak-test) and false positive.")
    var details = false

    @Option(help: "Write every sample's score, signals and spans and every secrets/PII finding to this file (to compare two builds).")
    var dump: String?

    @Option(help: "Only scan this text (as a user message) and print what both guards find.")
    var probe: String?

    struct Labelled: Decodable {
        var id: String
        var category: String?
        var label: String?
        var channel: String?
        var lang: String?
        var source: String?
        var text: String
    }

    struct Span: Decodable {
        var entity: String
        var start: Int
        var end: Int
    }

    struct PIIRow: Decodable {
        var id: String
        var text: String
        var spans: [Span]
    }

    struct Sample {
        var id: String
        var group: String
        var channel: MessageChannel
        var lang: String
        var text: String
        var malicious: Bool
        var score = 0.0
        var signals: [String] = []
    }

    func run() throws {
        let detector = InjectionDetector()
        if let probe {
            for channel in [MessageChannel.user, .tool] {
                let scan = detector.scan(Substring(probe), channel: channel, budget: 1 << 20)
                print("\(channel): score \(String(format: "%.3f", scan.score)) \(scan.category?.rawValue ?? "-") \(scan.signals) spans \(scan.spans)")
            }
            let sensitive = try SensitiveDataDetector()
            let masked = sensitive.masked(Substring(probe))
            print("findings \(masked.findings.map { "\($0.entity)@\($0.range)" })\nmasked: \(masked.text)")
            return
        }
        let budget = GuardSettings().maxScanBytes
        func scan(_ samples: inout [Sample]) {
            for index in samples.indices {
                let result = detector.scan(Substring(samples[index].text), channel: samples[index].channel, budget: budget)
                samples[index].score = result.score
                samples[index].signals = result.signals
            }
        }
        var bastion = try lines("\(data)/guard-eval/bastioncorpus-injections.jsonl", Labelled.self).map { row in
            Sample(
                id: row.id, group: row.category ?? "?", channel: row.channel == "user_input" ? .user : .tool, lang: row.lang ?? "?",
                text: row.text.replacingOccurrences(of: "{canary}", with: "ZX-CANARY-4471"), malicious: row.label == "malicious")
        }
        let garakRows = try lines("\(data)/guard-eval/garak.jsonl", Labelled.self).map {
            Sample(id: $0.id, group: $0.source ?? "?", channel: .user, lang: "en", text: $0.text, malicious: true)
        }
        var garakDev = garakRows.filter { Self.isDev($0.text) }
        var garakTest = garakRows.filter { !Self.isDev($0.text) }
        var benign = try benignSamples()
        scan(&bastion)
        scan(&garakDev)
        scan(&garakTest)
        scan(&benign)
        if let dump {
            var out = ""
            for sample in bastion + garakDev + garakTest + benign {
                let spans = detector.scan(Substring(sample.text), channel: sample.channel, budget: budget).spans
                out += "\(sample.id)\t\(String(format: "%.9f", sample.score))\t\(sample.signals.joined(separator: ","))\t\(spans.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ","))\n"
            }
            let sensitive = try SensitiveDataDetector()
            for file in ["pii.jsonl", "secrets.jsonl"] {
                for row in try lines("\(data)/guard-eval/\(file)", PIIRow.self) {
                    out += "\(row.id)\t\(sensitive.findings(in: Substring(row.text)).map { "\($0.entity)@\($0.range.lowerBound)-\($0.range.upperBound)" }.joined(separator: ","))\n"
                }
            }
            for sample in benign {
                let found = sensitive.findings(in: Substring(sample.text))
                if !found.isEmpty { out += "\(sample.id)\t\(found.map { "\($0.entity)@\($0.range.lowerBound)-\($0.range.upperBound)" }.joined(separator: ","))\n" }
            }
            try out.write(toFile: dump, atomically: true, encoding: .utf8)
            print("wrote \(dump)")
            return
        }
        let garak = garakDev + garakTest
        let bastionBenign = bastion.filter { !$0.malicious }
        let bastionMalicious = bastion.filter(\.malicious)
        let allBenign = bastionBenign + benign

        print("Injection: bastioncorpus \(bastionMalicious.count) injections and \(bastionBenign.count) benign look-alikes; garak \(garak.count) injections")
        print("(dev half \(garakDev.count), test half \(garakTest.count), split by a hash of the text); benign traffic \(benign.count) texts")
        print("(fow-cache prompts and messages, synthetic load prompts).\n")
        print("threshold  recall(bastion)  recall(garak-dev)  recall(garak-test)  FPR(look-alikes)  FPR(traffic)  FPR(all benign)")
        for step in 4...16 {
            let t = Double(step) * 0.05
            print(
                String(
                    format: "   %.2f        %5.1f%%           %5.1f%%            %5.1f%%              %5.1f%%          %5.2f%%        %5.2f%%", t,
                    rate(bastionMalicious, t), rate(garakDev, t), rate(garakTest, t), rate(bastionBenign, t), rate(benign, t), rate(allBenign, t)))
        }
        let chosen = threshold ?? GuardSettings.Injection.defaultThreshold
        print(String(format: "\nAt threshold %.2f:", chosen))
        print(String(format: "  bastioncorpus recall %.1f%% (%d/%d), FPR on look-alikes %.1f%%, FPR on all benign %.2f%% (%d/%d)",
            rate(bastionMalicious, chosen), bastionMalicious.filter { $0.score >= chosen }.count, bastionMalicious.count,
            rate(bastionBenign, chosen), rate(allBenign, chosen), allBenign.filter { $0.score >= chosen }.count, allBenign.count))
        print("  per bastioncorpus category:")
        for group in Set(bastion.map(\.group)).sorted() {
            let rows = bastion.filter { $0.group == group }
            let flagged = rows.filter { $0.score >= chosen }.count
            print("    \(group.padding(toLength: 22, withPad: " ", startingAt: 0)) \(rows[0].malicious ? "recall" : "FPR   ") \(percent(flagged, rows.count)) (\(flagged)/\(rows.count))")
        }
        print("  per channel (injections: recall; benign look-alikes: FPR):")
        for channel in ["user_input", "tool_output+memory"] {
            let user = channel == "user_input"
            let m = bastionMalicious.filter { ($0.channel == .user) == user }
            let b = bastionBenign.filter { ($0.channel == .user) == user }
            print("    \(channel.padding(toLength: 20, withPad: " ", startingAt: 0)) recall \(percent(m.filter { $0.score >= chosen }.count, m.count)) (\(m.count))  FPR \(percent(b.filter { $0.score >= chosen }.count, b.count)) (\(b.count))")
        }
        print("  per language (injections):")
        for lang in Set(bastionMalicious.map(\.lang)).sorted() {
            let m = bastionMalicious.filter { $0.lang == lang }
            print("    \(lang)  recall \(percent(m.filter { $0.score >= chosen }.count, m.count)) (\(m.count))")
        }
        print("  garak per source (all, dev half, test half):")
        for group in Set(garak.map(\.group)).sorted() {
            let line = [garak, garakDev, garakTest].map { set in
                let rows = set.filter { $0.group == group }
                return "\(percent(rows.filter { $0.score >= chosen }.count, rows.count)) (\(String(format: "%3d", rows.count)))"
            }
            print("    \(group.padding(toLength: 22, withPad: " ", startingAt: 0)) recall \(line.joined(separator: "  "))")
        }
        for (name, set) in [("all", garak), ("dev", garakDev), ("test", garakTest)] {
            print("    garak \(name.padding(toLength: 16, withPad: " ", startingAt: 0)) recall \(percent(set.filter { $0.score >= chosen }.count, set.count)) (\(set.filter { $0.score >= chosen }.count)/\(set.count))")
        }
        print("  benign traffic per set:")
        for group in Set(benign.map(\.group)).sorted() {
            let rows = benign.filter { $0.group == group }
            print("    \(group.padding(toLength: 22, withPad: " ", startingAt: 0)) FPR \(percent(rows.filter { $0.score >= chosen }.count, rows.count)) (\(rows.count))")
        }
        if details {
            print("\n  missed injections:")
            // Never the test half: its texts stay unread.
            for sample in (bastionMalicious + garakDev) where sample.score < chosen {
                print(String(format: "    %@ %.2f [%@] %@", sample.id, sample.score, sample.signals.joined(separator: ","), String(sample.text.prefix(110)).replacingOccurrences(of: "\n", with: " ")))
            }
            print("\n  false positives:")
            for sample in allBenign where sample.score >= chosen {
                print(String(format: "    %@ %.2f [%@] %@", sample.id, sample.score, sample.signals.joined(separator: ","), String(sample.text.prefix(110)).replacingOccurrences(of: "\n", with: " ")))
            }
        }

        try sensitiveReport()
        try costReport(benign: benign)
    }

    /// The garak dev half: FNV-1a 64 of the text's UTF-8 is even. Stable across runs and platforms.
    static func isDev(_ text: String) -> Bool {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash % 2 == 0
    }

    func rate(_ samples: [Sample], _ threshold: Double) -> Double {
        samples.isEmpty ? 0 : Double(samples.filter { $0.score >= threshold }.count) * 100 / Double(samples.count)
    }

    func percent(_ count: Int, _ total: Int) -> String {
        String(format: "%5.1f%%", total == 0 ? 0 : Double(count) * 100 / Double(total))
    }

    func lines<T: Decodable>(_ path: String, _ type: T.Type) throws -> [T] {
        guard let contents = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
        let decoder = JSONDecoder()
        return try contents.split(separator: UInt8(ascii: "\n")).filter { !$0.isEmpty }.map { try decoder.decode(T.self, from: Data($0)) }
    }

    struct Message: Decodable {
        var role: String
        var content: String
    }

    struct Pair: Decodable {
        var id: String
        var a: String
        var b: String
    }

    struct Conversation: Decodable {
        var id: String
        var a: [Message]
        var b: [Message]
    }

    func benignSamples() throws -> [Sample] {
        var samples: [Sample] = []
        for pair in try lines("\(data)/fow-cache/pairs.jsonl", Pair.self) {
            samples.append(Sample(id: "\(pair.id)-a", group: "fow-cache pairs", channel: .user, lang: "en", text: pair.a, malicious: false))
            samples.append(Sample(id: "\(pair.id)-b", group: "fow-cache pairs", channel: .user, lang: "en", text: pair.b, malicious: false))
        }
        var seen = Set<String>()
        for folder in ["conv-parts", "conv-long"] {
            let directory = "\(data)/fow-cache/\(folder)"
            for file in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() where file.hasSuffix(".jsonl") {
                for conversation in try lines("\(directory)/\(file)", Conversation.self) {
                    for (index, message) in (conversation.a + conversation.b).enumerated() where seen.insert(message.content).inserted {
                        samples.append(
                            Sample(
                                id: "\(conversation.id)-\(index)", group: "fow-cache conversations", channel: message.role == "assistant" ? .assistant : .user,
                                lang: "en", text: message.content, malicious: false))
                    }
                }
            }
        }
        let synthesizer = PromptSynthesizer(blockTokens: 128)
        for index in 0..<100 {
            samples.append(
                Sample(
                    id: "synthetic-\(index)", group: "synthetic load prompts", channel: .user, lang: "en",
                    text: synthesizer.prompt(tokens: 64 + index * 8, prefixBlockIDs: [UInt64(index % 7)], uniqueID: index), malicious: false))
        }
        return samples
    }

    func sensitiveReport() throws {
        let detector = try SensitiveDataDetector()
        for file in ["pii.jsonl", "secrets.jsonl"] {
            let rows = try lines("\(data)/guard-eval/\(file)", PIIRow.self)
            var tp: [String: Int] = [:], fp: [String: Int] = [:], fn: [String: Int] = [:], exact: [String: Int] = [:]
            var falsePositives: [String] = []
            var misses: [String] = []
            for row in rows {
                let found = detector.findings(in: Substring(row.text))
                for span in row.spans {
                    if let hit = found.first(where: { $0.entity == span.entity && $0.range.overlaps(span.start..<span.end) }) {
                        tp[span.entity, default: 0] += 1
                        if hit.range == span.start..<span.end { exact[span.entity, default: 0] += 1 }
                    } else {
                        fn[span.entity, default: 0] += 1
                        let bytes = Array(row.text.utf8)
                        misses.append("\(span.entity): \(String(decoding: bytes[span.start..<span.end], as: UTF8.self).prefix(60))")
                    }
                }
                for finding in found where !row.spans.contains(where: { $0.entity == finding.entity && finding.range.overlaps($0.start..<$0.end) }) {
                    fp[finding.entity, default: 0] += 1
                    let bytes = Array(row.text.utf8)
                    falsePositives.append("\(finding.entity): \(String(decoding: bytes[finding.range], as: UTF8.self).prefix(60))  in \(row.id)")
                }
            }
            print("\nSecrets and personal data, \(file) (\(rows.count) texts, \(rows.reduce(0) { $0 + $1.spans.count }) labelled spans):")
            print("  entity               labelled  precision  recall   exact span")
            let entities = Set(tp.keys).union(fn.keys).union(fp.keys).sorted()
            var totals = (0, 0, 0)
            for entity in entities {
                let t = tp[entity] ?? 0, f = fp[entity] ?? 0, n = fn[entity] ?? 0
                totals = (totals.0 + t, totals.1 + f, totals.2 + n)
                print("  \(entity.padding(toLength: 20, withPad: " ", startingAt: 0)) \(String(format: "%6d", t + n))     \(percent(t, t + f))    \(percent(t, t + n))   \(percent(exact[entity] ?? 0, t))")
            }
            print("  all                  \(String(format: "%6d", totals.0 + totals.2))     \(percent(totals.0, totals.0 + totals.1))    \(percent(totals.0, totals.0 + totals.2))")
            if details {
                for miss in misses { print("    missed \(miss)") }
                for falsePositive in falsePositives { print("    false positive \(falsePositive)") }
            }
        }
    }

    func costReport(benign: [Sample]) throws {
        let injection = InjectionDetector()
        let sensitive = try SensitiveDataDetector()
        let corpus = benign.filter { $0.group != "synthetic load prompts" }.map(\.text).joined(separator: "\n")
        print("\nCost (this machine, one core, \(iterations) iterations each):")
        for size in [1_024, 4_096] {
            // Prompts cut from the benign traffic at different offsets, with an email and a card in them.
            let utf8 = Array(corpus.utf8)
            var prompts: [String] = []
            for index in 0..<16 {
                let start = (index * 7_919) % max(1, utf8.count - size)
                var text = String(decoding: utf8[start..<(start + size - 60)], as: UTF8.self)
                text += " reach me at jane.doe@example.com, card 4111 1111 1111 1111."
                prompts.append(text)
            }
            var samples: [Duration] = []
            samples.reserveCapacity(iterations)
            let clock = ContinuousClock()
            var sink = 0.0
            for iteration in 0..<iterations {
                let prompt = Substring(prompts[iteration % prompts.count])
                let started = clock.now
                let scan = injection.scan(prompt, channel: .user, budget: 256 * 1_024)
                let found = sensitive.findings(in: prompt)
                samples.append(clock.now - started)
                sink += scan.score + Double(found.count)
            }
            let (p50, p99) = quantiles(samples)
            print(String(format: "  guards per request, %d KB prompt (injection + secrets/PII): p50 %.1f us, p99 %.1f us", size / 1_024, p50, p99) + (sink < 0 ? "!" : ""))
            // Each guard alone, for the breakdown.
            var injectionOnly: [Duration] = [], sensitiveOnly: [Duration] = []
            for iteration in 0..<iterations {
                let prompt = Substring(prompts[iteration % prompts.count])
                let started = clock.now
                sink += injection.scan(prompt, channel: .user, budget: 256 * 1_024).score
                let middle = clock.now
                sink += Double(sensitive.findings(in: prompt).count)
                injectionOnly.append(middle - started)
                sensitiveOnly.append(clock.now - middle)
            }
            print(String(format: "    of which injection p50 %.1f us, secrets/PII p50 %.1f us", quantiles(injectionOnly).0, quantiles(sensitiveOnly).0) + (sink < 0 ? "!" : ""))
        }
        // Stream redaction: a 4 KB answer in token-sized events, with secrets in it.
        let answer = String(corpus.prefix(3_000)) + " Your key is AKIAIOSFODNN7EXAMPLE and the card 4111 1111 1111 1111; write to ops@example.com. " + String(corpus.dropFirst(3_000).prefix(900))
        let bytes = Array(answer.utf8)
        var events: [Substring] = []
        var cursor = 0
        var generator = SplitMix64(seed: 7)
        while cursor < bytes.count {
            var next = min(bytes.count, cursor + Int.random(in: 3...12, using: &generator))
            while next < bytes.count, bytes[next] & 0xC0 == 0x80 { next += 1 }
            events.append(Substring(String(decoding: bytes[cursor..<next], as: UTF8.self)))
            cursor = next
        }
        var samples: [Duration] = []
        let clock = ContinuousClock()
        for _ in 0..<max(1, iterations / 100) {
            var redactor = StreamRedactor(detector: sensitive, windowBytes: GuardSettings().streamWindowBytes)
            for event in events {
                let started = clock.now
                _ = redactor.push(event)
                samples.append(clock.now - started)
            }
            _ = redactor.finish()
        }
        let (p50, p99) = quantiles(samples)
        print(String(format: "  stream redactor per event (%d events of 3-12 bytes, window %d): p50 %.2f us, p99 %.2f us", samples.count, GuardSettings().streamWindowBytes, p50, p99))
    }

    func quantiles(_ samples: [Duration]) -> (Double, Double) {
        let micros = samples.map { Double($0.components.attoseconds) / 1e12 + Double($0.components.seconds) * 1e6 }.sorted()
        guard !micros.isEmpty else { return (0, 0) }
        return (micros[micros.count / 2], micros[min(micros.count - 1, micros.count * 99 / 100)])
    }
}

