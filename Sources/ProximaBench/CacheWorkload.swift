import Foundation
import ProximaCore

/// A chat workload with realistic repetition for measuring a response cache end to end, built from
/// the fow-cache labelled pairs (`data/fow-cache`, CC BY 4.0) and a real trace's arrival times.
///
/// How it is built (docs/benchmarks.md, "Semantic cache on the emulated fleet"):
///
/// 1. **Questions.** Every distinct text of `pairs.jsonl` is one single-turn question (1,106 texts: the
///    600 pairs share sides, e.g. "How do I reset my password?" is in a paraphrase pair and a scope
///    pair), and every side of `conv-parts/*.jsonl` is one multi-turn question (its message list).
///    Pairs labelled `same_answer` join their two sides into one **answer class** (union-find; no pair
///    labelled different-answer ends up inside one class). Questions linked by any pair form a
///    **cluster**, which shares one `max_tokens`, so that a different-answer variant differs from what
///    was cached only in its words, never in its sampling parameters.
/// 2. **Popularity.** Clusters are shuffled (seeded) and the cluster at rank r weighs 1/(r+1)^s
///    (Zipf, `zipfExponent` s, default 1.0).
/// 3. **Arrivals.** Times come from the Mooncake conversation trace, compressed to `rate` requests
///    per second on average, for `duration` seconds. Each arrival first draws a kind from the mix,
///    then a pool (multi-turn with `conversationShare`, else single-turn), then a question of that
///    kind in that pool, weighted by its cluster's popularity:
///    - **exact repeat**: a question asked before, verbatim;
///    - **paraphrase**: a question not asked before whose answer class was asked before (the other
///      side of a paraphrase, near-repeat or same-answer conversation pair): a right hit;
///    - **variant**: a question not asked before, whose answer class was never asked, but linked by a
///      different-answer pair (negation, entity swap, number/date, scope, context swap, detail swap,
///      intent flip) to one asked before: serving it from the cache is a **wrong hit**;
///    - **fresh**: a question whose answer class and different-answer neighbours were never asked.
///    When the drawn kind has no candidate in either pool (early in a run, or a pool used up), the
///    arrival falls back to fresh, then to an exact repeat; the kinds actually sent are counted.
///    A hit on a variant or fresh arrival is wrong by construction: no question with its answer was
///    ever sent. A hit on a paraphrase is counted as right (if a different-answer neighbour was also
///    cached, which answer was served cannot be told).
/// 4. **Output length.** A cluster's `max_tokens` is the trace's output length of the arrival that
///    first asks a question of it, capped at `maxOutputTokens`; every later request of the cluster
///    uses the same value.
/// 5. **Requests.** Streamed chat completions: a fixed system prompt, then the question's messages,
///    `temperature` 0, `stream_options.include_usage`.
public struct CacheWorkload: Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case exactRepeat = "exact_repeat"
        case paraphrase
        case variant
        case fresh
    }

    public struct Message: Codable, Sendable, Hashable {
        public var role: String
        public var content: String
    }

    /// One distinct question: its messages, the answer class and cluster it belongs to.
    public struct Question: Sendable {
        public var messages: [Message]
        public var isConversation: Bool
        public var answerClass: Int
        public var cluster: Int
        /// Questions linked to this one by a different-answer pair.
        public var differentAnswerNeighbours: [Int]
    }

    public struct Arrival: Sendable {
        /// Seconds after the run's start.
        public var sendAt: Double
        public var question: Int
        public var kind: Kind
        public var maxTokens: Int
    }

    /// The mix of kinds each arrival draws from, the share of multi-turn requests and the skew.
    public struct Mix: Codable, Sendable, Equatable {
        public var exactRepeat: Double
        public var paraphrase: Double
        public var variant: Double
        public var fresh: Double
        public var conversationShare: Double
        public var zipfExponent: Double

        public init(
            exactRepeat: Double = 0.30, paraphrase: Double = 0.20, variant: Double = 0.10, fresh: Double = 0.40, conversationShare: Double = 0.2,
            zipfExponent: Double = 1.0
        ) {
            self.exactRepeat = exactRepeat
            self.paraphrase = paraphrase
            self.variant = variant
            self.fresh = fresh
            self.conversationShare = conversationShare
            self.zipfExponent = zipfExponent
        }

        /// Problems with the shares, empty when valid.
        public var problems: [String] {
            var problems: [String] = []
            for (name, value) in [("exact repeat", exactRepeat), ("paraphrase", paraphrase), ("variant", variant), ("fresh", fresh)]
            where !(value >= 0 && value <= 1) {
                problems.append("the \(name) share must be between 0 and 1")
            }
            if !(abs(exactRepeat + paraphrase + variant + fresh - 1) < 1e-6) { problems.append("the four shares must add up to 1") }
            if !(conversationShare >= 0 && conversationShare <= 1) { problems.append("the conversation share must be between 0 and 1") }
            if !(zipfExponent >= 0 && zipfExponent <= 4) { problems.append("the Zipf exponent must be between 0 and 4") }
            return problems
        }
    }

    /// The system prompt every request starts with (one partition for the whole workload).
    public static let systemPrompt = "You are the customer help assistant. Answer briefly and accurately."

    public var questions: [Question]
    public var arrivals: [Arrival]
    public var mix: Mix
    /// Seconds over which arrivals are spread.
    public var duration: Double

    /// Arrivals of each kind actually planned.
    public var kindCounts: [Kind: Int] {
        var counts: [Kind: Int] = [:]
        for arrival in arrivals { counts[arrival.kind, default: 0] += 1 }
        return counts
    }

    /// The messages of a request: the system prompt, then the question's turns.
    public func messages(of arrival: Arrival) -> [Message] {
        [Message(role: "system", content: Self.systemPrompt)] + questions[arrival.question].messages
    }

    // MARK: - Building

    /// A labelled pair as fow-cache ships it: two sides (one user message, or a conversation) and
    /// whether one answer is right for both.
    public struct LabelledPair: Sendable {
        public var a: [Message]
        public var b: [Message]
        public var sameAnswer: Bool
        public var isConversation: Bool
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads `pairs.jsonl` and `conv-parts/*.jsonl` from a fow-cache data directory.
    public static func loadPairs(from directory: String) throws -> [LabelledPair] {
        struct SingleRow: Decodable {
            var a: String
            var b: String
            var same_answer: Bool
        }
        struct ConversationRow: Decodable {
            var a: [Message]
            var b: [Message]
            var same_answer: Bool
        }
        func lines(_ path: String) throws -> [Data] {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Failure(description: "cannot read \(path)") }
            return text.split(whereSeparator: \.isNewline).filter { !$0.allSatisfy(\.isWhitespace) }.map { Data($0.utf8) }
        }
        var pairs: [LabelledPair] = []
        let decoder = JSONDecoder()
        for (number, line) in try lines(directory + "/pairs.jsonl").enumerated() {
            guard let row = try? decoder.decode(SingleRow.self, from: line) else {
                throw Failure(description: "\(directory)/pairs.jsonl line \(number + 1): expected a, b and same_answer")
            }
            pairs.append(
                LabelledPair(
                    a: [Message(role: "user", content: row.a)], b: [Message(role: "user", content: row.b)], sameAnswer: row.same_answer,
                    isConversation: false))
        }
        let partsDirectory = directory + "/conv-parts"
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: partsDirectory)) ?? []).filter { $0.hasSuffix(".jsonl") }.sorted()
        for file in files {
            for (number, line) in try lines(partsDirectory + "/" + file).enumerated() {
                guard let row = try? decoder.decode(ConversationRow.self, from: line), !row.a.isEmpty, !row.b.isEmpty else {
                    throw Failure(description: "\(partsDirectory)/\(file) line \(number + 1): expected a, b (message lists) and same_answer")
                }
                pairs.append(LabelledPair(a: row.a, b: row.b, sameAnswer: row.same_answer, isConversation: true))
            }
        }
        guard !pairs.isEmpty else { throw Failure(description: "no labelled pairs in \(directory)") }
        return pairs
    }

    /// Where the fow-cache data shipped with the project is, beside the shipped traces.
    public static var shippedDataDirectory: String {
        URL(fileURLWithPath: TraceFiles.shippedDirectory).deletingLastPathComponent().appendingPathComponent("fow-cache").path
    }

    /// Distinct questions from labelled pairs: answer classes over same-answer pairs, clusters over all.
    static func questions(from pairs: [LabelledPair]) -> [Question] {
        var index: [[Message]: Int] = [:]
        var questions: [Question] = []
        func id(_ messages: [Message], conversation: Bool) -> Int {
            if let known = index[messages] { return known }
            index[messages] = questions.count
            questions.append(Question(messages: messages, isConversation: conversation, answerClass: 0, cluster: 0, differentAnswerNeighbours: []))
            return questions.count - 1
        }
        var answerParent: [Int] = []
        var clusterParent: [Int] = []
        func root(_ parents: inout [Int], _ item: Int) -> Int {
            var item = item
            while parents[item] != item {
                parents[item] = parents[parents[item]]
                item = parents[item]
            }
            return item
        }
        for pair in pairs {
            let a = id(pair.a, conversation: pair.isConversation)
            let b = id(pair.b, conversation: pair.isConversation)
            while answerParent.count < questions.count {
                answerParent.append(answerParent.count)
                clusterParent.append(clusterParent.count)
            }
            let clusterA = root(&clusterParent, a)
            let clusterB = root(&clusterParent, b)
            clusterParent[clusterA] = clusterB
            if pair.sameAnswer {
                let classA = root(&answerParent, a)
                let classB = root(&answerParent, b)
                answerParent[classA] = classB
            } else if a != b {
                questions[a].differentAnswerNeighbours.append(b)
                questions[b].differentAnswerNeighbours.append(a)
            }
        }
        for item in questions.indices {
            questions[item].answerClass = root(&answerParent, item)
            questions[item].cluster = root(&clusterParent, item)
        }
        return questions
    }

    /// Builds the workload; the same inputs and seed give the same workload.
    public static func build(
        pairs: [LabelledPair], trace: Trace, rate: Double, duration: Double, mix: Mix = .init(), maxOutputTokens: Int = 512, seed: UInt64 = 14
    ) throws -> CacheWorkload {
        let problems = mix.problems
        guard problems.isEmpty else { throw Failure(description: problems.joined(separator: "; ")) }
        guard rate > 0, rate <= 10_000, duration > 0, duration <= 86_400 else {
            throw Failure(description: "the rate must be in (0, 10000] requests/s and the duration in (0, 86400] s")
        }
        guard trace.requests.count > 1, trace.duration > 0 else { throw Failure(description: "the trace \(trace.name) has no arrivals to replay") }
        var random = SplitMix64(seed: seed)
        var questions = questions(from: pairs)

        // Popularity: clusters in a seeded random order, Zipf weights by rank.
        let clusters = Array(Set(questions.map(\.cluster))).sorted()
        var order = clusters
        order.shuffle(using: &random)
        var clusterWeight: [Int: Double] = [:]
        for (rank, cluster) in order.enumerated() { clusterWeight[cluster] = 1 / pow(Double(rank + 1), mix.zipfExponent) }
        let weights = questions.map { clusterWeight[$0.cluster] ?? 0 }
        for item in questions.indices { questions[item].differentAnswerNeighbours.sort() }

        // Arrival times: the trace from its start, time compressed to the asked mean rate.
        let traceRate = Double(trace.requests.count) / trace.duration
        let compression = rate / traceRate
        let start = trace.requests[0].time
        var times: [(sendAt: Double, outputTokens: Int)] = []
        for request in trace.requests {
            let sendAt = (request.time - start) / compression
            guard sendAt < duration else { break }
            times.append((sendAt, request.outputTokens))
        }

        var asked = [Bool](repeating: false, count: questions.count)
        var classAsked: Set<Int> = []
        var clusterTokens: [Int: Int] = [:]
        var arrivals: [Arrival] = []
        arrivals.reserveCapacity(times.count)
        let cumulative = [mix.exactRepeat, mix.exactRepeat + mix.paraphrase, mix.exactRepeat + mix.paraphrase + mix.variant]

        func kind(of item: Int) -> Kind {
            if asked[item] { return .exactRepeat }
            if classAsked.contains(questions[item].answerClass) { return .paraphrase }
            if questions[item].differentAnswerNeighbours.contains(where: { asked[$0] }) { return .variant }
            return .fresh
        }
        func pick(_ wanted: Kind, conversation: Bool) -> Int? {
            var total = 0.0
            var candidates: [(Int, Double)] = []
            for item in questions.indices where questions[item].isConversation == conversation && kind(of: item) == wanted {
                total += weights[item]
                candidates.append((item, total))
            }
            guard total > 0 else { return nil }
            let draw = Double(random.next() >> 11) / Double(1 << 53) * total
            return candidates.first { $0.1 > draw }?.0 ?? candidates.last?.0
        }

        for (sendAt, traceOutput) in times {
            let kindDraw = Double(random.next() >> 11) / Double(1 << 53)
            let wanted: Kind =
                kindDraw < cumulative[0] ? .exactRepeat : kindDraw < cumulative[1] ? .paraphrase : kindDraw < cumulative[2] ? .variant : .fresh
            let conversation = Double(random.next() >> 11) / Double(1 << 53) < mix.conversationShare
            var chosen: Int?
            for (kind, pool) in [(wanted, conversation), (wanted, !conversation), (.fresh, conversation), (.fresh, !conversation),
                (.exactRepeat, conversation), (.exactRepeat, !conversation)]
            {
                if let item = pick(kind, conversation: pool) {
                    chosen = item
                    break
                }
            }
            guard let item = chosen else { break }
            let actual = kind(of: item)
            let cluster = questions[item].cluster
            let maxTokens = clusterTokens[cluster] ?? min(maxOutputTokens, max(1, traceOutput))
            clusterTokens[cluster] = maxTokens
            arrivals.append(Arrival(sendAt: sendAt, question: item, kind: actual, maxTokens: maxTokens))
            asked[item] = true
            classAsked.insert(questions[item].answerClass)
        }
        return CacheWorkload(questions: questions, arrivals: arrivals, mix: mix, duration: duration)
    }
}
