import Foundation
import ProximaCore
import Synchronization
import Testing

/// The fuzz suites, one at a time: each keeps a core busy, and two at once would leave the other
/// suites' gateways none (their deadlines are real).
@Suite(.serialized) enum FuzzSuites {}

/// A small deterministic fuzzer for the parsers that read what callers, engines, files and the admin
/// API send. Every input is derived from a seed, so a failure names an input that can be made
/// again: the suite, the seed document and the iteration.
///
/// Inputs are every truncation of each seed document, then random mutations of the seeds: bit flips,
/// bytes inserted, deleted or duplicated, ranges repeated or cut, and splices of tokens known to
/// break parsers (`\u` at the end, lone surrogates, huge and non-finite numbers, deep nesting, invalid
/// UTF-8, CR/LF).
///
/// `PROXIMA_FUZZ_ITERATIONS` sets the mutations per suite (the CI default is each suite's own);
/// `scripts/fuzz` runs a long campaign with it.
enum Fuzzing {
    /// Mutations per suite: `PROXIMA_FUZZ_ITERATIONS` when set, else the suite's CI default.
    static func iterations(default count: Int) -> Int {
        if let text = ProcessInfo.processInfo.environment["PROXIMA_FUZZ_ITERATIONS"], let value = Int(text), value >= 0 {
            return value
        }
        return count
    }

    /// The seed of the random mutations: `PROXIMA_FUZZ_SEED` when set (a long run explores new inputs
    /// with a new seed), else a fixed one so CI runs the same inputs every time.
    static var seed: UInt64 {
        ProcessInfo.processInfo.environment["PROXIMA_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x5EED_1234
    }

    /// Tokens spliced into documents: what broke parsers here or elsewhere.
    static let interestingTokens: [[UInt8]] = {
        var tokens: [[UInt8]] = [
            #"\u"#, #"\u0"#, #"\u00e"#, #"\ud800"#, #"\udc00"#, #"\ud83d\ude00"#, #"\ud800\u0041"#, #"\"#, #"\""#, #"""#,
            "9223372036854775807", "9223372036854775808", "-9223372036854775809", "2147483648", "99999999999999999999999",
            "1e308", "1e309", "-1e308", "1e-400", "1.7976931348623157e308", "NaN", "nan", "Infinity", "-Infinity", "+Inf", "-Inf",
            ".nan", ".inf", "-.inf", "-0", "0.0", "1E400", "1e", "-", ".5",
            "null", "true", "false", "{}", "[]", "{", "}", "[", "]", ",", ":", #"":""#, #""a":1,"#,
            "\r\n", "\n", "\n\n", "\r\n\r\n", "\t", " ", "data: ", "data:", ": keep-alive\n\n", "data: [DONE]\n\n", "event: error\n",
            "# HELP x y\n", "{le=\"+Inf\"}", "{a=\"", "\\\"", "---\n", "- ", "&a ", "*a", "!!binary ", "? ", "|\n", ">\n",
            "é", "😀", "\u{2028}", "\u{0}",
        ].map { Array($0.utf8) }
        tokens += [[0xFF], [0xC0, 0xAF], [0xC3], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x80], [0xFE, 0xFF]]
        tokens.append(Array(String(repeating: "[", count: 200).utf8))
        tokens.append(Array(String(repeating: "{\"a\":", count: 100).utf8))
        tokens.append(Array(String(repeating: "x", count: 5_000).utf8))
        return tokens
    }()

