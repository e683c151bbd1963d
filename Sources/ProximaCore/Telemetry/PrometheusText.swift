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
/// engine never hides the rest.
public enum PrometheusText {
    public static func parse(_ text: String) -> [PrometheusSample] {
        var samples: [PrometheusSample] = []
        for line in text.split(whereSeparator: \.isNewline) {
            if let sample = parseLine(line) { samples.append(sample) }
        }
        return samples
    }

    static func parseLine(_ line: Substring) -> PrometheusSample? {
        var rest = line.drop { $0 == " " || $0 == "\t" }
        guard let first = rest.first, first != "#" else { return nil }
        let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }
        guard !name.isEmpty else { return nil }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while true {
                rest = rest.drop { $0 == " " || $0 == "," }
                if rest.first == "}" {
                    rest = rest.dropFirst()
                    break
                }
                let key = rest.prefix { $0 != "=" && $0 != "}" }
                rest = rest.dropFirst(key.count)
                guard rest.first == "=" else { return nil }
                rest = rest.dropFirst()
                guard rest.first == "\"" else { return nil }
                rest = rest.dropFirst()
                var value = ""
                var escaped = false
                var closed = false
                while let character = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        value.append(character == "n" ? "\n" : character)
                        escaped = false
                    } else if character == "\\" {
                        escaped = true
                    } else if character == "\"" {
                        closed = true
                        break
                    } else {
                        value.append(character)
                    }
                }
                guard closed else { return nil }
                labels[String(key.trimmingSpaces())] = value
            }
        }
        let fields = rest.split(separator: " ", omittingEmptySubsequences: true)
        guard let valueText = fields.first, let value = parseValue(valueText) else { return nil }
        return PrometheusSample(name: String(name), labels: labels, value: value)
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

    /// Reads vLLM's metric names (`vllm:num_requests_running`, `vllm:num_requests_waiting`,
    /// `vllm:kv_cache_usage_perc` or the older `vllm:gpu_cache_usage_perc`, prefix-cache counters),
    /// llama.cpp server's (`llamacpp:requests_processing`, `llamacpp:requests_deferred`,
    /// `llamacpp:kv_cache_usage_ratio`) and DCGM's power gauge (`DCGM_FI_DEV_POWER_USAGE`). Values of
    /// several series (per model, per GPU) are summed.
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
    }
}
