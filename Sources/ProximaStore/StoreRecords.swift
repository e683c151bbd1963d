import Foundation
import ProximaCore

/// What both backends share: the checks every value passes before it is written, and the text
/// form of the columns that hold structured values (model scopes, limits and roles as JSON), so
/// that a SQLite file and a PostgreSQL database hold the same rows.
enum StoreRecords {
    /// A new key for a checked request: its record (with the secret's hash) and its token.
    static func mint(_ request: NewAPIKey, at now: Double) throws(StoreError) -> (key: APIKey, token: String) {
        try check(request, at: now)
        return APIKeySecret.mint(
            tenantID: request.tenantID, principalID: request.principalID, name: request.name, models: request.models,
            limits: request.limits, createdAt: now, expiresAt: request.expiresAt)
    }

    static let maximumTextBytes = 256
    static let maximumPatterns = 1_000
    static let maximumRoles = 64
    static let maximumCounterNameBytes = 256

    // MARK: Checks

    static func check(_ tenant: Tenant) throws(StoreError) {
        try checkName(tenant.id, field: "id")
        try checkText(tenant.name, field: "name")
        try check(tenant.models, field: "models")
        try check(tenant.limits, field: "limits")
        try checkTime(tenant.createdAt, field: "created_at")
    }

    static func check(_ principal: Principal) throws(StoreError) {
        try checkName(principal.tenantID, field: "tenant_id")
        try checkName(principal.id, field: "id")
        try checkText(principal.name, field: "name")
        try check(roles: principal.roles)
        try check(principal.limits, field: "limits")
        try checkTime(principal.createdAt, field: "created_at")
    }

    static func check(_ request: NewAPIKey, at now: Double) throws(StoreError) {
        try checkName(request.tenantID, field: "tenant_id")
        try checkName(request.principalID, field: "principal_id")
        try checkText(request.name, field: "name", allowEmpty: true)
        try check(request.models, field: "models")
        try check(request.limits, field: "limits")
        try checkTime(now, field: "created_at")
        if let expiresAt = request.expiresAt {
            try checkTime(expiresAt, field: "expires_at")
            guard expiresAt > now else { throw .invalid(field: "expires_at", message: "must be in the future") }
        }
    }