    /// One to four random mutations of `input`.
    static func mutate(_ input: [UInt8], using random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            mutateOnce(&bytes, using: &random)
        }
        return bytes
    }

    private static func mutateOnce(_ bytes: inout [UInt8], using random: inout SplitMix64) {
        let position = bytes.isEmpty ? 0 : Int.random(in: 0...bytes.count, using: &random)
        let inside = min(position, max(0, bytes.count - 1))
        switch Int.random(in: 0..<10, using: &random) {
        case 0 where !bytes.isEmpty:
            bytes[inside] ^= 1 << UInt8.random(in: 0..<8, using: &random)
        case 1:
            bytes.insert(UInt8.random(in: 0...255, using: &random), at: position)
        case 2 where !bytes.isEmpty:
            bytes.remove(at: inside)
        case 3 where !bytes.isEmpty:
            bytes.insert(bytes[inside], at: inside)
        case 4 where !bytes.isEmpty:
            // Repeat a short range (a member, a line) a few times.
            let end = min(bytes.count, inside + Int.random(in: 1...32, using: &random))
            let range = Array(bytes[inside..<end])
            for _ in 0..<Int.random(in: 1...4, using: &random) { bytes.insert(contentsOf: range, at: inside) }
        case 5 where !bytes.isEmpty:
            let end = min(bytes.count, inside + Int.random(in: 1...16, using: &random))
            bytes.removeSubrange(inside..<end)
        case 6 where !bytes.isEmpty:
            // Replace a byte with a structural character.
            bytes[inside] = Array(#"{}[]",:\ 0-e."#.utf8).randomElement(using: &random)!
        case 7 where !bytes.isEmpty:
            bytes.removeSubrange(inside...)
        default:
            let token = interestingTokens.randomElement(using: &random)!
            if Bool.random(using: &random) || bytes.isEmpty {
                bytes.insert(contentsOf: token, at: position)
            } else {
                let end = min(bytes.count, inside + token.count)
                bytes.replaceSubrange(inside..<end, with: token)
            }
        }
    }

    /// Whether a long run asked for more than the CI defaults.
    static var isLongRun: Bool { ProcessInfo.processInfo.environment["PROXIMA_FUZZ_ITERATIONS"] != nil }

    /// The lengths each seed is cut at: every length, or for seeds longer than `everyByteUpTo` (slow
    /// parsers in CI) the middle of every line; a long run cuts every seed everywhere.
    static func cuts(of seed: [UInt8], everyByteUpTo limit: Int) -> [Int] {
        if seed.count <= limit || isLongRun { return Array(0...seed.count) }
        var lengths = [0]
        var lineStart = 0
        for (index, byte) in seed.enumerated() where byte == 0x0A {
            lengths.append((lineStart + index) / 2)
            lineStart = index + 1
        }
        return lengths + [(lineStart + seed.count) / 2, seed.count]
    }

    /// Runs `check` on every truncation of every seed and on `iterations` mutations, under a watchdog
    /// that stops the process with the input at fault when one input takes longer than `limit`
    /// (a parser that loops forever never lets a test report anything). Returns the inputs tried.
    ///
    /// It yields now and then: the suites run on the cooperative thread pool (two threads on two
    /// cores), and seconds of work without a suspension would starve the other suites' gateways and
    /// make their deadlines fail.
    @discardableResult
    static func run(
        _ suite: String, seeds: [[UInt8]], iterations: Int, cutEveryByteUpTo: Int = .max, limit: Duration = .seconds(10),
        _ check: (_ input: [UInt8], _ label: String) throws -> Void
    ) async rethrows -> Int {
        let watchdog = Watchdog(suite: suite, limit: limit)
        defer { watchdog.stop() }
        let started = ContinuousClock.now
        var count = 0
        for (index, seed) in seeds.enumerated() {
            for length in cuts(of: seed, everyByteUpTo: cutEveryByteUpTo) {
                let input = Array(seed[0..<length])
                watchdog.begin(input, .cut(seed: index, length: length))
                try check(input, "\(suite): seed \(index) cut at \(length)")
                count += 1
                if count % 32 == 0 { await Task.yield() }
            }
        }
        var random = SplitMix64(seed: seed ^ UInt64(truncatingIfNeeded: suite.utf8.reduce(5381) { ($0 << 5) &+ $0 &+ Int($1) }))
        for iteration in 0..<iterations {
            let which = Int.random(in: 0..<seeds.count, using: &random)
            let input = mutate(seeds[which], using: &random)
            watchdog.begin(input, .mutation(seed: which, iteration: iteration))
            try check(input, "\(suite): seed \(which) mutation \(iteration)")
            count += 1
            if count % 32 == 0 { await Task.yield() }
        }
        report(suite, inputs: count, elapsed: ContinuousClock.now - started)
        return count
    }

    /// Prints the count and rate when a long run asked for it (`scripts/fuzz` reads these lines).
    static func report(_ suite: String, inputs: Int, elapsed: Duration) {
        guard ProcessInfo.processInfo.environment["PROXIMA_FUZZ_REPORT"] != nil else { return }
        let seconds = max(elapsed.seconds, 1e-9)
        print("FUZZ suite=\(suite) inputs=\(inputs) seconds=\(String(format: "%.2f", seconds)) rate=\(Int(Double(inputs) / seconds))")
    }

    /// Bytes as text for a failure message: printable ASCII as is, the rest escaped.
    static func describe(_ bytes: [UInt8]) -> String {
        var text = ""
        for byte in bytes.prefix(600) {
            switch byte {
            case 0x20..<0x7F where byte != UInt8(ascii: "\\"): text.unicodeScalars.append(Unicode.Scalar(byte))
            default: text += "\\x" + String(byte, radix: 16)
            }
        }
        return bytes.count > 600 ? text + "... (\(bytes.count) bytes)" : text
    }
}

/// Stops the process, naming the input, when one input runs longer than its limit.
final class Watchdog: Sendable {
    /// Which input runs: a cut of a seed or a mutation, enough to make it again.
    enum Label: Sendable, CustomStringConvertible {
        case cut(seed: Int, length: Int)
        case mutation(seed: Int, iteration: Int)

        var description: String {
            switch self {
            case .cut(let seed, let length): "seed \(seed) cut at \(length)"
            case .mutation(let seed, let iteration): "mutation \(iteration) of seed \(seed)"
            }
        }
    }

    private struct Current {
        var input: [UInt8] = []
        var label = Label.cut(seed: 0, length: 0)
        var generation = 0
        var stopped = false
    }

    private let current = Mutex(Current())
    private let suite: String

    init(suite: String, limit: Duration) {
        self.suite = suite
        let thread = Thread { [self] in
            var seen = -1
            while true {
                Thread.sleep(forTimeInterval: limit.seconds)
                let (generation, stopped, label, input) = current.withLock { ($0.generation, $0.stopped, $0.label, $0.input) }
                if stopped { return }
                if generation == seen {
                    FileHandle.standardError.write(Data(
                        "fuzz \(suite): one input ran longer than \(limit) (\(label)): \(Fuzzing.describe(input))\n".utf8))
                    fatalError("fuzz \(suite): an input did not terminate (\(label))")
                }
                seen = generation
            }
        }
        thread.start()
    }

    /// An input starts (holding the array costs a reference count, not a copy).
    func begin(_ input: [UInt8], _ label: Label) {
        current.withLock {
            $0.generation &+= 1
            $0.input = input
            $0.label = label
        }
    }

    func stop() { current.withLock { $0.stopped = true } }
}
