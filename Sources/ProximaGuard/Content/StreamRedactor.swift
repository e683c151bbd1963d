/// Masks secrets and personal data in a streamed answer without waiting for its end: text is held
/// back only as long as a finding could still be growing across fragments (the trailing run of
/// characters a key, an email or a grouped number is made of), and never more than `windowBytes`:
/// past that the oldest bytes are released (flush at the window size). A private key block without
/// its end line yet is masked as `[private_key]` once and swallowed until its end line arrives.
/// With `masking` false the text passes unchanged at once and only the findings are reported.
/// Findings' ranges are UTF-8 offsets in the whole answer so far. Output never splits a character.
public struct StreamRedactor: Sendable {
    let detector: SensitiveDataDetector
    let window: Int
    let masking: Bool
    /// Bytes not yet committed (masking: not yet sent).
    var pending: [UInt8] = []
    /// Offset in the answer of `pending[0]`.
    var consumed = 0
    /// Inside a private key block whose end line has not come yet.
    var inKey = false

    public init(detector: SensitiveDataDetector, windowBytes: Int, masking: Bool = true) {
        self.detector = detector
        self.window = max(16, windowBytes)
        self.masking = masking
        pending.reserveCapacity(self.window * 2)
    }

    /// Takes the next fragment of the answer's text; returns the text that is safe to send now
    /// (masked), and the findings completed by it.
    public mutating func push(_ fragment: Substring) -> (text: String, findings: [SensitiveFinding]) {
        pending.append(contentsOf: fragment.utf8)
        let (out, findings) = process(final: false)
        return (masking ? String(decoding: out, as: UTF8.self) : String(fragment), findings)
    }

    /// The text still held back, masked, at the end of the stream.
    public mutating func finish() -> (text: String, findings: [SensitiveFinding]) {
        let (out, findings) = process(final: true)
        return (masking ? String(decoding: out, as: UTF8.self) : "", findings)
    }

    /// Bytes currently held back.
    public var heldBytes: Int { pending.count }

    mutating func process(final: Bool) -> ([UInt8], [SensitiveFinding]) {
        var out: [UInt8] = []
        var reported: [SensitiveFinding] = []
        while true {
            if inKey {
                // Swallow key material until the end line.
                if let end = Self.keyEnd(in: pending) {
                    drop(end)
                    inKey = false
                    continue
                }
                let keep = final ? 0 : min(pending.count, 64)
                drop(pending.count - keep)
                return (out, reported)
            }
            guard !pending.isEmpty else { return (out, reported) }
            let step = pending.withUnsafeBufferPointer { buffer -> (cut: Int, findings: [SensitiveFinding], startsKey: Bool) in
                let found = detector.scan(buffer)
                var cut = final ? buffer.count : SensitiveDataDetector.growingStart(buffer)
                var moved = true
                while moved {
                    moved = false
                    for finding in found where finding.range.lowerBound < cut && finding.range.upperBound > cut && !(final) {
                        cut = finding.range.lowerBound
                        moved = true
                    }
                }
                if !final, buffer.count - cut > window {
                    cut = buffer.count - window
                    for finding in found where finding.range.lowerBound < cut && finding.range.upperBound > cut { cut = finding.range.upperBound }
                }
                cut = UTF8Scan.boundary(buffer, atMost: cut)
                let committed = found.filter { $0.range.upperBound <= cut }
                // An unterminated key block that had to be released: swallow the rest of it.
                var startsKey = false
                if let last = committed.last, last.entity == "private_key", last.range.upperBound == buffer.count,
                    !Self.endsWithKeyLine(UnsafeBufferPointer(rebasing: buffer[last.range]))
                {
                    startsKey = true
                }
                return (cut, committed, startsKey)
            }
            if masking {
                var cursor = 0
                for finding in step.findings {
                    out.append(contentsOf: pending[cursor..<finding.range.lowerBound])
                    out.append(0x5B)
                    out.append(contentsOf: finding.entity.utf8)
                    out.append(0x5D)
                    cursor = finding.range.upperBound
                }
                out.append(contentsOf: pending[cursor..<step.cut])
            }
            for finding in step.findings {
                reported.append(SensitiveFinding(entity: finding.entity, range: (finding.range.lowerBound + consumed)..<(finding.range.upperBound + consumed)))
            }
            drop(step.cut)
            if step.startsKey {
                inKey = true
                continue
            }
            return (out, reported)
        }
    }

    mutating func drop(_ count: Int) {
        guard count > 0 else { return }
        pending.removeFirst(count)
        consumed += count
    }

    static func endsWithKeyLine(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count >= 8 else { return false }
        return Scanner.matches(bytes, at: bytes.count - 8, "KEY-----")
    }

    /// The offset just past a `-----END ... KEY-----` line in `bytes`, if there is one.
    static func keyEnd(in bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBufferPointer { keyEnd(in: $0) }
    }

    static func keyEnd(in buffer: UnsafeBufferPointer<UInt8>) -> Int? {
        do {
            var index = 0
            while index + 9 <= buffer.count {
                if buffer[index] == 0x2D, Scanner.matches(buffer, at: index, "-----END ") {
                    var end = index + 9
                    while end + 8 <= buffer.count, end - index < 64, buffer[end] != 0x0A {
                        if Scanner.matches(buffer, at: end, "KEY-----") { return end + 8 }
                        end += 1
                    }
                }
                index += 1
            }
            return nil
        }
    }
}
