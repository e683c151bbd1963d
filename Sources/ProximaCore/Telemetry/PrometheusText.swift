/// One sample of the Prometheus text exposition format: `name{label="value",...} value`.
public struct PrometheusSample: Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    public var value: Double

    public init(name: String, labels: [String: String] = [:], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }
}

/// Reads the Prometheus text exposition format (what vLLM, SGLang, llama.cpp's server and the
/// emulator serve at `/metrics`). Comments and malformed lines are skipped, so one odd line from an
/// engine never hides the rest. It reads bytes, not characters: an engine's `/metrics` can be
/// hundreds of kilobytes, read every few seconds per endpoint. Every input ends in a list of samples
/// (each line is read once, left to right).
public enum PrometheusText {
    public static func parse(_ text: String) -> [PrometheusSample] {
        var text = text
        return text.withUTF8 { bytes in
            var samples: [PrometheusSample] = []
            var lineStart = 0
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count, bytes[lineEnd] != 0x0A, bytes[lineEnd] != 0x0D { lineEnd += 1 }
                if lineEnd > lineStart, let sample = parseLine(UnsafeBufferPointer(rebasing: bytes[lineStart..<lineEnd])) {
                    samples.append(sample)
                }
                lineStart = lineEnd + 1
            }
            return samples
        }
    }

    static func parseLine(_ line: UnsafeBufferPointer<UInt8>) -> PrometheusSample? {
        var index = 0
        func skip(_ predicate: (UInt8) -> Bool) {
            while index < line.count, predicate(line[index]) { index += 1 }
        }
        func text(_ range: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: line[range]), as: UTF8.self) }
        skip { $0 == 0x20 || $0 == 0x09 }
        guard index < line.count, line[index] != UInt8(ascii: "#") else { return nil }
        let nameStart = index
        skip(isNameByte)
        guard index > nameStart else { return nil }
        let name = text(nameStart..<index)
        var labels: [String: String] = [:]
        if index < line.count, line[index] == UInt8(ascii: "{") {
            index += 1
            while true {
                skip { $0 == 0x20 || $0 == UInt8(ascii: ",") }
                guard index < line.count else { return nil }
                if line[index] == UInt8(ascii: "}") {
                    index += 1
                    break
                }
                let keyStart = index
                skip { $0 != UInt8(ascii: "=") && $0 != UInt8(ascii: "}") }
                let key = text(keyStart..<index)
                guard index < line.count, line[index] == UInt8(ascii: "=") else { return nil }
                index += 1
                guard index < line.count, line[index] == UInt8(ascii: "\"") else { return nil }
                index += 1
                var value: [UInt8] = []
                var closed = false
                while index < line.count {
                    let byte = line[index]
                    index += 1
                    if byte == UInt8(ascii: "\\"), index < line.count {
                        value.append(line[index] == UInt8(ascii: "n") ? 0x0A : line[index])
                        index += 1
                    } else if byte == UInt8(ascii: "\"") {
                        closed = true
                        break
                    } else {
                        value.append(byte)
                    }
                }
                guard closed else { return nil }
                labels[String(key[...].trimmingSpaces())] = String(decoding: value, as: UTF8.self)
            }
        }
        skip { $0 == 0x20 }
        let valueStart = index
        skip { $0 != 0x20 }
        guard index > valueStart, let value = parseValue(text(valueStart..<index)[...]) else { return nil }
        return PrometheusSample(name: name, labels: labels, value: value)
    }

    /// Letters, digits, `_` and `:`.
    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: ":"):
            true
        default: false
        }
    }

    static func parseValue(_ text: Substring) -> Double? {
        switch text {
        case "+Inf": .infinity
        case "-Inf": -.infinity
        case "NaN": .nan
        default: Double(text)
        }
    }
}

/// What an engine reports about its load, in engine-neutral terms, read from its metrics.
public struct EngineLoadSnapshot: Sendable, Equatable {
    public var running: Double?
    public var waiting: Double?
    /// Fraction of the KV cache in use, 0...1.
    public var kvCacheUsage: Double?
    public var prefixCacheQueries: Double?
    public var prefixCacheHits: Double?
    /// Power draw in watts (DCGM-style gauge), summed over GPUs.
    public var powerWatts: Double?

    public init(
        running: Double? = nil, waiting: Double? = nil, kvCacheUsage: Double? = nil, prefixCacheQueries: Double? = nil,
        prefixCacheHits: Double? = nil, powerWatts: Double? = nil
    ) {
        self.running = running
        self.waiting = waiting
        self.kvCacheUsage = kvCacheUsage
        self.prefixCacheQueries = prefixCacheQueries
        self.prefixCacheHits = prefixCacheHits
        self.powerWatts = powerWatts
    }

    /// The most requests (running or waiting) and watts believed from an engine. An engine that
    /// reports more is broken or hostile; believing `1e308` would make every prediction infinite.
    public static let maximumCount = 1_000_000.0
    /// The largest counter (prefix-cache queries and hits, in tokens) believed from an engine.
    public static let maximumCounter = 1e15

    /// The snapshot with every value in its range: counts and watts in `0...maximumCount`, counters
    /// in `0...maximumCounter`, KV-cache usage in `0...1`; NaN becomes unknown (nil), infinities
    /// the nearest bound. Applied where engine values enter (parsing and ``FleetTelemetry``).
    public func clamped() -> EngineLoadSnapshot {
        func clamp(_ value: Double?, _ upper: Double) -> Double? {
            guard let value, !value.isNaN else { return nil }
            return min(max(value, 0), upper)
        }
        return EngineLoadSnapshot(
            running: clamp(running, Self.maximumCount), waiting: clamp(waiting, Self.maximumCount),
            kvCacheUsage: clamp(kvCacheUsage, 1), prefixCacheQueries: clamp(prefixCacheQueries, Self.maximumCounter),
            prefixCacheHits: clamp(prefixCacheHits, Self.maximumCounter), powerWatts: clamp(powerWatts, Self.maximumCount))
    }

    /// Reads vLLM's metric names (`vllm:num_requests_running`, `vllm:num_requests_waiting`,
    /// `vllm:kv_cache_usage_perc` or the older `vllm:gpu_cache_usage_perc`, prefix-cache counters),
    /// llama.cpp server's (`llamacpp:requests_processing`, `llamacpp:requests_deferred`,
    /// `llamacpp:kv_cache_usage_ratio`) and DCGM's power gauge (`DCGM_FI_DEV_POWER_USAGE`). Values of
    /// several series (per model, per GPU) are summed; non-finite samples are skipped and the sums
    /// clamped (see ``clamped()``).
    public init(samples: [PrometheusSample]) {
        func sum(_ names: [String]) -> Double? {
            var total: Double?
            for sample in samples where names.contains(sample.name) && sample.value.isFinite {
                total = (total ?? 0) + sample.value
            }
            return total
        }
        self.init(
            running: sum(["vllm:num_requests_running", "llamacpp:requests_processing", "sglang:num_running_reqs"]),
            waiting: sum(["vllm:num_requests_waiting", "llamacpp:requests_deferred", "sglang:num_queue_reqs"]),
            kvCacheUsage: sum(["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "llamacpp:kv_cache_usage_ratio"]),
            prefixCacheQueries: sum(["vllm:prefix_cache_queries_total", "vllm:prefix_cache_queries"]),
            prefixCacheHits: sum(["vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits"]),
            powerWatts: sum(["DCGM_FI_DEV_POWER_USAGE"]))
        self = clamped()
    }
}
