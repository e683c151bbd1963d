/// A key printed by accident (a log line, a debugger, a test failure) shows what identifies it and
/// never its secret's hash: the hash is as good as a password for anyone who can read the store's
/// copy of it.
extension APIKey: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        var text = "APIKey(id: \(id), tenant: \(tenantID), principal: \(principalID)"
        if !name.isEmpty { text += ", name: \(name)" }
        if let expiresAt { text += ", expiresAt: \(expiresAt)" }
        if let revokedAt { text += ", revokedAt: \(revokedAt)" }
        return text + ")"
    }

    public var debugDescription: String { description }
}
