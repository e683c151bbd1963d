import Foundation
import JWTKit
import ProximaCore
import Synchronization

/// The signing keys of a JWKS document, each ready to verify signatures of its algorithm. The
/// document is read by jwt-kit (key types, curves, parameters); only keys with a `kid` and an
/// accepted algorithm are kept (the algorithm is the key's `alg`, or follows from its type: RSA
/// gives RS256, EC P-256 ES256, OKP Ed25519 EdDSA).
struct JWTKeySet: Sendable {
    struct Key: Sendable {
        let algorithm: String
        let verifier: any JWTAlgorithm
    }

    let keys: [String: Key]
    /// When the document was read (Unix seconds): the keys are used until `loadedAt + max age`.
    let loadedAt: Double
    /// Distinguishes key sets, so that tokens verified with an older one are checked again.
    let generation: Int

    struct Unusable: Error, CustomStringConvertible {
        var description: String
    }

    /// The keys of a JWKS document; fails when it is not one or holds no usable key.
    static func load(jwks data: [UInt8], algorithms: [String], loadedAt: Double, generation: Int) async throws -> JWTKeySet {
        let jwks: JWKS
        do {
            jwks = try JSONDecoder().decode(JWKS.self, from: Data(data))
        } catch {
            throw Unusable(description: "not a JWKS document")
        }
        let collection = JWTKeyCollection()
        var keys: [String: Key] = [:]
        for jwk in jwks.keys {
            guard let kid = jwk.keyIdentifier, let algorithm = Self.algorithm(of: jwk), algorithms.contains(algorithm),
                let jwkAlgorithm = JWK.Algorithm(rawValue: algorithm)
            else { continue }
            do {
                try await collection.add(jwk: jwk)
                let verifier = try await collection.getKey(for: kid, alg: jwkAlgorithm.rawValue)
                guard verifier.name == algorithm else { continue }
                keys[kid.string] = Key(algorithm: algorithm, verifier: verifier)
            } catch {
                continue
            }
        }
        guard !keys.isEmpty else { throw Unusable(description: "no usable key (each needs a kid and one of \(algorithms.joined(separator: ", ")))") }
        return JWTKeySet(keys: keys, loadedAt: loadedAt, generation: generation)
    }

    static func algorithm(of jwk: JWK) -> String? {
        if let algorithm = jwk.algorithm { return algorithm.rawValue }
        switch jwk.keyType {
        case .rsa: return "RS256"
        case .ecdsa: return jwk.curve?.rawValue == "P-256" ? "ES256" : nil
        case .octetKeyPair: return jwk.curve?.rawValue == "Ed25519" ? "EdDSA" : nil
        default: return nil
        }
    }
}

/// What a verified JWT says about its caller.
struct VerifiedToken: Sendable, Equatable {
    var tenantID: String
    var principalID: String
    var roles: Set<String>
    /// Unix seconds after which the token is no longer accepted (`exp` plus the clock skew).
    var notAfter: Double
}

/// Checks bearer JWTs: the signature against the current key set (RS256, ES256 or EdDSA, as the
/// configuration allows), then `iss`, `aud`, `exp` (required) and `nbf` with the configured clock
/// skew, then reads the tenant, principal and roles from the configured claims. Parsing is the
/// gateway's own strict code (base64url without padding, ``JSONScanner``), so a hostile token costs
/// one bounded pass and never reaches a decoder that allocates per member. Tokens already verified
/// are kept (bounded) until they expire or the key set changes, so a caller that sends the same
/// token again costs a dictionary look-up, not a signature check.
final class JWTVerifier: Sendable {
    let settings: JWTSettings
    private let keySet = Mutex<JWTKeySet?>(nil)
    private let verified = Mutex<[String: CachedToken]>([:])

    /// Verified tokens kept at most; past it the cache is emptied of expired ones, then cleared.
    static let cacheCapacity = 10_000
    /// Tokens longer than this are refused before any work.
    static let maximumTokenLength = BearerCredential.maximumLength

    private struct CachedToken {
        var token: VerifiedToken
        var keySetGeneration: Int
    }

    init(settings: JWTSettings) {
        self.settings = settings
    }

    /// Takes a freshly read key set.
    func install(_ keys: JWTKeySet) {
        keySet.withLock { $0 = keys }
    }

    /// The current key set, while it is within its maximum age at `now`.
    func currentKeys(at now: Double) -> JWTKeySet? {
        guard let keys = keySet.withLock({ $0 }) else { return nil }
        return now < keys.loadedAt + settings.maxAgeSeconds ? keys : nil
    }

