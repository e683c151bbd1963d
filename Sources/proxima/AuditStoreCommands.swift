import ArgumentParser
import Foundation
import Logging
import ProximaAudit
import ProximaCore
import ProximaGateway

// `proxima audit search|prune|key`: the audit log's files from the command line (docs/governance.md).
// The lead registers these in the `proxima audit` group.
//
// `search` and `key` only read: they work next to a running gateway (search reads the index,
// which may lag the segments by the last group commits). `prune` writes: it opens the log like the
// gateway does, which takes an exclusive `flock` on `audit.lock` in the log's directory, so it
// refuses to run while a gateway (or another prune) holds the log, and a gateway cannot start while
// it runs.

/// Which log: `--dir`, or the `audit:` section (and `data_dir`) of `--config`.
struct AuditLogOptions: ParsableArguments {
    @Option(name: .customLong("dir"), help: "The audit log's directory (default: audit.directory of --config, or <data_dir>/audit).")
    var directory: String?

    @Option(name: .long, help: "YAML configuration file; its audit: section names the log's directory, origin and key.")
    var config: String?

    func resolve() throws -> (directory: String, settings: AuditSettings) {
        var configuration = ProximaConfiguration()
        if let config {
            do {
                configuration = try ConfigurationLoader.load(path: config, environment: ProcessInfo.processInfo.environment)
            } catch {
                throw AuditCommandFailure(message: "\(error)", exitCode: 78)
            }
        }
        let directory = directory ?? configuration.audit.logDirectory(dataDirectory: configuration.dataDirectory)
        return (directory, configuration.audit)
    }
}

struct AuditCommandFailure: Error {
    var message: String
    var exitCode: Int32