    static func check(_ document: AdminDocument) throws(StoreError) {
        try checkName(document.kind, field: "kind")
        try checkText(document.name, field: "name", maximumBytes: AdminDocument.maximumNameBytes)
        try checkTime(document.updatedAt, field: "updated_at")
        guard document.json.utf8.count <= AdminDocument.maximumJSONBytes else {
            throw .invalid(field: "json", message: "must be at most \(AdminDocument.maximumJSONBytes) bytes")
        }
        let data = Data(document.json.utf8)
        guard (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil else {
            throw .invalid(field: "json", message: "must be one JSON value")
        }
    }

    static func checkCounter(_ name: String, perMinute: Int, at now: Double) throws(StoreError) {
        try checkText(name, field: "counter", maximumBytes: maximumCounterNameBytes)
        guard ScopeLimits.tokensPerMinuteRange.contains(perMinute) else {
            let range = ScopeLimits.tokensPerMinuteRange
            throw .invalid(field: "per_minute", message: "must be between \(range.lowerBound) and \(range.upperBound), got \(perMinute)")
        }
        try checkTime(now, field: "at")
    }

    static func checkUnits(_ units: Int, field: String) throws(StoreError) {
        guard units >= 0 else { throw .invalid(field: field, message: "must not be negative, got \(units)") }
    }

    static func checkUnits(_ units: Double, field: String) throws(StoreError) {
        guard units.isFinite, units >= 0 else { throw .invalid(field: field, message: "must be a finite number of units, at least 0, got \(units)") }
    }

    static func check(_ charge: RateCharge) throws(StoreError) {
        for (field, value) in [("units", charge.units), ("level_before", charge.levelBefore), ("refunded_before", charge.refundedBefore)] {
            try checkUnits(value, field: "charge.\(field)")
        }
        try checkTime(charge.at, field: "charge.at")
    }

    static func checkScope(_ scope: String, at now: Double) throws(StoreError) {
        try checkText(scope, field: "scope", maximumBytes: maximumCounterNameBytes)
        try checkTime(now, field: "at")
    }

    /// An identifier: ``IdentityName``.
    static func checkName(_ name: String, field: String) throws(StoreError) {
        guard IdentityName.isValid(name) else {
            throw .invalid(
                field: field,
                message: "must be 1 to \(IdentityName.maximumLength) characters of a-z, 0-9, '-', '_' and '.', starting with a letter or digit")
        }
    }

    /// A key's id: the public part of its token.
    static func checkKeyID(_ id: String) throws(StoreError) {
        let isBase32 = id.utf8.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "2")...UInt8(ascii: "7")).contains($0) }
        guard id.utf8.count == APIKeyToken.idLength, isBase32 else {
            throw .invalid(field: "key", message: "must be a key id: \(APIKeyToken.idLength) characters of a-z and 2-7")
        }
    }

    /// Free text: no control characters, not too long.
    static func checkText(_ text: String, field: String, allowEmpty: Bool = false, maximumBytes: Int = maximumTextBytes) throws(StoreError) {
        if text.isEmpty && !allowEmpty { throw .invalid(field: field, message: "must not be empty") }
        if text.utf8.count > maximumBytes { throw .invalid(field: field, message: "must be at most \(maximumBytes) bytes") }
        if text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw .invalid(field: field, message: "must not contain control characters")
        }
    }

    static func check(_ models: ModelScope, field: String) throws(StoreError) {
        guard case .only(let patterns) = models else { return }
        guard patterns.count <= maximumPatterns else { throw .invalid(field: field, message: "must list at most \(maximumPatterns) models") }
        for (index, pattern) in patterns.enumerated() {
            try checkText(pattern, field: "\(field)[\(index)]")
            if pattern.dropLast().contains("*") {
                throw .invalid(field: "\(field)[\(index)]", message: "'*' may only end a pattern")
            }
        }
    }

    static func check(_ limits: ScopeLimits, field: String) throws(StoreError) {
        if let problem = limits.problems(at: field).first { throw .invalid(field: problem.keyPath, message: problem.message) }
    }

    static func check(roles: Set<String>) throws(StoreError) {
        guard roles.count <= maximumRoles else { throw .invalid(field: "roles", message: "must hold at most \(maximumRoles) roles") }
        for role in roles { try checkName(role, field: "roles") }
    }

    static func checkTime(_ time: Double, field: String) throws(StoreError) {
        // Unix seconds from 1970 to year 5138: a NaN, an infinity or a negative time is a bug or an attack.
        guard time.isFinite, (0...1e11).contains(time) else {
            throw .invalid(field: field, message: "must be a time in Unix seconds, got \(time)")
        }
    }

    // MARK: Columns

    /// A scope of every model is NULL; a list is a JSON array.
    static func text(_ models: ModelScope) -> String? {
        guard case .only(let patterns) = models else { return nil }
        return json(patterns)
    }

    static func text(_ limits: ScopeLimits) -> String { json(limits) }

    static func text(roles: Set<String>) -> String { json(roles.sorted()) }

    static func models(_ text: String?, of owner: String) throws(StoreError) -> ModelScope {
        guard let text else { return .all }
        return .only(try decode([String].self, text, of: owner))
    }

    static func limits(_ text: String, of owner: String) throws(StoreError) -> ScopeLimits {
        try decode(ScopeLimits.self, text, of: owner)
    }

    static func roles(_ text: String, of owner: String) throws(StoreError) -> Set<String> {
        Set(try decode([String].self, text, of: owner))
    }

    private static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding strings, numbers and optionals cannot fail.
        guard let data = try? encoder.encode(value) else { return "null" }
        return String(decoding: data, as: UTF8.self)
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ text: String, of owner: String) throws(StoreError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(text.utf8))
        } catch {
            throw .unavailable("the stored \(owner) is unreadable (a column holds malformed JSON)")
        }
    }
}
