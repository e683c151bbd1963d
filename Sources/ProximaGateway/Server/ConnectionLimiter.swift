import HummingbirdCore
import NIOCore
import ProximaCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Counts the caller connections being served and admits a new one only under the limit
/// (`server.callers.max_connections`). A connection refused here is answered 503 and closed at once
/// by ``GatewayHTTPChannel``; those admitted are served as usual.
final class ConnectionLimiter: Sendable {
    private let open = Atomic<Int>(0)
    private let limit: Atomic<Int>

    init(limit: Int) {
        self.limit = Atomic(max(1, limit))
    }

    var currentLimit: Int { limit.load(ordering: .relaxed) }
    var openConnections: Int { open.load(ordering: .relaxed) }

    func setLimit(_ newLimit: Int) { limit.store(max(1, newLimit), ordering: .relaxed) }

    /// Takes a place for a new connection; false when every place is taken.
    func admit() -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < limit.load(ordering: .relaxed) {
            let (exchanged, original) = open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Gives back the place of a connection that closed.
    func release() { open.subtract(1, ordering: .relaxed) }

    /// The process's soft limit on open descriptors.
    static func descriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return limit.rlim_cur > rlim_t(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
    }

    /// The default limit for a descriptor limit: each caller may need an upstream socket too, and
    /// 64 descriptors stay for everything else (listeners, files, metrics reads, connections being
    /// refused).
    static func defaultLimit(descriptorLimit: Int) -> Int {
        max(1, min(1 << 24, (descriptorLimit - 64) / 2))
    }
}

/// Keeps the accept loop from outrunning the limiter: at most `limit + refusalSlots` accepted
/// connections exist at once (those served, and those being answered 503). Past that the listening
/// socket is not read (new connections wait in the kernel's backlog) until one closes, so the
/// process never runs out of descriptors because of callers, and accept never fails in a loop.
struct AcceptGate: AvailableConnectionsDelegate {
    static let refusalSlots = 64
    let limiter: ConnectionLimiter
    private var accepted = 0

    init(limiter: ConnectionLimiter) {
        self.limiter = limiter
    }

    mutating func connectionOpened() { accepted += 1 }
    mutating func connectionClosed() { accepted -= 1 }
    func isAcceptingNewConnections() -> Bool { accepted < limiter.currentLimit + Self.refusalSlots }
}

/// Bytes held by request bodies still arriving, across all connections, under one budget
/// (`server.callers.body_memory_budget_bytes`). A body part that does not fit fails its request
/// with 503; every reservation is given back when its body ends, fails, or its connection closes.
final class BodyMemoryBudget: Sendable {
    private let used = Atomic<Int>(0)
    private let capacity: Atomic<Int>

    init(capacity: Int) {
        self.capacity = Atomic(capacity)
    }

    var usedBytes: Int { used.load(ordering: .relaxed) }
    var capacityBytes: Int { capacity.load(ordering: .relaxed) }

    func setCapacity(_ bytes: Int) { capacity.store(bytes, ordering: .relaxed) }

    /// Takes `bytes` from the budget; false (and nothing taken) when they do not fit.
    func reserve(_ bytes: Int) -> Bool {
        var current = used.load(ordering: .relaxed)
        while true {
            let (sum, overflow) = current.addingReportingOverflow(bytes)
            guard !overflow, sum <= capacity.load(ordering: .relaxed) else { return false }
            let (exchanged, original) = used.compareExchange(expected: current, desired: sum, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        used.subtract(bytes, ordering: .relaxed)
    }
}

/// What the caller connections share: the limits each new connection takes, the connection
/// limiter and the body budget. Configuration changes apply to connections accepted afterwards.
final class CallerResources: Sendable {
    let connections: ConnectionLimiter
    let bodyBudget: BodyMemoryBudget
    private let current: Mutex<(limits: CallerConnection.Limits, maxHeaderFields: Int)>
    /// The descriptor limit read at start, for a limit derived from it.
    let descriptorLimit: Int

    init(_ settings: CallerSettings, descriptorLimit: Int = ConnectionLimiter.descriptorLimit()) {
        self.descriptorLimit = descriptorLimit
        connections = ConnectionLimiter(
            limit: settings.maxConnections ?? ConnectionLimiter.defaultLimit(descriptorLimit: descriptorLimit))
        bodyBudget = BodyMemoryBudget(capacity: settings.bodyMemoryBudgetBytes)
        current = Mutex((CallerConnection.Limits(settings), settings.maxHeaderFields))
    }

    func apply(_ settings: CallerSettings) {
        connections.setLimit(settings.maxConnections ?? ConnectionLimiter.defaultLimit(descriptorLimit: descriptorLimit))
        bodyBudget.setCapacity(settings.bodyMemoryBudgetBytes)
        current.withLock { $0 = (CallerConnection.Limits(settings), settings.maxHeaderFields) }
    }

    var limits: (limits: CallerConnection.Limits, maxHeaderFields: Int) { current.withLock { $0 } }
}
