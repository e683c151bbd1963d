/// A priority queue of timed events for discrete-event simulation: the earliest time first, and
/// events at the same time in the order they were scheduled, so that a run is deterministic.
public struct EventQueue<Event> {
    private struct Entry {
        var time: Double
        var sequence: UInt64
        var event: Event
    }

    private var heap: [Entry] = []
    private var scheduled: UInt64 = 0

    public init() {}

    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }
    /// The time of the next event, nil when there is none.
    public var nextTime: Double? { heap.first?.time }

    public mutating func schedule(_ event: Event, at time: Double) {
        heap.append(Entry(time: time, sequence: scheduled, event: event))
        scheduled &+= 1
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.before(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest event with its time.
    public mutating func next() -> (time: Double, event: Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let entry = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            var earliest = left
            if left + 1 < heap.count, Self.before(heap[left + 1], heap[left]) { earliest = left + 1 }
            guard Self.before(heap[earliest], heap[parent]) else { break }
            heap.swapAt(earliest, parent)
            parent = earliest
        }
        return (entry.time, entry.event)
    }

    @inline(__always)
    private static func before(_ a: Entry, _ b: Entry) -> Bool {
        a.time < b.time || (a.time == b.time && a.sequence < b.sequence)
    }
}