    /// Prints the message and ends the command with its code.
    static func report(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let failure as AuditCommandFailure {
            FileHandle.standardError.write(Data("proxima: \(failure.message)\n".utf8))
            throw ExitCode(failure.exitCode)
        } catch let error as AuditError {
            FileHandle.standardError.write(Data("proxima: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Parses `2026-12-01` (midnight UTC) or an RFC 3339 time into Unix seconds.
func auditTime(_ text: String, option: String) throws -> Double {
    if let seconds = AuditTime.unixSeconds(text) { return seconds }
    if text.utf8.count == 10, let seconds = AuditTime.unixSeconds(text + "T00:00:00Z") { return seconds }
    throw AuditCommandFailure(message: "\(option): '\(text)' is not a date (2026-12-01) or an RFC 3339 time (2026-12-01T08:00:00Z)", exitCode: 64)
}

struct AuditSearch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search", abstract: "Print the audit records matching a query, oldest first, one JSON line each (from the log's index).")

    @OptionGroup var log: AuditLogOptions

    @Option(name: .long, help: "Only this tenant's records.")
    var tenant: String?

    @Option(name: .customLong("request-id"), help: "Only the record(s) of this request id.")
    var requestID: String?

    @Option(name: .long, help: "Records at or after this time (2026-12-01 or RFC 3339).")
    var since: String?

    @Option(name: .long, help: "Records before this time (2026-12-01 or RFC 3339).")
    var until: String?

    @Option(name: .long, help: "Only records of this kind: request, admin or retention.")
    var kind: String?

    @Option(name: .long, help: "At most this many records (1 to \(AuditQuery.maximumLimit)).")
    var limit: Int = 100

    func run() async throws {
        try await AuditCommandFailure.report {
            let (directory, _) = try log.resolve()
            guard (1...AuditQuery.maximumLimit).contains(limit) else {
                throw AuditCommandFailure(message: "--limit must be 1 to \(AuditQuery.maximumLimit)", exitCode: 64)
            }
            var recordKind: AuditRecord.Kind?
            if let kind {
                guard let parsed = AuditRecord.Kind(rawValue: kind) else {
                    throw AuditCommandFailure(message: "--kind must be request, admin or retention", exitCode: 64)
                }
                recordKind = parsed
            }
            let query = AuditQuery(
                tenant: tenant, requestID: requestID, since: try since.map { try auditTime($0, option: "--since") },
                until: try until.map { try auditTime($0, option: "--until") }, kind: recordKind, limit: limit)
            for line in try AuditLog.search(directory: directory, query: query) { print(line) }
        }
    }
}

struct AuditPrune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove (or archive) the audit log's whole segments older than a date, leaving a signed retention record.",
        discussion: """
            Works on the log's directory while no gateway holds it: it takes the exclusive lock \
            audit.lock there (the gateway holds it while it runs) and fails at once if it is taken. \
            It appends a retention record (what is removed, up to which record, and the tree's frontier \
            there), signs a checkpoint over it, then deletes the segments or moves them to archive/.
            """)

    @OptionGroup var log: AuditLogOptions

    @Option(name: .long, help: "Remove segments whose records are all older than this (2026-12-01 or RFC 3339).")
    var before: String?

    @Option(name: .customLong("older-than-days"), help: "Remove segments whose records are all older than this many days (default: audit.retention_days).")
    var olderThanDays: Double?

    @Flag(name: .long, help: "Move the segments to archive/ in the log's directory instead of deleting them.")
    var archive = false

    @Option(name: .long, help: "The log's origin (default: audit.origin of --config, else the name in audit-key.pub).")
    var origin: String?

    @Option(name: .long, help: "Who prunes, as recorded in the retention record (default: cli:$USER).")
    var actor: String?

    func run() async throws {
        try await AuditCommandFailure.report {
            let (directory, settings) = try log.resolve()
            let cutoff: Double
            switch (before, olderThanDays ?? (before == nil ? settings.retentionDays : nil)) {
            case (let before?, nil):
                cutoff = try auditTime(before, option: "--before")
            case (nil, let days?):
                guard days > 0, days.isFinite, days < 1_000_000 else {
                    throw AuditCommandFailure(message: "--older-than-days must be a positive number of days", exitCode: 64)
                }
                cutoff = Date().timeIntervalSince1970 - days * 86_400
            case (.some, .some):
                throw AuditCommandFailure(message: "give either --before or --older-than-days, not both", exitCode: 64)
            case (nil, nil):
                throw AuditCommandFailure(message: "give --before or --older-than-days (or set audit.retention_days)", exitCode: 64)
            }
            guard let origin = origin ?? settings.origin ?? Self.publishedOrigin(directory: directory) else {
                throw AuditCommandFailure(message: "no audit log in \(directory) (no audit-key.pub); give --origin or --config", exitCode: 1)
            }
            let actor = actor ?? "cli:\(ProcessInfo.processInfo.environment["USER"] ?? "unknown")"
            let log = try await AuditLog.open(directory: directory, origin: origin, settings: settings, logger: Logger(label: "proxima.audit"))
            let summary: AuditRetentionSummary
            do {
                summary = try await log.prune(before: cutoff, archive: archive, actor: actor)
            } catch {
                await log.close()
                throw error
            }
            await log.close()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        }
    }

    /// The key name in `audit-key.pub`: the origin the log's checkpoints are signed as.
    static func publishedOrigin(directory: String) -> String? {
        guard let text = try? String(contentsOfFile: directory + "/" + AuditFiles.publicKey, encoding: .utf8),
            let name = text.split(separator: "+").first, !name.isEmpty
        else { return nil }
        return String(name)
    }
}

struct AuditKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Print the audit log's verifier key (audit-key.pub), for `proxima audit verify` and auditors.")

    @OptionGroup var log: AuditLogOptions

    func run() async throws {
        try await AuditCommandFailure.report {
            let (directory, _) = try log.resolve()
            let path = directory + "/" + AuditFiles.publicKey
            guard let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty else {
                throw AuditCommandFailure(message: "no verifier key at \(path): the log is created when the gateway first starts with audit enabled", exitCode: 1)
            }
            print(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
