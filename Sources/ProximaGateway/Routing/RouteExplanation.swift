import ProximaCore

/// A small JSON object writer for the gateway's own documents (explanations, admin state): keys in
/// the order written, numbers with fixed precision, strings escaped.
struct JSONObjectWriter {
    private(set) var text = "{"
    private var empty = true

    private mutating func key(_ name: String) {
        if !empty { text += "," }
        empty = false
        text += JSONScanner.quoted(name)
        text += ":"
    }

    mutating func string(_ name: String, _ value: String?) {
        key(name)
        text += value.map(JSONScanner.quoted) ?? "null"
    }

    mutating func int(_ name: String, _ value: Int?) {
        key(name)
        text += value.map { String($0) } ?? "null"
    }

    mutating func number(_ name: String, _ value: Double?, digits: Int = 3) {
        key(name)
        if let value, value.isFinite { text += RouteExplanation.decimal(value, digits: digits) } else { text += "null" }
    }

    mutating func bool(_ name: String, _ value: Bool?) {
        key(name)
        text += value.map { $0 ? "true" : "false" } ?? "null"
    }

    /// A value that is already JSON.
    mutating func raw(_ name: String, _ json: String) {
        key(name)
        text += json
    }

    func finished() -> String { text + "}" }
}

/// Renders routing decisions as JSON for `POST /v1/route/explain` and the admin API.
enum RouteExplanation {
    /// A number in fixed notation with at most `digits` decimals, trailing zeros dropped.
    static func decimal(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e18 else { return String(value) }
        var units = UInt64(scaled)
        let whole = units / UInt64(scale)
        units %= UInt64(scale)
        var fraction = ""
        if units > 0 {
            var digitsText = String(units)
            digitsText = String(repeating: "0", count: digits - digitsText.count) + digitsText
            while digitsText.last == "0" { digitsText.removeLast() }
            fraction = "." + digitsText
        }
        return (value < 0 && (whole > 0 || units > 0) ? "-" : "") + String(whole) + fraction
    }

    /// The `residency` member: the rule's names as configured, the jurisdictions they expand to and
    /// the providers allowed (null: any).
    static func residencyJSON(_ rule: ResidencyRule) -> String {
        var item = JSONObjectWriter()
        item.raw("rule", "[" + rule.named.map { JSONScanner.quoted($0) }.joined(separator: ",") + "]")
        item.raw("jurisdictions", rule.jurisdictions.map { "[" + $0.sorted().map { JSONScanner.quoted($0) }.joined(separator: ",") + "]" } ?? "null")
        item.raw("providers", rule.providers.map { "[" + $0.sorted().map { JSONScanner.quoted($0) }.joined(separator: ",") + "]" } ?? "null")
        return item.finished()
    }

    static func json(
        decision: RouteDecision, request: RouteRequest, snapshot: RoutingSnapshot, expectedOutputTokens: Int
    ) -> String {
        let fleet = snapshot.fleet
        var document = JSONObjectWriter()
        document.string("policy", decision.policy)
        document.string("kind", decision.kind.rawValue)
        document.string("reason", decision.reason)
        document.string("model", request.model.name)
        document.int("prompt_tokens", request.promptTokens)
        document.int("expected_output_tokens", expectedOutputTokens)
        document.int("prefix_blocks", request.prefixBlocks.count)
        if let location = request.clientLocation {
            var place = JSONObjectWriter()
            place.number("latitude", location.latitude, digits: 4)
            place.number("longitude", location.longitude, digits: 4)
            document.raw("client_location", place.finished())
        } else {
            document.raw("client_location", "null")
        }
        document.string("chosen", decision.candidates.first.map { fleet.endpoints[$0.endpoint].name })
        document.string("runner_up", decision.candidates.dropFirst().first.map { fleet.endpoints[$0.endpoint].name })
        let candidates = decision.candidates.enumerated().map { rank, candidate in
            candidateJSON(candidate, rank: rank + 1, fleet: fleet)
        }
        document.raw("candidates", "[" + candidates.joined(separator: ",") + "]")
        let excluded = decision.exclusions.map { exclusion -> String in
            let endpoint = fleet.endpoints[exclusion.endpoint]
            var item = JSONObjectWriter()
            item.string("endpoint", endpoint.name)
            item.string("site", endpoint.siteName)
            item.string("kind", exclusion.kind.rawValue)
            item.string("reason", exclusion.reason)
            return item.finished()
        }
        document.raw("excluded", "[" + excluded.joined(separator: ",") + "]")
        return document.finished()
    }

    static func candidateJSON(_ candidate: RouteCandidate, rank: Int, fleet: Fleet) -> String {
        let endpoint = fleet.endpoints[candidate.endpoint]
        let e = candidate.evaluation
        var item = JSONObjectWriter()
        item.int("rank", rank)
        item.string("endpoint", endpoint.name)
        item.string("site", endpoint.siteName)
        item.string("served_model", candidate.servedModel)
        item.string("upstream_model", candidate.upstreamModel)
        item.bool("fallback", candidate.isFallback)
        item.number("score", e.score, digits: 4)
        item.number("predicted_ttft_ms", e.predictedTTFTSeconds * 1000, digits: 1)
        item.number("rtt_ms", e.rttSeconds * 1000, digits: 1)
        item.number("queue_wait_ms", e.queueWaitSeconds * 1000, digits: 1)
        item.number("model_queue_wait_ms", e.modelQueueWaitSeconds * 1000, digits: 1)
        item.number("observed_correction_ms", e.observedCorrectionSeconds * 1000, digits: 1)
        item.number("prefill_ms", e.prefillSeconds * 1000, digits: 1)
        item.number("cost_usd", e.costUSD, digits: 8)
        item.int("cached_prompt_tokens", e.cachedPromptTokens)
        item.number("load", e.load, digits: 1)
        item.string("load_source", e.loadSource.rawValue)
        item.int("in_flight", e.inFlight)
        item.number("free_slots", e.freeSlots, digits: 3)
        item.number("free_kv_cache", e.freeKVCache, digits: 3)
        item.number("power_headroom", e.powerHeadroom, digits: 3)
        item.number("headroom", e.headroom, digits: 3)
        item.number("distance_km", e.distanceKilometres, digits: 0)
        item.number("error_rate", e.errorRate, digits: 3)
        item.bool("meets_target", e.meetsTarget)
        var penalties = JSONObjectWriter()
        penalties.number("ttft", e.penalties.ttft, digits: 4)
        penalties.number("cost", e.penalties.cost, digits: 4)
        penalties.number("affinity", e.penalties.affinity, digits: 4)
        penalties.number("headroom", e.penalties.headroom, digits: 4)
        penalties.number("proximity", e.penalties.proximity, digits: 4)
        item.raw("penalties", penalties.finished())
        return item.finished()
    }
}
