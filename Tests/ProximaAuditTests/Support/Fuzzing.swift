import Foundation
import ProximaCore
import Testing

/// The fuzz suites of this target, one at a time (as in the other test targets: `swift test --filter
/// FuzzSuites` runs every target's suites of that name, and scripts/test runs them first).
@Suite(.serialized) enum FuzzSuites {}

/// Deterministic inputs for the audit log's parsers (signed notes, checkpoint bodies, verifier
/// keys): every truncation of each seed, then random mutations (bit flips, bytes inserted, deleted
/// or duplicated, ranges cut, and tokens that matter to these formats spliced in).
/// `PROXIMA_FUZZ_ITERATIONS` sets the mutations, `PROXIMA_FUZZ_SEED` their seed.
enum AuditFuzzing {
    static func iterations(default count: Int) -> Int {
        ProcessInfo.processInfo.environment["PROXIMA_FUZZ_ITERATIONS"].flatMap { Int($0) }.map { max(0, $0) } ?? count
    }

    static var seed: UInt64 {
        ProcessInfo.processInfo.environment["PROXIMA_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0xA0D1_7106
    }

    static let tokens: [[UInt8]] = [
        "\n", "\n\n", "— ", "—", "-- ", " ", "+", "=", "==", "/", "0", "-1", "00", "9223372036854775807", "9223372036854775808",
        "\r\n", "\t", "\u{0}", "é", "AAAA", "\"", "\\",
    ].map { Array($0.utf8) } + [[0xFF], [0xE2, 0x80], [0xE2], [0x80], [0xC3]]

    static func mutate(_ input: [UInt8], using random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let position = bytes.isEmpty ? 0 : Int.random(in: 0...bytes.count, using: &random)
            let inside = min(position, max(0, bytes.count - 1))
            switch Int.random(in: 0..<6, using: &random) {
            case 0 where !bytes.isEmpty: bytes[inside] ^= 1 << UInt8.random(in: 0..<8, using: &random)
            case 1: bytes.insert(UInt8.random(in: 0...255, using: &random), at: position)
            case 2 where !bytes.isEmpty: bytes.remove(at: inside)
            case 3 where !bytes.isEmpty: bytes.insert(bytes[inside], at: inside)
            case 4 where !bytes.isEmpty:
                let end = min(bytes.count, inside + Int.random(in: 1...16, using: &random))
                bytes.removeSubrange(inside..<end)
            default: bytes.insert(contentsOf: tokens.randomElement(using: &random)!, at: position)
            }
        }
        return bytes
    }

    /// Every cut of every seed, then `iterations` mutations; `check` sees each input. Returns the
    /// number of inputs.
    static func run(seeds: [[UInt8]], iterations: Int, salt: UInt64, _ check: ([UInt8]) throws -> Void) async rethrows -> Int {
        var count = 0
        for seedBytes in seeds {
            for length in 0...seedBytes.count {
                try check(Array(seedBytes[0..<length]))
                count += 1
                if count % 64 == 0 { await Task.yield() }
            }
        }
        var random = SplitMix64(seed: seed ^ salt)
        for _ in 0..<iterations {
            try check(mutate(seeds.randomElement(using: &random)!, using: &random))
            count += 1
            if count % 64 == 0 { await Task.yield() }
        }
        return count
    }
}
