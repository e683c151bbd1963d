import ArgumentParser
import Foundation
import ProximaCore
import ProximaGateway
import ProximaStore

// `proxima tenants|principals|keys ...`: managing identities in the configured store. Each command
// turns its flags into a call on `IdentityAdministration`, which a local store implements today;
// `--admin-url` chooses a client of a gateway's admin API (`AdminAPIClient`) instead.

/// Which store the identity commands use: the `store:` section of `--config`, or a SQLite file in
/// `--data-dir`, or the PostgreSQL database whose URL is in `--database-url-env`.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "YAML configuration file; its data_dir and store: sections name the store.")
    var config: String?

    @Option(name: .customLong("data-dir"), help: "Directory of the SQLite store (default: data_dir of the file, or ./data).")
    var dataDirectory: String?

    @Option(
        name: .customLong("database-url-env"),
        help: "Use PostgreSQL: the environment variable holding its URL (postgres://user:password@host:port/database).")
    var databaseURLEnv: String?

    @Option(name: .customLong("admin-url"), help: "Manage the identities through this gateway's admin API (http://host:port) instead of a store.")
    var adminURL: String?

    @Option(
        name: .customLong("admin-token-env"),
        help: "With --admin-url: the environment variable holding the admin token (default: PROXIMA_ADMIN_TOKEN).")
    var adminTokenEnv: String?

    /// The configuration with these flags applied, validated.
    func configuration(environment: [String: String]) throws(InvalidConfiguration) -> ProximaConfiguration {
        var configuration = ProximaConfiguration()
        if let config { configuration = try ConfigurationLoader.load(path: config, environment: environment) }
        if let dataDirectory { configuration.dataDirectory = dataDirectory }
        if let databaseURLEnv {
            configuration.store.kind = .postgres
            configuration.store.urlEnv = databaseURLEnv
            configuration.store.path = nil
        }
        try configuration.validate()
        return configuration
    }

    /// Opens the store, runs `body` and closes the store, whatever happens. Failures end the
    /// command with a message on standard error and the exit code of their kind.
    func withAdministration<T>(_ body: (any IdentityAdministration) async throws -> T) async throws -> T {
        let environment = ProcessInfo.processInfo.environment
        if let adminURL {
            let variable = adminTokenEnv ?? "PROXIMA_ADMIN_TOKEN"
            guard let token = environment[variable], !token.isEmpty else {
                throw IdentityCommandFailure.configuration(
                    InvalidConfiguration(problems: [ConfigurationProblem("--admin-token-env", "the environment variable \(variable) holding the admin token is not set")]))
            }
            let client = AdminAPIClient(baseURL: adminURL, token: token)
            do {
                let result = try await body(client)
                await client.close()
                return result
            } catch {
                await client.close()
                if let error = error as? StoreError { throw IdentityCommandFailure.store(error) }
                throw error
            }
        }
        let store: any ProximaStore
        do {
            store = try await ConfiguredStore.open(try configuration(environment: environment), environment: environment)
        } catch let error as InvalidConfiguration {
            throw IdentityCommandFailure.configuration(error)
        } catch let error as StoreError {
            // At opening, a refused value is the configuration's (a variable not set, a bad URL).
            if case .invalid(let field, let message) = error {
                throw IdentityCommandFailure.configuration(InvalidConfiguration(problems: [ConfigurationProblem(field, message)]))
            }
            throw IdentityCommandFailure.store(error)
        }
        do {
            let result = try await body(store)
            await store.close()
            return result
        } catch {
            await store.close()
            if let error = error as? StoreError { throw IdentityCommandFailure.store(error) }
            throw error
        }
    }
}

/// How an identity command fails: the message on standard error, and the exit code (sysexits):
/// 64 a refused value, 65 a missing or duplicate identity, 69 an unavailable store, 78 a bad
/// configuration.
enum IdentityCommandFailure: Error {
    case configuration(InvalidConfiguration)
    case store(StoreError)

