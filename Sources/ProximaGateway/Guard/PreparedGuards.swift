import ProximaCore
import ProximaGuard

/// The content guards of one configuration, built once when it is loaded: the injection detector
/// and one secrets and personal-data detector per entity set in use (the defaults' and each tenant's),
/// with the operator's patterns compiled. A pattern that does not compile fails the configuration.
struct PreparedGuards: Sendable {
    let settings: GuardSettings
    let injection: InjectionDetector
    /// What applies to tenants without an override, and to each tenant with one, resolved once.
    private let defaultPolicy: Policy
    private let tenantPolicies: [String: Policy]

    /// What applies to one tenant.
    struct Policy: Sendable {
        var injection: GuardSettings.Injection
        var input: GuardSettings.Sensitive
        var output: GuardSettings.Sensitive
        var inputDetector: SensitiveDataDetector
        var outputDetector: SensitiveDataDetector
    }

    init(settings: GuardSettings) throws(InvalidConfiguration) {
        self.settings = settings
        injection = InjectionDetector()
        var detectors: [String: SensitiveDataDetector] = [:]
        var sets = [settings.input.entities, settings.output.entities]
        for override in settings.tenants.values {
            if let input = override.input { sets.append(input.entities) }
            if let output = override.output { sets.append(output.entities) }
        }
        for entities in sets {
            let key = Self.key(entities)
            guard detectors[key] == nil else { continue }
            do {
                detectors[key] = try SensitiveDataDetector(entities: Set(entities), patterns: settings.patterns)
            } catch {
                throw InvalidConfiguration(problems: [.init("guards.patterns", "a pattern does not compile: \(error)")])
            }
        }
        func resolve(_ tenant: String) -> Policy {
            let (injection, input, output) = settings.resolved(tenant: tenant)
            // Every entity set in use was built above.
            return Policy(
                injection: injection, input: input, output: output, inputDetector: detectors[Self.key(input.entities)]!,
                outputDetector: detectors[Self.key(output.entities)]!)
        }
        defaultPolicy = resolve("")
        var tenantPolicies: [String: Policy] = [:]
        for tenant in settings.tenants.keys { tenantPolicies[tenant] = resolve(tenant) }
        self.tenantPolicies = tenantPolicies
    }

    private static func key(_ entities: [String]) -> String { entities.sorted().joined(separator: ",") }

    /// The tenant's policy, resolved when the configuration was loaded: nothing is looked up or
    /// built per request.
    func policy(tenant: String) -> Policy {
        tenantPolicies[tenant] ?? defaultPolicy
    }
}
