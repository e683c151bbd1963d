import Foundation
import ProximaAudit
import ProximaCore
import Testing

extension FuzzSuites {
    /// Truncations and mutations of each file of a valid log directory (the segments and
    /// `checkpoints.log`): the verifier always returns a report, and a report without problems
    /// means the segments' whole lines are the original ones (only a torn tail no checkpoint covers
    /// may be added).
    @Suite struct AuditVerifierFuzzTests {
        @Test func tamperedDirectoriesAlwaysGiveAReport() async throws {
            let log = try TestLog.make(records: 20, checkpointsAt: [8, 16, 20])
            let directory = try log.write()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = [try NoteVerifier(verifierKey: log.signer.verifierKey)]
            let names = log.segments.map { AuditFiles.segmentName(firstSeq: $0.firstSeq) } + [AuditFiles.checkpoints]
            let originals = try names.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent($0))) }
            #expect(try AuditVerifier.verify(directory: directory, keys: keys).isValid)

            var kinds: [String: Int] = [:]
            var inputs = 0
            func check(file: Int, bytes: [UInt8]) async throws {
                let url = URL(fileURLWithPath: directory).appendingPathComponent(names[file])
                try Data(bytes).write(to: url)
                defer { try? Data(originals[file]).write(to: url) }
                let report = try AuditVerifier.verify(directory: directory, keys: keys)
                for problem in report.problems { kinds[problem.kind.rawValue, default: 0] += 1 }
                if report.isValid, file < names.count - 1 {
                    #expect(bytes.starts(with: originals[file]), "\(names[file]) changed but verified: \(String(decoding: bytes, as: UTF8.self))")
                }
                inputs += 1
                if inputs % 32 == 0 { await Task.yield() }
            }
            for (file, original) in originals.enumerated() {
                for length in stride(from: 0, to: original.count, by: 31) { try await check(file: file, bytes: Array(original[0..<length])) }
            }
            var random = SplitMix64(seed: AuditFuzzing.seed ^ 0xD1)
            for _ in 0..<AuditFuzzing.iterations(default: 300) {
                let file = Int.random(in: 0..<originals.count, using: &random)
                try await check(file: file, bytes: AuditFuzzing.mutate(originals[file], using: &random))
            }
            #expect(inputs > 300)
            // The mutations reach most kinds of finding, not one wall.
            #expect(kinds.keys.count >= 5, "\(kinds)")
        }
    }
}