    func report() -> ExitCode {
        switch self {
        case .configuration(let error):
            FileHandle.standardError.write(Data("proxima: \(error)\n".utf8))
            return ExitCode(78)
        case .store(let error):
            FileHandle.standardError.write(Data("proxima: \(error)\n".utf8))
            switch error {
            case .invalid: return ExitCode(64)
            case .notFound, .alreadyExists: return ExitCode(65)
            case .unavailable: return ExitCode(69)
            }
        }
    }
}

/// Runs a command body, turning its failures into messages and exit codes.
func runIdentityCommand(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as IdentityCommandFailure {
        throw failure.report()
    }
}

/// Limit flags shared by tenants, principals and keys.
struct LimitOptions: ParsableArguments {
    @Option(name: .long, help: "Requests per minute.") var requestsPerMinute: Int?
    @Option(name: .long, help: "Prompt plus completion tokens per minute.") var tokensPerMinute: Int?
    @Option(name: .long, help: "Requests running at once.") var concurrentRequests: Int?
    @Option(name: .long, help: "Largest max_tokens a request may ask for.") var maxTokens: Int?
    @Option(name: .long, help: "Spend per UTC day, US dollars.") var dailyBudgetUsd: Double?
    @Option(name: .long, help: "Spend per UTC month, US dollars.") var monthlyBudgetUsd: Double?
    @Option(
        name: .customLong("unset"),
        help: "Remove a limit (requests_per_minute, tokens_per_minute, concurrent_requests, max_tokens, daily_budget_usd, monthly_budget_usd); repeatable.")
    var unset: [String] = []

    var changesAnything: Bool {
        requestsPerMinute != nil || tokensPerMinute != nil || concurrentRequests != nil || maxTokens != nil
            || dailyBudgetUsd != nil || monthlyBudgetUsd != nil || !unset.isEmpty
    }

    func validate() throws {
        let known = ["requests_per_minute", "tokens_per_minute", "concurrent_requests", "max_tokens", "daily_budget_usd", "monthly_budget_usd"]
        for name in unset where !known.contains(name) {
            throw ValidationError("--unset: unknown limit '\(name)' (known: \(known.joined(separator: ", ")))")
        }
    }

    /// `limits` with the flags applied: removals first, then the values given.
    func applied(to limits: ScopeLimits) -> ScopeLimits {
        var result = limits
        for name in unset {
            switch name {
            case "requests_per_minute": result.requestsPerMinute = nil
            case "tokens_per_minute": result.tokensPerMinute = nil
            case "concurrent_requests": result.concurrentRequests = nil
            case "max_tokens": result.maxTokens = nil
            case "daily_budget_usd": result.dailyBudgetUSD = nil
            case "monthly_budget_usd": result.monthlyBudgetUSD = nil
            default: break
            }
        }
        if let requestsPerMinute { result.requestsPerMinute = requestsPerMinute }
        if let tokensPerMinute { result.tokensPerMinute = tokensPerMinute }
        if let concurrentRequests { result.concurrentRequests = concurrentRequests }
        if let maxTokens { result.maxTokens = maxTokens }
        if let dailyBudgetUsd { result.dailyBudgetUSD = dailyBudgetUsd }
        if let monthlyBudgetUsd { result.monthlyBudgetUSD = monthlyBudgetUsd }
        return result
    }
}

/// `--model` flags: the models a tenant or key may use.
struct ModelOptions: ParsableArguments {
    @Option(name: .customLong("model"), help: "A model (or prefix pattern ending in *) allowed; repeatable. Default: every model.")
    var models: [String] = []

    @Flag(name: .customLong("all-models"), help: "Allow every model again (update only).")
    var allModels = false

    var scope: ModelScope? {
        if allModels { return .all }
        return models.isEmpty ? nil : .only(models)
    }

