import AsyncHTTPClient
import Logging
import NIOHTTP1
import NIOCore
import ProximaCore
import ProximaGuard
import Synchronization

/// Signed agents' key directories fetched from their origins
/// (`/.well-known/http-message-signatures-directory`), cached for their `Cache-Control: max-age`
/// (clamped), failures for `directory_failure_ttl_seconds`, at most `max_directories` of them. One
/// fetch per origin is in flight at a time: concurrent requests for an origin wait for the same
/// fetch. A fetch is bounded by `directory_timeout_seconds` (head and body together) and 64 KB.
final class AgentDirectoryCache: Sendable {
    private enum Entry: Sendable {
        case keys(AgentKeyDirectory, until: Double)
        case failed(until: Double)

        var until: Double {
            switch self {
            case .keys(_, let until), .failed(let until): until
            }
        }

        var keys: AgentKeyDirectory? {
            if case .keys(let keys, _) = self { keys } else { nil }
        }
    }

    private struct State: Sendable {
        var entries: [AgentOrigin: Entry] = [:]
        var inFlight: [AgentOrigin: Task<Entry, Never>] = [:]
        var fetches = 0
        /// The fetch budget: a bucket of `max_fetches_per_minute`, refilled continuously.
        var budget: Double
        var budgetUpdated: Double = 0
    }

    private let settings: SignedAgentSettings
    private let client: HTTPClient
    private let logger: Logger
    private let state: Mutex<State>

    init(settings: SignedAgentSettings, client: HTTPClient, logger: Logger) {
        state = Mutex(State(budget: Double(settings.maxFetchesPerMinute)))
        self.settings = settings
        self.client = client
        self.logger = logger
    }

    /// Fetches started so far.
    var fetches: Int { state.withLock { $0.fetches } }

    /// The origin's keys: cached, or fetched (joining a fetch already in flight); nil when the
    /// origin is refused (not public and `allow_private_origins` is off) or its directory could not
    /// be had now or within the failure TTL.
    func keys(for origin: AgentOrigin, now: Double) async -> AgentKeyDirectory? {
        if origin.isPrivateOrLoopback, !settings.allowPrivateOrigins { return nil }
        guard settings.mayFetch(host: origin.host) else { return nil }
        enum Step {
            case done(AgentKeyDirectory?)
            case wait(Task<Entry, Never>)
        }
        let step: Step = state.withLock { state in
            if let entry = state.entries[origin], entry.until > now { return .done(entry.keys) }
            if let task = state.inFlight[origin] { return .wait(task) }
            // Origins are named by callers: new fetches share one budget, so no caller can make the
            // gateway fetch from a stream of made-up hosts faster than that.
            let limit = Double(settings.maxFetchesPerMinute)
            state.budget = min(limit, state.budget + max(0, now - state.budgetUpdated) * limit / 60)
            state.budgetUpdated = now
            guard state.budget >= 1 else { return .done(nil) }
            state.budget -= 1
            state.fetches += 1
            // Not the caller's task: a caller that leaves must not cancel the fetch others wait for.
            // The fetch ends within the directory timeout, whoever waits.
            let task = Task { await self.fetchAndStore(origin, now: now) }
            state.inFlight[origin] = task
            return .wait(task)
        }
        switch step {
        case .done(let keys): return keys
        case .wait(let task): return await task.value.keys
        }
    }

    private func fetchAndStore(_ origin: AgentOrigin, now: Double) async -> Entry {
        let entry: Entry
        do {
            let (keys, ttl) = try await fetch(origin)
            entry = .keys(keys, until: now + ttl)
        } catch {
            logger.notice(
                "signed agent directory unavailable",
                metadata: ["origin": "\(origin)", "error": "\(String(describing: error).prefix(200))"])
            entry = .failed(until: now + settings.directoryFailureTTLSeconds)
        }
        state.withLock { state in
            state.inFlight[origin] = nil
            if entry.until > now { store(entry, for: origin, in: &state, now: now) }
        }
        return entry
    }

    /// Keeps `entry`, making room when the table is full: expired entries first, else the one that
    /// expires soonest.
    private func store(_ entry: Entry, for origin: AgentOrigin, in state: inout State, now: Double) {
        if state.entries[origin] == nil, state.entries.count >= settings.maxDirectories {
            state.entries = state.entries.filter { $0.value.until > now }
            if state.entries.count >= settings.maxDirectories,
                let soonest = state.entries.min(by: { $0.value.until < $1.value.until })?.key
            {
                state.entries[soonest] = nil
            }
        }
        state.entries[origin] = entry
    }

    struct FetchError: Error, CustomStringConvertible {
        var description: String
    }

    /// One fetch, head and body within the timeout; the keys and how long to keep them.
    private func fetch(_ origin: AgentOrigin) async throws -> (AgentKeyDirectory, Double) {
        let milliseconds = Int64((settings.directoryTimeoutSeconds * 1_000).rounded(.up))
        var request = HTTPClientRequest(url: origin.directoryURL)
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/http-message-signatures-directory+json, application/json")
        let client = self.client
        let prepared = request
        return try await withThrowingTaskGroup(of: (AgentKeyDirectory, Double)?.self) { group in
            group.addTask {
                let response = try await client.execute(prepared, timeout: .milliseconds(milliseconds))
                guard response.status == .ok else { throw FetchError(description: "status \(response.status.code)") }
                let body = try await response.body.collect(upTo: AgentKeyDirectory.maximumBytes)
                let keys = try AgentKeyDirectory(parsing: body.readableBytesView)
                return (keys, self.timeToLive(cacheControl: response.headers["cache-control"]))
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(milliseconds))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                throw FetchError(description: "timed out after \(settings.directoryTimeoutSeconds) s")
            }
            return result
        }
    }

    /// `max-age` of the `Cache-Control` lines, within 1 s and `directory_max_ttl_seconds`;
    /// `no-store` and `no-cache` keep it 1 s; without either, `directory_default_ttl_seconds`.
    func timeToLive(cacheControl lines: [String]) -> Double {
        var ttl: Double?
        for line in lines {
            for directive in line.lowercased().split(separator: ",") {
                let directive = directive.trimmingSpaces
                if directive == "no-store" || directive == "no-cache" {
                    ttl = 1
                } else if directive.hasPrefix("max-age="), ttl == nil,
                    let seconds = Int(directive.dropFirst("max-age=".count).prefix(12)), seconds >= 0
                {
                    ttl = Double(seconds)
                }
            }
        }
        return min(max(ttl ?? settings.directoryDefaultTTLSeconds, 1), settings.directoryMaxTTLSeconds)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        guard let start = firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let end = lastIndex(where: { $0 != " " && $0 != "\t" })!
        return self[start...end]
    }
}
