/// A pool of entries linked in two orders at once: by last use (the least recently used is evicted
/// for space) and by insertion (with one time to live for all entries, the oldest insertion is the
/// first to expire, so expiry is a walk from the oldest end). Every operation is O(1) apart from the
/// dictionary; no allocation once the pool has grown to its working size.
struct LRUList<Key: Hashable, Value> {
    struct Node {
        var key: Key
        var value: Value?
        var bytes: Int
        var expiresAt: Double
        var newer: Int32 = -1
        var older: Int32 = -1
        var youngerByAge: Int32 = -1
        var olderByAge: Int32 = -1
    }

    private var nodes: [Node] = []
    private var free: [Int32] = []
    private var slots: [Key: Int32] = [:]
    private var mostRecent: Int32 = -1
    private var leastRecent: Int32 = -1
    private var youngest: Int32 = -1
    private var oldestByAge: Int32 = -1
    private(set) var count = 0
    private(set) var bytes = 0

    func slot(for key: Key) -> Int32? { slots[key] }
    func value(at slot: Int32) -> Value? { nodes[Int(slot)].value }
    func key(at slot: Int32) -> Key { nodes[Int(slot)].key }
    func expiresAt(_ slot: Int32) -> Double { nodes[Int(slot)].expiresAt }
    var leastRecentlyUsed: Int32? { leastRecent < 0 ? nil : leastRecent }
    var oldest: Int32? { oldestByAge < 0 ? nil : oldestByAge }

    /// Stores or replaces; the entry becomes the most recently used and the youngest.
    /// Returns the slot and whether a previous entry of the key was replaced.
    @discardableResult
    mutating func insert(_ key: Key, _ value: Value, bytes: Int, expiresAt: Double) -> (slot: Int32, replaced: Bool) {
        if let slot = slots[key] {
            let i = Int(slot)
            self.bytes += bytes - nodes[i].bytes
            nodes[i].value = value
            nodes[i].bytes = bytes
            nodes[i].expiresAt = expiresAt
            unlinkUse(slot)
            linkUseFront(slot)
            unlinkAge(slot)
            linkAgeFront(slot)
            return (slot, true)
        }
        let node = Node(key: key, value: value, bytes: bytes, expiresAt: expiresAt)
        let slot: Int32
        if let reused = free.popLast() {
            slot = reused
            nodes[Int(slot)] = node
        } else {
            slot = Int32(nodes.count)
            nodes.append(node)
        }
        slots[key] = slot
        count += 1
        self.bytes += bytes
        linkUseFront(slot)
        linkAgeFront(slot)
        return (slot, false)
    }

    /// Marks the entry as the most recently used.
    mutating func touch(_ slot: Int32) {
        guard slot != mostRecent else { return }
        unlinkUse(slot)
        linkUseFront(slot)
    }

    /// Removes the entry and returns its key and value.
    @discardableResult
    mutating func remove(_ slot: Int32) -> (key: Key, value: Value) {
        unlinkUse(slot)
        unlinkAge(slot)
        let i = Int(slot)
        let key = nodes[i].key
        let value = nodes[i].value!
        nodes[i].value = nil
        bytes -= nodes[i].bytes
        nodes[i].bytes = 0
        count -= 1
        slots[key] = nil
        free.append(slot)
        return (key, value)
    }

    private mutating func linkUseFront(_ slot: Int32) {
        let i = Int(slot)
        nodes[i].newer = -1
        nodes[i].older = mostRecent
        if mostRecent >= 0 { nodes[Int(mostRecent)].newer = slot } else { leastRecent = slot }
        mostRecent = slot
    }

    private mutating func unlinkUse(_ slot: Int32) {
        let i = Int(slot)
        let newer = nodes[i].newer
        let older = nodes[i].older
        if newer >= 0 { nodes[Int(newer)].older = older } else { mostRecent = older }
        if older >= 0 { nodes[Int(older)].newer = newer } else { leastRecent = newer }
        nodes[i].newer = -1
        nodes[i].older = -1
    }

    private mutating func linkAgeFront(_ slot: Int32) {
        let i = Int(slot)
        nodes[i].youngerByAge = -1
        nodes[i].olderByAge = youngest
        if youngest >= 0 { nodes[Int(youngest)].youngerByAge = slot } else { oldestByAge = slot }
        youngest = slot
    }

    private mutating func unlinkAge(_ slot: Int32) {
        let i = Int(slot)
        let younger = nodes[i].youngerByAge
        let older = nodes[i].olderByAge
        if younger >= 0 { nodes[Int(younger)].olderByAge = older } else { youngest = older }
        if older >= 0 { nodes[Int(older)].youngerByAge = younger } else { oldestByAge = younger }
        nodes[i].youngerByAge = -1
        nodes[i].olderByAge = -1
    }
}
