/// What the cache keeps per entry: an answer, whose size counts against the cache's byte budget.
///
/// The index and the tiers are generic over it, so that they know nothing of HTTP or the OpenAI
/// format (the gateway stores its own answer type).
public protocol CachePayload: Sendable {
    /// Bytes the entry holds beyond the index's own bookkeeping (the answer's text and fields).
    var byteCount: Int { get }
}
