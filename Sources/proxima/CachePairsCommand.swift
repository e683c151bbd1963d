import ArgumentParser
import Foundation
import ProximaBench
import ProximaCore

struct CachePairs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-pairs",
        abstract: "Measure the semantic cache's false hits on the fow-cache labelled pairs through a real embedder.",
        discussion: """
            Embeds the last user turn of every pair through an OpenAI-compatible /v1/embeddings endpoint (in
            each --modes input_type), then reports, for thresholds 0.80 to 0.99, precision and recall of
            "serve from cache" with and without the false-hit guards, per category, and for the conversation
            pairs under the rule that every earlier message must be identical. It picks the lowest threshold
            with false hits at most 1% of the negative pairs, none in negation and number_date, and at least
            half of the paraphrases served.
            """)

    @Option(help: "OpenAI-compatible base URL of the embeddings server, e.g. http://127.0.0.1:8090/v1.")
    var embeddingsURL: String

    @Option(help: "Embedding model name to request.")
    var model: String = "multilingual-e5-small-q4"

    @Option(help: "The fow-cache data directory.")
    var data: String = "data/fow-cache"

    @Option(help: "Comma-separated input_type values to compare (e5: query, passage; 'none' sends no input_type).")
    var modes: String = "query,passage"

    @Option(help: "Report at this threshold instead of choosing one.")
    var threshold: Double?

    @Option(help: "Also write the report as markdown to this file.")
    var markdown: String?

    @Option(help: "Keep the embeddings in this JSON file: read when it holds a mode, written after embedding (to rerun the report without the embedder).")
    var vectors: String?

    @Flag(help: "List the pairs the guarded cache gets wrong at the threshold.")
    var details = false

    func run() async throws {
        let pairs = try CachePairEvaluation.load(from: data)
        let texts = pairs.flatMap { [$0.textA, $0.textB] }
        var report = "Pairs: \(pairs.filter { $0.set == "pairs" }.count) single-turn, "
        report += "\(pairs.filter { $0.set == "conv-parts" }.count) conv-parts, \(pairs.filter { $0.set == "conv-long" }.count) conv-long; "
        report += "\(Set(texts).count) distinct texts embedded by \(model) at \(embeddingsURL).\n\n"
        for mode in modes.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
            var stored: [String: [String: [Float]]] = [:]
            if let path = vectors, let data = FileManager.default.contents(atPath: path) {
                stored = try JSONDecoder().decode([String: [String: [Float]]].self, from: data)
            }
            let embedded: [String: [Float]]
            if let known = stored[mode], Set(texts).isSubset(of: known.keys) {
                embedded = known
            } else {
                let started = ContinuousClock.now
                embedded = try await CachePairEvaluation.embed(
                    texts, baseURL: embeddingsURL, model: model, inputType: mode == "none" ? nil : mode)
                let elapsed = ContinuousClock.now - started
                FileHandle.standardError.write(Data("embedded \(embedded.count) texts (\(mode)) in \(elapsed)\n".utf8))
                if let path = vectors {
                    stored[mode] = embedded
                    try JSONEncoder().encode(stored).write(to: URL(fileURLWithPath: path))
                }
            }
            let outcomes = try CachePairEvaluation.outcomes(pairs, vectors: embedded)
            report += CachePairEvaluation.markdownReport(outcomes, mode: mode, fixedThreshold: threshold) + "\n"
            if details {
                let single = outcomes.filter { $0.set == "pairs" }
                let at = threshold ?? CachePairEvaluation.chooseThreshold(single) ?? 0.95
                report += CachePairEvaluation.errorList(outcomes, threshold: at) + "\n"
            }
        }
        print(report, terminator: "")
        if let markdown {
            try report.write(toFile: markdown, atomically: true, encoding: .utf8)
        }
    }
}
