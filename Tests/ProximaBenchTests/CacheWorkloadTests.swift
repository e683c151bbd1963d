import Foundation
import ProximaCore
import Testing
@testable import ProximaBench

/// The repetitive chat workload built from the fow-cache pairs: kinds right by construction, shares
/// near the asked mix, one max_tokens per cluster, deterministic.
struct CacheWorkloadTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let pairs: [CacheWorkload.LabelledPair] = (try? CacheWorkload.loadPairs(from: root + "/data/fow-cache")) ?? []
    static let trace: Trace? = try? TraceFiles.load("mooncake", from: root + "/data/traces")

    @Test func theShippedPairsGiveDistinctQuestionsWithConsistentAnswerClasses() throws {
        #expect(Self.pairs.count == 780)
        let questions = CacheWorkload.questions(from: Self.pairs)
        #expect(questions.filter { !$0.isConversation }.count == 1_106)
        #expect(questions.filter(\.isConversation).count == 360)
        // No different-answer pair falls inside one answer class, and neighbours share a cluster.
        for (index, question) in questions.enumerated() {
            for neighbour in question.differentAnswerNeighbours {
                #expect(questions[neighbour].answerClass != question.answerClass, "\(index)")
                #expect(questions[neighbour].cluster == question.cluster)
            }
        }
    }

    @Test func eachArrivalsKindFollowsFromWhatWasAskedBefore() throws {
        let trace = try #require(Self.trace)
        let workload = try CacheWorkload.build(pairs: Self.pairs, trace: trace, rate: 8, duration: 60)
        #expect(workload.arrivals.count > 400)
        var asked: Set<Int> = []
        var classes: Set<Int> = []
        var clusterTokens: [Int: Int] = [:]
        var previous = 0.0
        for arrival in workload.arrivals {
            let question = workload.questions[arrival.question]
            let expected: CacheWorkload.Kind =
                asked.contains(arrival.question)
                ? .exactRepeat
                : classes.contains(question.answerClass)
                    ? .paraphrase : question.differentAnswerNeighbours.contains(where: asked.contains) ? .variant : .fresh
            #expect(arrival.kind == expected)
            #expect(arrival.sendAt >= previous && arrival.sendAt < 60)
            previous = arrival.sendAt
            #expect(clusterTokens[question.cluster, default: arrival.maxTokens] == arrival.maxTokens)
            clusterTokens[question.cluster] = arrival.maxTokens
            #expect((1...512).contains(arrival.maxTokens))
            asked.insert(arrival.question)
            classes.insert(question.answerClass)
        }
        // Over a minute the shares come near the asked mix (30/20/10/40), multi-turn near 20%.
        let counts = workload.kindCounts
        let total = Double(workload.arrivals.count)
        func share(_ kind: CacheWorkload.Kind) -> Double { Double(counts[kind] ?? 0) / total }
        #expect(abs(share(.exactRepeat) - 0.30) < 0.06)
        #expect(abs(share(.paraphrase) - 0.20) < 0.06)
        #expect(abs(share(.variant) - 0.10) < 0.06)
        #expect(abs(share(.fresh) - 0.40) < 0.06)
        let conversations = Double(workload.arrivals.filter { workload.questions[$0.question].isConversation }.count) / total
        #expect(abs(conversations - 0.2) < 0.06)
        // Popularity is skewed: the most asked question is asked several times.
        var perQuestion: [Int: Int] = [:]
        for arrival in workload.arrivals { perQuestion[arrival.question, default: 0] += 1 }
        #expect((perQuestion.values.max() ?? 0) >= 5)
    }

    @Test func theSameSeedGivesTheSameWorkloadAndBadSharesAreRefused() throws {
        let trace = try #require(Self.trace)
        let first = try CacheWorkload.build(pairs: Self.pairs, trace: trace, rate: 5, duration: 20, seed: 3)
        let second = try CacheWorkload.build(pairs: Self.pairs, trace: trace, rate: 5, duration: 20, seed: 3)
        #expect(first.arrivals.map(\.question) == second.arrivals.map(\.question))
        #expect(first.arrivals.map(\.sendAt) == second.arrivals.map(\.sendAt))
        #expect(throws: CacheWorkload.Failure.self) {
            try CacheWorkload.build(pairs: Self.pairs, trace: trace, rate: 5, duration: 20, mix: .init(exactRepeat: 0.5, fresh: 0.5, conversationShare: 0.2))
        }
        #expect(throws: CacheWorkload.Failure.self) { try CacheWorkload.build(pairs: Self.pairs, trace: trace, rate: 0, duration: 20) }
        #expect(throws: CacheWorkload.Failure.self) { try CacheWorkload.build(pairs: Self.pairs, trace: trace, rate: .nan, duration: 20) }
    }

    @Test func requestBodiesAreStreamedChatWithUsageAndTheSystemPrompt() throws {
        let body = CacheBenchClient.body(model: "m", messages: [.init(role: "system", content: "s"), .init(role: "user", content: "say \"hi\"")], maxTokens: 7)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(json["stream"] as? Bool == true)
        #expect((json["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        #expect(json["max_tokens"] as? Int == 7)
        #expect(((json["messages"] as? [[String: Any]])?.last?["content"] as? String) == "say \"hi\"")
    }
}
