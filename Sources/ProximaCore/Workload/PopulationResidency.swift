/// A residency rule given to caller populations (`proxima simulate --residency europe=EU`): the
/// populations are a metro's name, a region's (every metro in it) or `all`, and the rule lists
/// jurisdiction codes or group names (`EU`, `DE,FR`, `EU,GB`), expanded with the configuration's
/// groups. Every request from those metros routes under the rule, as a tenant's would in the gateway.
public struct PopulationResidency: Sendable, Equatable {
    /// A metro name, a region name or `all`.
    public var populations: String
    public var rule: ResidencyRule

    public init(populations: String, rule: ResidencyRule) {
        self.populations = populations
        self.rule = rule
    }

    /// Reads `POPULATIONS=CODES`.
    public init(parsing text: String, groups: JurisdictionGroups = .builtIn) throws(PopulationResidencyError) {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].trimmingSpaces().isEmpty else {
            throw PopulationResidencyError(text: text, reason: "expected POPULATION=JURISDICTIONS, like europe=EU")
        }
        let codes = parts[1].split(separator: ",").map { String($0.trimmingSpaces()) }.filter { !$0.isEmpty }
        guard !codes.isEmpty else { throw PopulationResidencyError(text: text, reason: "no jurisdiction after '='") }
        for code in codes where !JurisdictionCode.isValid(code) {
            throw PopulationResidencyError(text: text, reason: "'\(code)' is not a jurisdiction code (DE, US-CA) or group name (EU)")
        }
        self.init(
            populations: String(parts[0].trimmingSpaces()).lowercased(),
            rule: ResidencyRule(jurisdictions: groups.expand(codes), named: codes.map { $0.uppercased() }))
    }

    /// Whether `metro` belongs to the populations this rule names.
    public func applies(to metro: Metro) -> Bool {
        populations == "all" || metro.name.lowercased() == populations || metro.region?.lowercased() == populations
    }

    /// The metros with these rules attached (a metro several rules name gets their intersection). A
    /// rule that names no metro is an error rather than a rule silently left out.
    public static func apply(_ rules: [PopulationResidency], to metros: [Metro]) throws(PopulationResidencyError) -> [Metro] {
        var result = metros
        for rule in rules {
            var matched = false
            for index in result.indices where rule.applies(to: result[index]) {
                matched = true
                result[index].residency = result[index].residency.map { $0.intersecting(rule.rule) } ?? rule.rule
            }
            if !matched {
                let regions = Set(metros.compactMap(\.region)).sorted()
                throw PopulationResidencyError(
                    text: rule.populations,
                    reason: "names no caller metro (metros: \(metros.map(\.name).joined(separator: ", ")); regions: "
                        + "\(regions.joined(separator: ", ")); or all)")
            }
        }
        return result
    }
}

/// Why a population residency rule could not be read or applied.
public struct PopulationResidencyError: Error, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "residency '\(text)': \(reason)" }
}