    func validate() throws {
        if allModels && !models.isEmpty { throw ValidationError("give --model or --all-models, not both") }
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON instead of a table.") var json = false
}

// MARK: Tenants

struct Tenants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, show and change tenants in the configured store.",
        subcommands: [Create.self, List.self, Show.self, Update.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a tenant.")
        @Argument(help: "Tenant id: 1-64 of a-z 0-9 - _ . starting with a letter or digit.") var id: String
        @Option(name: .long, help: "Human-readable name (default: the id).") var name: String?
        @Flag(name: .long, help: "Create it disabled: its requests are refused.") var disabled = false
        @OptionGroup var models: ModelOptions
        @OptionGroup var limits: LimitOptions
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await runIdentityCommand {
                let tenant = Tenant(
                    id: id, name: name, models: models.scope ?? .all, limits: limits.applied(to: .unlimited), disabled: disabled,
                    createdAt: unixNow())
                try await store.withAdministration { try await $0.createTenant(tenant) }
                try printOut(TenantView(tenant), json: output.json) { "tenant \($0.id) created" }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every tenant.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await runIdentityCommand {
                let tenants = try await store.withAdministration { try await $0.tenants() }.map(TenantView.init)
                try printOut(tenants, json: output.json) { tenants in
                    table(
                        ["ID", "NAME", "MODELS", "LIMITS", "STATE"],
                        tenants.map { [$0.id, $0.name, modelsText($0.models), limitsText($0.limits), $0.disabled ? "disabled" : "enabled"] })
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a tenant with its principals and keys (never a secret).")
        @Argument(help: "Tenant id.") var id: String
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        struct Details: Encodable {
            var tenant: TenantView
            var principals: [PrincipalView]
            var keys: [APIKeyView]
        }

        func run() async throws {
            try await runIdentityCommand {
                let now = unixNow()
                let details = try await store.withAdministration { administration in
                    Details(
                        tenant: TenantView(try await administration.tenant(id: id)),
                        principals: try await administration.principals(tenantID: id).map(PrincipalView.init),
                        keys: try await administration.keys(tenantID: id, principalID: nil).map { APIKeyView($0, at: now) })
                }
                try printOut(details, json: output.json) { details in
                    let tenant = details.tenant
                    var text = """
                        tenant     \(tenant.id) (\(tenant.name))\(tenant.disabled ? ", disabled" : "")
                        models     \(modelsText(tenant.models))
                        limits     \(limitsText(tenant.limits))
                        created    \(timeText(tenant.createdAt))

                        """
                    text += "\nprincipals\n" + principalTable(details.principals)
                    text += "\nkeys\n" + keyTable(details.keys)
                    return text
                }
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a tenant's name, models, limits or state.")
        @Argument(help: "Tenant id.") var id: String
        @Option(name: .long, help: "New name.") var name: String?
        @Flag(name: .long, help: "Refuse the tenant's requests.") var disable = false
        @Flag(name: .long, help: "Serve the tenant's requests again.") var enable = false
        @OptionGroup var models: ModelOptions
        @OptionGroup var limits: LimitOptions
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            if disable && enable { throw ValidationError("give --disable or --enable, not both") }
        }

        func run() async throws {
            try await runIdentityCommand {
                let updated = try await store.withAdministration { administration in
                    var update = TenantUpdate(name: name, models: models.scope, disabled: disable ? true : (enable ? false : nil))
                    if limits.changesAnything {
                        update.limits = limits.applied(to: try await administration.tenant(id: id).limits)
                    }
                    return try await administration.updateTenant(id: id, update)
                }
                try printOut(TenantView(updated), json: output.json) { "tenant \($0.id) updated: \(limitsText($0.limits))" }
            }
        }
    }
}

// MARK: Principals

struct Principals: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and change a tenant's principals (users, services, agents).",
        subcommands: [Create.self, List.self, Update.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a principal to a tenant.")
        @Argument(help: "Tenant id.") var tenant: String
        @Argument(help: "Principal id, unique within the tenant.") var id: String
        @Option(name: .long, help: "Human-readable name (default: the id).") var name: String?
        @Option(name: .customLong("role"), help: "A role (admin, steering); repeatable.") var roles: [String] = []
        @OptionGroup var limits: LimitOptions
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await runIdentityCommand {
                let principal = Principal(
                    id: id, tenantID: tenant, name: name, roles: Set(roles), limits: limits.applied(to: .unlimited), createdAt: unixNow())
                try await store.withAdministration { try await $0.createPrincipal(principal) }
                try printOut(PrincipalView(principal), json: output.json) { "principal \($0.id) of tenant \($0.tenantID) created" }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a tenant's principals.")
        @Argument(help: "Tenant id.") var tenant: String
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await runIdentityCommand {
                let principals = try await store.withAdministration { try await $0.principals(tenantID: tenant) }.map(PrincipalView.init)
                try printOut(principals, json: output.json) { principalTable($0) }
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a principal's name, roles or limits.")
        @Argument(help: "Tenant id.") var tenant: String
        @Argument(help: "Principal id.") var id: String
        @Option(name: .long, help: "New name.") var name: String?
        @Option(name: .customLong("role"), help: "The principal's roles from now on; repeatable.") var roles: [String] = []
        @Flag(name: .customLong("no-roles"), help: "Remove every role.") var noRoles = false
        @OptionGroup var limits: LimitOptions
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            if noRoles && !roles.isEmpty { throw ValidationError("give --role or --no-roles, not both") }
        }

        func run() async throws {
            try await runIdentityCommand {
                let updated = try await store.withAdministration { administration in
                    var update = PrincipalUpdate(name: name, roles: noRoles ? [] : (roles.isEmpty ? nil : Set(roles)))
                    if limits.changesAnything {
                        update.limits = limits.applied(to: try await administration.principal(tenantID: tenant, id: id).limits)
                    }
                    return try await administration.updatePrincipal(tenantID: tenant, id: id, update)
                }
                try printOut(PrincipalView(updated), json: output.json) { "principal \($0.id) of tenant \($0.tenantID) updated" }
            }
        }
    }
}

// MARK: Keys

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke API keys. A key's token is shown once, when it is created.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a key for a principal and print its token (on standard output, once).")
        @Argument(help: "Tenant id.") var tenant: String
        @Argument(help: "Principal id.") var principal: String
        @Option(name: .long, help: "What the key is for (\"ci\", \"laptop\").") var name = ""
        @Option(name: .long, help: "Lifetime, e.g. 3600s, 90m, 12h, 30d (default: no expiry).") var expiresIn: String?
        @OptionGroup var models: ModelOptions
        @OptionGroup var limits: LimitOptions
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            if models.allModels { throw ValidationError("--all-models is the default for a new key") }
            if let expiresIn, Self.seconds(expiresIn) == nil {
                throw ValidationError("--expires-in: give a whole number with s, m, h or d, from 1s to 3650d (got '\(expiresIn)')")
            }
        }

        static func seconds(_ text: String) -> Double? {
            guard let unit = text.last, let count = Int(text.dropLast()), count > 0 else { return nil }
            let factor: Int
            switch unit {
            case "s": factor = 1
            case "m": factor = 60
            case "h": factor = 3_600
            case "d": factor = 86_400
            default: return nil
            }
            guard count <= 3_650 * 86_400 / factor else { return nil }
            return Double(count * factor)
        }

        struct Created: Encodable {
            var key: APIKeyView
            var token: String
        }

        func run() async throws {
            try await runIdentityCommand {
                let now = unixNow()
                let request = NewAPIKey(
                    tenantID: tenant, principalID: principal, name: name, models: models.scope ?? .all,
                    limits: limits.applied(to: .unlimited), expiresAt: expiresIn.flatMap(Self.seconds).map { now + $0 })
                let issued = try await store.withAdministration { try await $0.createKey(request, at: now) }
                if output.json {
                    try printOut(Created(key: APIKeyView(issued.key, at: now), token: issued.token), json: true) { _ in "" }
                } else {
                    print(issued.token)
                }
                let expiry = issued.key.expiresAt.map { ", expires \(timeText($0))" } ?? ""
                FileHandle.standardError.write(
                    Data(
                        """
                        proxima: key \(issued.key.id) created for principal \(principal) of tenant \(tenant)\(expiry).
                        proxima: the token is shown only now and cannot be retrieved again; keep it in a secret store.

                        """.utf8))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a tenant's keys (ids and state, never secrets or hashes).")
        @Argument(help: "Tenant id.") var tenant: String
        @Option(name: .long, help: "Only this principal's keys.") var principal: String?
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await runIdentityCommand {
                let now = unixNow()
                let keys = try await store.withAdministration { try await $0.keys(tenantID: tenant, principalID: principal) }
                    .map { APIKeyView($0, at: now) }
                try printOut(keys, json: output.json) { keyTable($0) }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key: gateways refuse it within a few seconds. Revoking twice keeps the first time.")
        @Argument(help: "Key id (the 12 characters after pxk_).") var id: String
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await runIdentityCommand {
                let now = unixNow()
                // A whole token pasted by mistake: take its id, never echo its secret.
                let keyID = APIKeyToken(parsing: id).map { String($0.id) } ?? id
                let key = try await store.withAdministration { try await $0.revokeKey(id: keyID, at: now) }
                try printOut(APIKeyView(key, at: now), json: output.json) { "key \($0.id) revoked at \(timeText($0.revokedAt ?? now))" }
            }
        }
    }
}

// MARK: Output

func unixNow() -> Double { Date().timeIntervalSince1970 }

/// Prints `value` as JSON, or as the text `render` makes of it.
func printOut<T: Encodable>(_ value: T, json: Bool, _ render: (T) -> String) throws {
    if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    } else {
        let text = render(value)
        print(text.hasSuffix("\n") ? String(text.dropLast()) : text)
    }
}

func timeText(_ unix: Double) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.timeZone = TimeZone(identifier: "UTC")
    return formatter.string(from: Date(timeIntervalSince1970: unix))
}

func modelsText(_ models: [String]?) -> String {
    guard let models else { return "all" }
    return models.isEmpty ? "none" : models.joined(separator: ",")
}

func limitsText(_ limits: ScopeLimits) -> String {
    var parts: [String] = []
    if let value = limits.requestsPerMinute { parts.append("\(value) req/min") }
    if let value = limits.tokensPerMinute { parts.append("\(value) tok/min") }
    if let value = limits.concurrentRequests { parts.append("\(value) at once") }
    if let value = limits.maxTokens { parts.append("max_tokens \(value)") }
    if let value = limits.dailyBudgetUSD { parts.append("$\(value)/day") }
    if let value = limits.monthlyBudgetUSD { parts.append("$\(value)/month") }
    return parts.isEmpty ? "none" : parts.joined(separator: ", ")
}

func principalTable(_ principals: [PrincipalView]) -> String {
    table(
        ["ID", "NAME", "ROLES", "LIMITS"],
        principals.map { [$0.id, $0.name, $0.roles.isEmpty ? "-" : $0.roles.joined(separator: ","), limitsText($0.limits)] })
}

func keyTable(_ keys: [APIKeyView]) -> String {
    table(
        ["ID", "PRINCIPAL", "NAME", "MODELS", "STATUS", "CREATED", "EXPIRES"],
        keys.map {
            [
                $0.id, $0.principalID, $0.name.isEmpty ? "-" : $0.name, modelsText($0.models), $0.status.rawValue, timeText($0.createdAt),
                $0.expiresAt.map(timeText) ?? "never",
            ]
        })
}

/// Columns padded to their widest cell; "(none)" for no rows.
func table(_ header: [String], _ rows: [[String]]) -> String {
    guard !rows.isEmpty else { return "(none)\n" }
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
    }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in
            index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
}
