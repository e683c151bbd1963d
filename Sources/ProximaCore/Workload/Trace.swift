/// One request of a workload trace: when it arrives and how big it is.
public struct TraceRequest: Sendable, Equatable {
    /// Seconds from the start of the trace.
    public var time: Double
    public var inputTokens: Int
    public var outputTokens: Int
    /// Ids of the prompt's KV blocks, in order (equal ids mean a shared prefix); empty when unknown.
    public var prefixBlockIDs: [UInt64]

    public init(time: Double, inputTokens: Int, outputTokens: Int, prefixBlockIDs: [UInt64] = []) {
        self.time = time
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.prefixBlockIDs = prefixBlockIDs
    }
}

/// A parsed trace, sorted by arrival time, with its known formats.
public struct Trace: Sendable {
    public var name: String
    public var requests: [TraceRequest]
    /// Tokens per block of `prefixBlockIDs` (Mooncake: 512), 0 when the trace has no block ids.
    public var blockTokens: Int

    public init(name: String, requests: [TraceRequest], blockTokens: Int = 0) {
        self.name = name
        self.requests = requests.sorted { $0.time < $1.time }
        self.blockTokens = blockTokens
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    public var duration: Double { (requests.last?.time ?? 0) - (requests.first?.time ?? 0) }

    /// The Azure LLM inference trace: `TIMESTAMP,ContextTokens,GeneratedTokens` with timestamps like
    /// `2023-11-16 18:17:03.9799600`; times become seconds from the first request.
    public static func parseAzure(_ text: String, name: String = "azure") throws(ParseError) -> Trace {
        var requests: [TraceRequest] = []
        var first: Double?
        var lineNumber = 0
        for line in text.split(whereSeparator: \.isNewline) {
            lineNumber += 1
            if lineNumber == 1 && line.hasPrefix("TIMESTAMP") { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count >= 3, let input = Int(fields[1]), let output = Int(fields[2]), input >= 0, output >= 0 else {
                throw ParseError(line: lineNumber, reason: "expected TIMESTAMP,ContextTokens,GeneratedTokens")
            }
            guard let seconds = secondsOfDay(fields[0]) else {
                throw ParseError(line: lineNumber, reason: "unreadable timestamp '\(fields[0])'")
            }
            let start = first ?? seconds
            first = start
            var time = seconds - start
            if time < -43_200 { time += 86_400 }  // the trace crossed midnight
            requests.append(TraceRequest(time: time, inputTokens: input, outputTokens: output))
        }
        return Trace(name: name, requests: requests)
    }

    /// The Mooncake trace: JSON lines `{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}`
    /// with 512-token blocks.
    public static func parseMooncake(_ text: String, name: String = "mooncake") throws(ParseError) -> Trace {
        var requests: [TraceRequest] = []
        var lineNumber = 0
        for line in text.split(whereSeparator: \.isNewline) {
            lineNumber += 1
            guard let timestamp = integerField("timestamp", in: line), let input = integerField("input_length", in: line),
                let output = integerField("output_length", in: line)
            else {
                throw ParseError(line: lineNumber, reason: "expected timestamp, input_length and output_length")
            }
            requests.append(
                TraceRequest(
                    time: Double(timestamp) / 1000, inputTokens: input, outputTokens: output,
                    prefixBlockIDs: integerArrayField("hash_ids", in: line).map(UInt64.init)))
        }
        return Trace(name: name, requests: requests, blockTokens: 512)
    }

    /// `HH:MM:SS.fraction` of a `YYYY-MM-DD HH:MM:SS.fraction` timestamp, in seconds.
    static func secondsOfDay(_ field: Substring) -> Double? {
        guard let space = field.firstIndex(of: " ") else { return nil }
        let parts = field[field.index(after: space)...].split(separator: ":")
        guard parts.count == 3, let hours = Double(parts[0]), let minutes = Double(parts[1]), let seconds = Double(parts[2]) else {
            return nil
        }
        return hours * 3600 + minutes * 60 + seconds
    }

    /// The integer after `"key":` in a flat JSON line.
    static func integerField(_ key: String, in line: Substring) -> Int? {
        guard let start = valueStart(of: key, in: line) else { return nil }
        let digits = line[start...].prefix { $0 == "-" || $0.isNumber }
        return Int(digits)
    }

    /// The integers of the array after `"key":` in a flat JSON line.
    static func integerArrayField(_ key: String, in line: Substring) -> [Int] {
        guard let start = valueStart(of: key, in: line), line[start...].first == "[" else { return [] }
        let body = line[line.index(after: start)...].prefix { $0 != "]" }
        return body.split(separator: ",").compactMap { Int($0.trimmingSpaces()) }
    }

    private static func valueStart(of key: String, in line: Substring) -> Substring.Index? {
        let quoted = "\"\(key)\""
        var index = line.startIndex
        while index < line.endIndex {
            guard line[index...].hasPrefix(quoted) else {
                index = line.index(after: index)
                continue
            }
            var cursor = line.index(index, offsetBy: quoted.count)
            while cursor < line.endIndex, line[cursor] == " " || line[cursor] == ":" { cursor = line.index(after: cursor) }
            return cursor
        }
        return nil
    }
}
