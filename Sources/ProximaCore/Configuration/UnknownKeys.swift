/// A coding key that accepts any string, used to list every key a mapping holds.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

/// Fails decoding when a mapping holds a key the type does not know, so that a misspelt setting
/// is reported at start instead of being silently ignored.
func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(in decoder: any Decoder, known: Keys.Type) throws {
    guard let container = try? decoder.container(keyedBy: AnyCodingKey.self) else { return }
    let knownNames = Set(Keys.allCases.map(\.stringValue))
    for key in container.allKeys where !knownNames.contains(key.stringValue) {
        let expected = Keys.allCases.map(\.stringValue).joined(separator: ", ")
        throw DecodingError.dataCorrupted(
            .init(
                codingPath: container.codingPath + [key],
                debugDescription: "unknown key '\(key.stringValue)' (expected one of: \(expected))"))
    }
}
