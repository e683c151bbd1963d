/// One thing wrong with a configuration, located by its key path (e.g. `endpoints[1].site`).
public struct ConfigurationProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var keyPath: String
    public var message: String

    public init(_ keyPath: String, _ message: String) {
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String { "\(keyPath): \(message)" }
}

/// Every problem found in one configuration, reported together so a user fixes them in one pass.
public struct InvalidConfiguration: Error, Sendable, CustomStringConvertible {
    public var problems: [ConfigurationProblem]

    public init(problems: [ConfigurationProblem]) {
        self.problems = problems
    }

    public var description: String {
        "invalid configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

extension ProximaConfiguration {
    /// Checks the configuration as a whole: ranges, references between sections, duplicates.
    /// Returns every problem found; an empty list means the configuration can be used.
    public func problems() -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        func check(_ condition: Bool, _ path: String, _ message: @autoclosure () -> String) {
            if !condition { problems.append(.init(path, message())) }
        }
        typealias Bounds = ConfigurationBounds
        func check(_ value: Double, _ range: ClosedRange<Double>, _ path: String, excludingLowerBound: Bool = false, unit: String = "") {
            if let problem = Bounds.problem(value, in: range, excludingLowerBound: excludingLowerBound, unit: unit) {
                problems.append(.init(path, problem))
            }
        }
        func check(_ value: Int, _ range: ClosedRange<Int>, _ path: String) {
            if let problem = Bounds.problem(value, in: range) { problems.append(.init(path, problem)) }
        }

        check(!server.host.isEmpty, "server.host", "must not be empty")
        check((0...65535).contains(server.port), "server.port", "must be between 0 and 65535, got \(server.port)")
        check(server.maxRequestBodyBytes, 1...Bounds.maximumBodyBytes, "server.max_request_body_bytes")
        check(server.maxResponseBodyBytes, 1...Bounds.maximumBodyBytes, "server.max_response_body_bytes")
        check(server.maxConnectionsPerUpstream, 1...Bounds.maximumCount, "server.max_connections_per_upstream")
        check(server.maxAttempts, 1...Bounds.maximumAttempts, "server.max_attempts")
        let timeouts: [(String, Double)] = [
            ("connect", server.timeouts.connect), ("first_byte", server.timeouts.firstByte),
            ("idle", server.timeouts.idle), ("total", server.timeouts.total),
        ]
        for (name, value) in timeouts {
            check(value, 0...Bounds.maximumSeconds, "server.timeouts.\(name)", excludingLowerBound: true, unit: "seconds")
        }
        check(server.timeouts.shutdownGrace, 0...Bounds.maximumSeconds, "server.timeouts.shutdown_grace", unit: "seconds")
        check(server.timeouts.perOutputToken, 0...60, "server.timeouts.per_output_token", unit: "seconds")
        if let location = server.location {
            problems += Self.coordinateProblems(location.latitude, location.longitude, at: "server.location")
        }
        problems += server.callers.problems(at: "server.callers", maxRequestBodyBytes: server.maxRequestBodyBytes)
        check(["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logging.level),
              "logging.level", "must be one of trace, debug, info, notice, warning, error, critical; got '\(logging.level)'")
        check(["text", "json"].contains(logging.format), "logging.format", "must be text or json; got '\(logging.format)'")

        var siteNames = Set<String>()
        for (index, site) in sites.enumerated() {
            let path = "sites[\(index)]"
            check(!site.name.isEmpty, "\(path).name", "must not be empty")
            check(siteNames.insert(site.name).inserted, "\(path).name", "duplicate site name '\(site.name)'")
            problems += Self.coordinateProblems(site.latitude, site.longitude, at: path)
        }

        var endpointNames = Set<String>()
        var servedModels = Set<String>()
        for (index, endpoint) in endpoints.enumerated() {
            let path = "endpoints[\(index)]"
            check(!endpoint.name.isEmpty, "\(path).name", "must not be empty")
            check(endpointNames.insert(endpoint.name).inserted, "\(path).name", "duplicate endpoint name '\(endpoint.name)'")
            if let problem = UpstreamURL.problem(with: endpoint.url) {
                problems.append(.init("\(path).url", problem))
            }
            if let site = endpoint.site {
                check(siteNames.contains(site), "\(path).site",
                      "unknown site '\(site)' (sites: \(sites.map(\.name).joined(separator: ", ")))")
            }
            check(!endpoint.models.isEmpty, "\(path).models", "must list at least one model")
            for (modelIndex, model) in endpoint.models.enumerated() {
                check(!model.name.isEmpty, "\(path).models[\(modelIndex)].name", "must not be empty")
                check(!model.upstream.isEmpty, "\(path).models[\(modelIndex)].upstream", "must not be empty")
                servedModels.insert(model.name)
            }
            if let env = endpoint.apiKeyEnv {
                check(Self.isVariableName(env), "\(path).api_key_env", "must be an environment variable name, got '\(env)'")
                check(env != admin.tokenEnv, "\(path).api_key_env", "must not be the admin token's variable (admin.token_env)")
            }
            if let gpu = endpoint.gpu {
                check(gpu.count, 1...Bounds.maximumGPUs, "\(path).gpu.count")
                check(GPUProfile.named(gpu.profile) != nil, "\(path).gpu.profile",
                      "unknown GPU profile '\(gpu.profile)' (known: \(GPUProfile.catalog.keys.sorted().joined(separator: ", ")))")
            }
            if let pricing = endpoint.pricing {
                for (name, value) in [("input_per_million", pricing.inputPerMillion),
                                      ("output_per_million", pricing.outputPerMillion),
                                      ("gpu_hour", pricing.gpuHour)] {
                    if let value { check(value, 0...Bounds.maximumPrice, "\(path).pricing.\(name)", unit: "US dollars") }
                }
            }
            if let limit = endpoint.maxConcurrency {
                check(limit, 1...Bounds.maximumCount, "\(path).max_concurrency")
            }
        }

        var modelNames = Set<String>()
        for (index, model) in models.enumerated() {
            let path = "models[\(index)]"
            check(!model.name.isEmpty, "\(path).name", "must not be empty")
            check(modelNames.insert(model.name).inserted, "\(path).name", "duplicate model name '\(model.name)'")
            for alias in model.aliases {
                check(modelNames.insert(alias).inserted, "\(path).aliases", "name '\(alias)' is already used")
            }
            if let context = model.contextLength { check(context, 1...Bounds.maximumTokens, "\(path).context_length") }
        }
        let logicalNames = Set(models.map(\.name))
        for (index, model) in models.enumerated() {
            for fallback in model.fallbacks {
                check(logicalNames.contains(fallback) || servedModels.contains(fallback), "models[\(index)].fallbacks",
                      "unknown model '\(fallback)'")
                check(fallback != model.name, "models[\(index)].fallbacks", "a model cannot fall back to itself")
            }
            check(servedModels.contains(model.name) || !model.fallbacks.isEmpty, "models[\(index)].name",
                  "no endpoint serves '\(model.name)' and it has no fallbacks")
            if let policy = model.policy {
                check(routing.policies[policy] != nil || PolicyKind(rawValue: policy) != nil, "models[\(index)].policy",
                      "unknown policy '\(policy)'")
            }
        }
        problems += routing.problems(
            siteNames: endpoints.contains { $0.site == nil } ? siteNames.union([Fleet.defaultSiteName]) : siteNames)
        check(Self.isVariableName(admin.tokenEnv), "admin.token_env", "must be an environment variable name, got '\(admin.tokenEnv)'")
        for (index, name) in admin.allowedKeyEnv.enumerated() {
            check(Self.isVariableName(name), "admin.allowed_key_env[\(index)]", "must be an environment variable name, got '\(name)'")
            check(name != admin.tokenEnv, "admin.allowed_key_env[\(index)]",
                  "must not be the admin token's variable: an admin could send the token to a host of their choice")
        }
        problems += auth.problems()
        problems += limits.problems(at: "limits")
        if let problem = StoreSettings.pathProblem(dataDirectory) { problems.append(.init("data_dir", problem)) }
        problems += store.problems(at: "store", forbiddenVariables: [admin.tokenEnv])
        problems += cache.problems(at: "cache", models: logicalNames.union(servedModels), names: modelNames.union(servedModels))
        if cache.enabled, cache.semantic.enabled, let name = cache.semantic.model,
            let model = models.first(where: { $0.name == name || $0.aliases.contains(name) }), model.kind != .embeddings
        {
            problems.append(.init("cache.semantic.model", "'\(name)' is a \(model.kind.rawValue) model; name a model of kind embeddings"))
        }
        problems += edge.problems(at: "edge")
        problems += guards.problems(at: "guards", entityNames: GuardSettings.builtInEntities)
        problems += residency.problems(at: "residency")
        for name in residency.models.keys.sorted() where !modelNames.union(servedModels).contains(name) {
            problems.append(.init("residency.models.\(name)", "names no model of the configuration"))
        }
        problems += audit.problems(at: "audit")
        return problems
    }

    /// Letters, digits and underscores: what an environment variable name may hold here.
    static func isVariableName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 256 && name.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" }
    }

    /// Throws ``InvalidConfiguration`` listing every problem, or returns when there is none.
    public func validate() throws(InvalidConfiguration) {
        let found = problems()
        if !found.isEmpty { throw InvalidConfiguration(problems: found) }
    }

    static func coordinateProblems(_ latitude: Double, _ longitude: Double, at path: String) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        if !(-90...90).contains(latitude) { problems.append(.init("\(path).latitude", "must be between -90 and 90, got \(latitude)")) }
        if !(-180...180).contains(longitude) {
            problems.append(.init("\(path).longitude", "must be between -180 and 180, got \(longitude)"))
        }
        return problems
    }
}
