import Crypto
import Foundation

/// The log's Ed25519 signing key: a 32-byte seed in base64, in `audit.key_file` or else `audit-key`
/// in the log's directory, created (mode 0600) on first start.
enum AuditKeyStore {
    static func load(directory: String, keyFile: String?) throws -> Curve25519.Signing.PrivateKey {
        let path = keyFile ?? directory + "/" + AuditFiles.privateKey
        if let bytes = try AuditFileIO.readAll(path) {
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let seed = Data(base64Encoded: text), seed.count == 32 else {
                throw AuditError("\(path) does not hold an Ed25519 key (a 32-byte seed in base64)")
            }
            return try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        }
        guard keyFile == nil else { throw AuditError("the audit key file \(path) (audit.key_file) does not exist") }
        let key = Curve25519.Signing.PrivateKey()
        try AuditFileIO.writeFileAtomically(
            path, Array((key.rawRepresentation.base64EncodedString() + "\n").utf8), mode: 0o600, directory: directory)
        return key
    }

    /// Writes `audit-key.pub` when it does not already hold `verifierKey`.
    static func publish(verifierKey: String, directory: String) throws {
        let path = directory + "/" + AuditFiles.publicKey
        let text = verifierKey + "\n"
        if let existing = try AuditFileIO.readAll(path), existing == Array(text.utf8) { return }
        try AuditFileIO.writeFileAtomically(path, Array(text.utf8), mode: 0o644, directory: directory)
    }
}
