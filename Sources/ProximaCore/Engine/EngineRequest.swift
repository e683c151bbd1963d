/// One inference request as the engine model sees it: its size, its prompt's prefix blocks, and when
/// it entered the system.
public struct EngineRequest: Sendable, Equatable {
    public var id: Int
    public var promptTokens: Int
    /// Tokens the request will generate (at least one is generated).
    public var outputTokens: Int
    /// Ids of the prompt's KV blocks in order, each of the profile's `blockTokens`; equal ids mean a
    /// shared prefix, and an empty list means no sharing information.
    public var prefixBlockIDs: [UInt64]
    /// When the request entered the system, for the caller's latency accounting; the engine itself
    /// goes by the time it is submitted at.
    public var arrival: Double

    public init(id: Int, promptTokens: Int, outputTokens: Int, prefixBlockIDs: [UInt64] = [], arrival: Double = 0) {
        self.id = id
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
        self.prefixBlockIDs = prefixBlockIDs
        self.arrival = arrival
    }
}
