import ArgumentParser
import Foundation
import ProximaAudit

// `proxima audit ...`: the audit log's offline tools. `verify` needs nothing but the files and the
// verifier keys; the others (search, prune, key) work on a log directory or through the admin API.

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tools for the tamper-evident audit log (docs/governance.md).",
        subcommands: [AuditVerify.self, AuditSearch.self, AuditPrune.self, AuditKey.self])
}

struct AuditVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify audit log directories offline against their signed checkpoints.",
        discussion: """
            Recomputes each directory's Merkle tree and record chain and checks every signed checkpoint with the key \
            named after the log's origin (one directory per replica, each with its own key). Prints one line per \
            problem (changed, removed, reordered or inserted records with their seq and place; bad signatures; \
            inconsistent checkpoints) and a summary per directory. Exits 1 when any problem is found.
            """)

    @Argument(help: "Audit log directories (one per replica).")
    var directories: [String]

    @Option(name: .long, help: "A verifier key (<origin>+<hash>+<base64 key>), or @file holding keys one per line (repeatable).")
    var key: [String] = []

    @Option(
        name: .long,
        help: "A signed checkpoint kept from earlier (the note's text, or @file holding one): it must still be in the log (repeatable).")
    var checkpoint: [String] = []

    @Flag(name: .long, help: "Every record must be covered by a verified checkpoint (a log that was closed).")
    var requireCoverage = false

    @Flag(name: .long, help: "Print the reports as JSON.")
    var json = false

    func validate() throws {
        if key.isEmpty { throw ValidationError("give at least one --key (a verifier key or @file), e.g. @<dir>/audit-key.pub") }
    }

    func run() async throws {
        var verifiers: [NoteVerifier] = []
        for value in key {
            let lines = try Self.values(value).split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            for line in lines where !line.isEmpty && !line.hasPrefix("#") {
                do {
                    verifiers.append(try NoteVerifier(verifierKey: line))
                } catch {
                    throw ValidationError("--key \(value): \(error)")
                }
            }
        }
        // A kept checkpoint may also be a line copied from checkpoints.log (the note as a JSON string).
        let known = try checkpoint.map { value in
            let text = try Self.values(value)
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.hasPrefix("\""), let note = try? JSONDecoder().decode(String.self, from: Data(trimmed.utf8)) { return note }
            return text
        }
        let reports = AuditVerifier.verify(
            directories: directories, keys: verifiers, options: .init(knownCheckpoints: known, requireCoverage: requireCoverage))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(reports), as: UTF8.self))
        } else {
            for report in reports {
                let name = report.directory ?? "?"
                for problem in report.problems { print("\(name): \(problem)") }
                for note in report.notes { print("\(name): note: \(note)") }
                let verdict = report.isValid ? "OK" : "\(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")"
                print(
                    "\(name): \(verdict): origin \(report.origin ?? "unknown"), \(report.records) records, "
                        + "\(report.checkpointsVerified) checkpoints verified, verified size \(report.verifiedSize)")
            }
        }
        if reports.contains(where: { !$0.isValid }) { throw ExitCode(1) }
    }

    /// The value itself, or the contents of the file after `@`.
    static func values(_ value: String) throws -> String {
        guard value.hasPrefix("@") else { return value }
        let path = String(value.dropFirst())
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read \(path): \(error.localizedDescription)")
        }
    }
}
