import Crypto
import Synchronization

/// Remembers verified signatures until they expire so that none is accepted twice: by its nonce
/// (per key) when it has one, else by its signature bytes. Memory is bounded: when `capacity`
/// unexpired signatures are remembered, a new one is refused (``SignatureFailure/replayCacheFull``)
/// rather than accepted unremembered or the table grown.
public final class ReplayGuard: Sendable {
    /// 32 bytes of SHA-256 standing for a nonce or a signature.
    struct Fingerprint: Hashable, Sendable {
        var a: UInt64, b: UInt64, c: UInt64, d: UInt64

        init(_ digest: SHA256.Digest) {
            var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            digest.withUnsafeBytes { raw in
                words = (
                    raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                    raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
                )
            }
            (a, b, c, d) = words
        }
    }

    private struct State: Sendable {
        var until: [Fingerprint: Double] = [:]
        /// A min-heap of (expiry, fingerprint): the soonest to expire on top, to forget in order.
        var heap: [(until: Double, fingerprint: Fingerprint)] = []

        mutating func forget(before now: Double) {
            while let top = heap.first, top.until < now {
                until.removeValue(forKey: top.fingerprint)
                let last = heap.removeLast()
                if !heap.isEmpty {
                    heap[0] = last
                    siftDown(0)
                }
            }
        }

        mutating func insert(_ fingerprint: Fingerprint, until expiry: Double) {
            until[fingerprint] = expiry
            heap.append((expiry, fingerprint))
            var child = heap.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard heap[child].until < heap[parent].until else { break }
                heap.swapAt(child, parent)
                child = parent
            }
        }

        private mutating func siftDown(_ start: Int) {
            var parent = start
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < heap.count, heap[left].until < heap[smallest].until { smallest = left }
                if right < heap.count, heap[right].until < heap[smallest].until { smallest = right }
                if smallest == parent { return }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Signatures remembered now (expired ones may still count until the next call forgets them).
    public var count: Int { state.withLock { $0.until.count } }

    /// Remembers the claim's nonce (or signature) until `until`; nil the first time, `replayed`
    /// when it is remembered and unexpired, `replay_cache_full` when there is no room.
    public func remember(_ claim: SignatureClaim, until expiry: Double, now: Double) -> SignatureFailure? {
        remember(Self.fingerprint(of: claim), until: expiry, now: now)
    }

    /// Whether the claim's nonce (or signature) is remembered and unexpired, without remembering it
    /// (a dry run, such as an explanation, must not use up a signature).
    public func isRemembered(_ claim: SignatureClaim, now: Double) -> Bool {
        let fingerprint = Self.fingerprint(of: claim)
        return state.withLock { state in (state.until[fingerprint]).map { $0 >= now } ?? false }
    }

    func remember(_ fingerprint: Fingerprint, until expiry: Double, now: Double) -> SignatureFailure? {
        state.withLock { state in
            state.forget(before: now)
            if let remembered = state.until[fingerprint], remembered >= now { return .replayed }
            guard state.until.count < capacity else { return .replayCacheFull }
            state.insert(fingerprint, until: expiry)
            return nil
        }
    }

    static func fingerprint(of claim: SignatureClaim) -> Fingerprint {
        var hasher = SHA256()
        if let nonce = claim.nonce {
            hasher.update(data: Array("nonce\u{0}".utf8))
            hasher.update(data: Array(claim.keyID.utf8))
            hasher.update(data: [0])
            hasher.update(data: Array(nonce.utf8))
        } else {
            hasher.update(data: Array("signature\u{0}".utf8))
            hasher.update(data: claim.signature)
        }
        return Fingerprint(hasher.finalize())
    }
}
