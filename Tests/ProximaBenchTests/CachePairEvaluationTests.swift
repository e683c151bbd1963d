import Foundation
import ProximaBench
import ProximaCore
import Testing

/// The pair evaluation's arithmetic, without an embedder.
struct CachePairEvaluationTests {
    typealias Outcome = CachePairEvaluation.Outcome

    func outcome(_ category: String, same: Bool, cosine: Double, partition: Bool = true, verdict: CacheGuard? = nil) -> Outcome {
        Outcome(set: "pairs", category: category, sameAnswer: same, cosine: cosine, samePartition: partition, guardVerdict: verdict)
    }

    @Test func tallyCountsServedPairsAgainstTheirLabels() {
        let outcomes = [
            outcome("paraphrase", same: true, cosine: 0.95),  // served, right
            outcome("paraphrase", same: true, cosine: 0.90),  // below the threshold: missed
            outcome("negation", same: false, cosine: 0.97),  // false hit without guards
            outcome("negation", same: false, cosine: 0.97, verdict: .negation),  // refused by a guard
            outcome("scope", same: false, cosine: 0.80),  // below: right to refuse
            outcome("near_repeat", same: true, cosine: 0.99, partition: false),  // other partition: never served
        ]
        let plain = CachePairEvaluation.Tally(outcomes, threshold: 0.93, guards: false)
        #expect(plain.truePositives == 1 && plain.falsePositives == 2 && plain.falseNegatives == 2 && plain.trueNegatives == 1)
        #expect(plain.precision == 1.0 / 3.0)
        #expect(plain.recall == 1.0 / 3.0)
        #expect(plain.falseHitRate == 2.0 / 3.0)
        let guarded = CachePairEvaluation.Tally(outcomes, threshold: 0.93, guards: true)
        #expect(guarded.truePositives == 1 && guarded.falsePositives == 1 && guarded.trueNegatives == 2)
        #expect(guarded.precision == 0.5)
        let ignoringPartitions = CachePairEvaluation.Tally(outcomes, threshold: 0.93, guards: false, partitions: false)
        #expect(ignoringPartitions.truePositives == 2)
        // Nothing served: precision is 1 by convention, recall 0.
        let none = CachePairEvaluation.Tally(outcomes, threshold: 1.0, guards: false)
        #expect(none.precision == 1 && none.recall == 0 && none.servedShare == 0)
        #expect(CachePairEvaluation.Tally([], threshold: 0.9, guards: false).recall == nil)
    }

    @Test func theChosenThresholdIsTheLowestThatMeetsTheTarget() {
        // 4 paraphrases at 0.91, 0.93, 0.96, 0.98; a negation false hit at 0.92 unless guarded; a
        // number pair at 0.95 that no guard catches; 100 other negatives far below.
        var outcomes = [0.91, 0.93, 0.96, 0.98].map { outcome("paraphrase", same: true, cosine: $0) }
        outcomes.append(outcome("negation", same: false, cosine: 0.92, verdict: .negation))
        outcomes.append(outcome("number_date", same: false, cosine: 0.95))
        outcomes += (0..<100).map { _ in outcome("scope", same: false, cosine: 0.5) }
        // Up to 0.95 the number pair is served; at 0.96 half the paraphrases remain.
        #expect(CachePairEvaluation.chooseThreshold(outcomes) == 0.96)
        var target = CachePairEvaluation.Target()
        #expect(target.check(outcomes, threshold: 0.95).reasons == ["1 false hits in number_date"])
        target.minimumParaphraseRecall = 0.75
        #expect(CachePairEvaluation.chooseThreshold(outcomes, target: target) == nil)
        #expect(target.check(outcomes, threshold: 0.96).reasons == ["paraphrase recall 50.0%"])
    }

    @Test func theFalseHitBudgetIsAShareOfTheNegatives() {
        // 1 false hit among 100 negatives is 1%: allowed; 2 are not.
        var outcomes = [outcome("paraphrase", same: true, cosine: 0.99)]
        outcomes += (0..<99).map { _ in outcome("scope", same: false, cosine: 0.1) }
        outcomes.append(outcome("entity_swap", same: false, cosine: 0.99))
        #expect(CachePairEvaluation.Target().check(outcomes, threshold: 0.9).met)
        outcomes[1] = outcome("scope", same: false, cosine: 0.99)
        #expect(!CachePairEvaluation.Target().check(outcomes, threshold: 0.9).met)
    }

    @Test func cosineIsScaleFreeAndSafeOnDegenerateVectors() {
        #expect(abs(CachePairEvaluation.cosine([1, 0], [2, 0]) - 1) < 1e-12)
        #expect(abs(CachePairEvaluation.cosine([1, 0], [0, 3])) < 1e-12)
        #expect(abs(CachePairEvaluation.cosine([1, 1], [-1, -1]) + 1) < 1e-12)
        #expect(CachePairEvaluation.cosine([0, 0], [1, 0]) == 0)
        #expect(CachePairEvaluation.cosine([1], [1, 0]) == 0)
    }

    @Test func conversationsShareAPartitionOnlyWithIdenticalEarlierTurns() {
        typealias Message = CachePairEvaluation.Message
        let history = [Message(role: "user", content: "I have a Flixora plan"), Message(role: "assistant", content: "It renews on the 14th.")]
        let a = history + [Message(role: "user", content: "cancel it")]
        let b = history + [Message(role: "user", content: "Cancel it.")]
        #expect(CachePairEvaluation.samePartition(a, b))
        var other = b
        other[1].content = "It renews on the 15th."
        #expect(!CachePairEvaluation.samePartition(a, other))
        #expect(!CachePairEvaluation.samePartition(history, history), "a last turn that is not the user's has no partition")
    }

    @Test func theShippedPairsLoad() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let pairs = try CachePairEvaluation.load(from: root.appendingPathComponent("data/fow-cache").path)
        #expect(pairs.filter { $0.set == "pairs" }.count == 600)
        #expect(pairs.filter { $0.set == "conv-parts" }.count == 180)
        #expect(pairs.filter { $0.set == "conv-long" }.count == 60)
        #expect(pairs.filter { $0.set == "pairs" && $0.sameAnswer }.count == 300)
        #expect(pairs.allSatisfy { !$0.textA.isEmpty && !$0.textB.isEmpty })
    }
}