    /// The claims of `token` if it is valid at `now` (Unix seconds); nil otherwise, whatever was wrong.
    func verify(_ token: Substring, at now: Double) -> VerifiedToken? {
        guard token.utf8.count <= Self.maximumTokenLength, let keys = currentKeys(at: now) else { return nil }
        let text = String(token)
        if let cached = verified.withLock({ $0[text] }), cached.keySetGeneration == keys.generation {
            return now < cached.token.notAfter ? cached.token : nil
        }
        guard let claims = check(token, keys: keys, at: now) else { return nil }
        verified.withLock { cache in
            if cache.count >= Self.cacheCapacity {
                cache = cache.filter { now < $0.value.token.notAfter && $0.value.keySetGeneration == keys.generation }
                if cache.count >= Self.cacheCapacity / 2 { cache.removeAll(keepingCapacity: true) }
            }
            cache[text] = CachedToken(token: claims, keySetGeneration: keys.generation)
        }
        return claims
    }

    /// The full check of a token not seen before.
    func check(_ token: Substring, keys: JWTKeySet, at now: Double) -> VerifiedToken? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty,
            let header = Base64URL.decode(parts[0]), let payload = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2])
        else { return nil }
        // The header: which algorithm and key. Critical extensions are not understood, so refused.
        guard let head = Self.object(header), !head.has("crit"),
            let algorithm = head.string("alg"), settings.algorithms.contains(algorithm)
        else { return nil }
        let key: JWTKeySet.Key
        if let kid = head.string("kid") {
            guard let found = keys.keys[kid] else { return nil }
            key = found
        } else {
            let matching = keys.keys.values.filter { $0.algorithm == algorithm }
            guard matching.count == 1 else { return nil }
            key = matching[0]
        }
        guard key.algorithm == algorithm else { return nil }
        // The signature covers the header and payload exactly as sent.
        let signingInput = token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count)
        guard (try? key.verifier.verify(signature, signs: Array(signingInput))) == true else { return nil }
        // The claims.
        guard let body = Self.object(payload) else { return nil }
        guard body.string("iss") == settings.issuer else { return nil }
        let audiences = body.strings("aud")
        guard audiences.contains(where: settings.audience.contains) else { return nil }
        let skew = settings.clockSkewSeconds
        guard let expiry = body.number("exp"), now < expiry + skew else { return nil }
        if body.has("nbf") {
            guard let notBefore = body.number("nbf"), now >= notBefore - skew else { return nil }
        }
        guard let tenant = body.string(settings.claims.tenant) ?? settings.defaultTenant, IdentityName.isValid(tenant),
            let principal = body.string(settings.claims.principal), Self.isUsablePrincipal(principal)
        else { return nil }
        var roles = Set<String>()
        if body.has(settings.claims.roles) {
            let list = body.strings(settings.claims.roles, splittingSpaces: true)
            roles = Set(list.prefix(64).filter { !$0.isEmpty && $0.utf8.count <= 64 })
        }
        return VerifiedToken(tenantID: tenant, principalID: principal, roles: roles, notAfter: expiry + skew)
    }

    /// A subject is kept in logs and admission state: printable ASCII, at most 128 bytes.
    static func isUsablePrincipal(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 128 && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// A JSON object's members, read with the gateway's scanner.
    struct Object {
        let bytes: [UInt8]
        let members: [JSONScanner.Member]

        func has(_ key: String) -> Bool { JSONScanner.member(key, in: members) != nil }

        func string(_ key: String) -> String? {
            guard let member = JSONScanner.member(key, in: members), member.kind == .string else { return nil }
            return bytes.withUnsafeBytes { JSONScanner.decodeString(at: member.range, in: $0) }
        }

        func number(_ key: String) -> Double? {
            guard let member = JSONScanner.member(key, in: members), member.kind == .number else { return nil }
            let text = bytes.withUnsafeBytes { String(decoding: UnsafeRawBufferPointer(rebasing: $0[member.range]), as: UTF8.self) }
            guard let value = Double(text), value.isFinite else { return nil }
            return value
        }

        /// A string member as a one-element list, a list's string elements, or (with
        /// `splittingSpaces`) a string's space-separated words; nothing otherwise.
        func strings(_ key: String, splittingSpaces: Bool = false) -> [String] {
            guard let member = JSONScanner.member(key, in: members) else { return [] }
            return bytes.withUnsafeBytes { buffer -> [String] in
                switch member.kind {
                case .string:
                    let text = JSONScanner.decodeString(at: member.range, in: buffer)
                    return splittingSpaces ? text.split(separator: " ").map(String.init) : [text]
                case .array:
                    guard let elements = try? JSONScanner.elements(ofArrayAt: member.range, in: buffer) else { return [] }
                    return elements.prefix(256).compactMap { element in
                        element.kind == .string ? JSONScanner.decodeString(at: element.range, in: buffer) : nil
                    }
                default:
                    return []
                }
            }
        }
    }

    static func object(_ bytes: [UInt8]) -> Object? {
        guard let members = try? bytes.withUnsafeBytes({ try JSONScanner.topLevelMembers(of: $0) }) else { return nil }
        return Object(bytes: bytes, members: members)
    }
}
