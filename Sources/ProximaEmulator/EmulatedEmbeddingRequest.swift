import Foundation

/// What the emulator reads from a `POST /v1/embeddings` body: the model, the texts (a string or an
/// array of strings), the encoding (`float` or `base64`) and the requested dimensions.
struct EmulatedEmbeddingRequest {
    var model: String
    var inputs: [String]
    var base64: Bool
    var dimensions: Int
    /// Tokens as the emulator counts them: whitespace-separated words, at least one per input.
    var tokens: Int

    /// OpenAI's limit on inputs per request.
    static let maxInputs = 2_048

    init(body: Data) throws(EmulatedPrompt.Invalid) {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw .init(message: "the request body is not a JSON object")
        }
        guard let model = object["model"] as? String else { throw .init(message: "missing 'model'", param: "model") }
        let inputs: [String]
        switch object["input"] {
        case let text as String:
            inputs = [text]
        case let array as [Any]:
            guard let texts = array as? [String] else {
                throw .init(message: "'input' must be a string or an array of strings", param: "input")
            }
            inputs = texts
        case nil:
            throw .init(message: "missing 'input'", param: "input")
        default:
            throw .init(message: "'input' must be a string or an array of strings", param: "input")
        }
        guard !inputs.isEmpty else { throw .init(message: "'input' must not be an empty array", param: "input") }
        guard inputs.count <= Self.maxInputs else {
            throw .init(message: "'input' holds \(inputs.count) texts; at most \(Self.maxInputs) are allowed", param: "input")
        }
        guard !inputs.contains(where: { $0.isEmpty }) else { throw .init(message: "'input' must not contain an empty string", param: "input") }
        switch object["encoding_format"] {
        case nil, "float" as String: base64 = false
        case "base64" as String: base64 = true
        default: throw .init(message: "'encoding_format' must be 'float' or 'base64'", param: "encoding_format")
        }
        if let requested = object["dimensions"] {
            guard let value = requested as? Int, (1...HashedTextEmbedding.dimensions).contains(value) else {
                throw .init(message: "'dimensions' must be a whole number from 1 to \(HashedTextEmbedding.dimensions)", param: "dimensions")
            }
            dimensions = value
        } else {
            dimensions = HashedTextEmbedding.dimensions
        }
        self.model = model
        self.inputs = inputs
        self.tokens = inputs.reduce(0) { $0 + max(1, $1.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).count) }
    }

    /// The vector of one input at the requested dimensions: the full vector's first `dimensions`
    /// components scaled back to unit length, as shortened OpenAI embeddings are.
    func vector(for text: String) -> [Float] {
        let full = HashedTextEmbedding.vector(for: text)
        guard dimensions < full.count else { return full }
        let head = Array(full[..<dimensions])
        let norm = head.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        guard norm > 0 else {
            var unit = [Float](repeating: 0, count: dimensions)
            unit[0] = 1
            return unit
        }
        return head.map { Float(Double($0) / norm) }
    }

    /// The `{"object":"list",...}` answer.
    func responseJSON() -> String {
        var data = ""
        data.reserveCapacity(inputs.count * dimensions * 12)
        for (index, text) in inputs.enumerated() {
            if index > 0 { data += "," }
            let vector = vector(for: text)
            let encoded: String
            if base64 {
                var bytes = [UInt8]()
                bytes.reserveCapacity(vector.count * 4)
                for value in vector {
                    let bits = value.bitPattern.littleEndian
                    bytes += [UInt8(truncatingIfNeeded: bits), UInt8(truncatingIfNeeded: bits >> 8), UInt8(truncatingIfNeeded: bits >> 16), UInt8(truncatingIfNeeded: bits >> 24)]
                }
                encoded = "\"" + Data(bytes).base64EncodedString() + "\""
            } else {
                encoded = "[" + vector.map { "\($0)" }.joined(separator: ",") + "]"
            }
            data += "{\"object\":\"embedding\",\"index\":\(index),\"embedding\":\(encoded)}"
        }
        let model = model.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return "{\"object\":\"list\",\"data\":[\(data)],\"model\":\"\(model)\",\"usage\":{\"prompt_tokens\":\(tokens),\"total_tokens\":\(tokens)}}"
    }
}
