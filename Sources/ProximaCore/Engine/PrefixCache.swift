/// The engine's prefix cache: which KV blocks (by id) are kept, evicting the least recently used
/// block when full. Tracks ids only; the KV memory of running requests is reserved separately.
struct PrefixCache: Sendable {
    let capacityBlocks: Int
    private var slotByBlock: [UInt64: Int] = [:]
    private var blockInSlot: [UInt64] = []
    /// Neighbours in recency order, by slot; -1 ends the list.
    private var newerSlot: [Int] = []
    private var olderSlot: [Int] = []
    private var mostRecentSlot = -1
    private var leastRecentSlot = -1

    init(capacityBlocks: Int) {
        self.capacityBlocks = max(0, capacityBlocks)
    }

    var count: Int { slotByBlock.count }

    func contains(_ block: UInt64) -> Bool { slotByBlock[block] != nil }

    /// How many blocks at the start of `blocks` are cached, stopping at the first miss.
    func leadingCachedBlocks(of blocks: [UInt64]) -> Int {
        var cached = 0
        while cached < blocks.count, slotByBlock[blocks[cached]] != nil { cached += 1 }
        return cached
    }

    /// Blocks from least to most recently used.
    var blocksByRecency: [UInt64] {
        var blocks: [UInt64] = []
        var slot = leastRecentSlot
        while slot >= 0 {
            blocks.append(blockInSlot[slot])
            slot = newerSlot[slot]
        }
        return blocks
    }

    /// Inserts or refreshes a prompt's blocks as the most recently used, last block first so that the
    /// leading blocks, the ones other prompts share, are evicted last (as vLLM frees them).
    mutating func use<Blocks: BidirectionalCollection<UInt64>>(_ blocks: Blocks) {
        for block in blocks.reversed() { use(block) }
    }

    mutating func use(_ block: UInt64) {
        guard capacityBlocks > 0 else { return }
        if let slot = slotByBlock[block] {
            unlink(slot)
            linkAsMostRecent(slot)
            return
        }
        let slot: Int
        if slotByBlock.count < capacityBlocks {
            slot = blockInSlot.count
            blockInSlot.append(block)
            newerSlot.append(-1)
            olderSlot.append(-1)
        } else {
            slot = leastRecentSlot
            unlink(slot)
            slotByBlock[blockInSlot[slot]] = nil
            blockInSlot[slot] = block
        }
        slotByBlock[block] = slot
        linkAsMostRecent(slot)
    }

    private mutating func unlink(_ slot: Int) {
        let newer = newerSlot[slot]
        let older = olderSlot[slot]
        if newer >= 0 { olderSlot[newer] = older } else { mostRecentSlot = older }
        if older >= 0 { newerSlot[older] = newer } else { leastRecentSlot = newer }
        newerSlot[slot] = -1
        olderSlot[slot] = -1
    }

    private mutating func linkAsMostRecent(_ slot: Int) {
        olderSlot[slot] = mostRecentSlot
        newerSlot[slot] = -1
        if mostRecentSlot >= 0 { newerSlot[mostRecentSlot] = slot } else { leastRecentSlot = slot }
        mostRecentSlot = slot
    }
}
