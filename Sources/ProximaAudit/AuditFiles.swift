/// The files of one audit log directory (docs/governance.md):
///
/// - `segment-<first seq, 12 digits>.log`: records, one JSON line each (see ``AuditRecord``), in
///   order; a new segment starts beyond `audit.segment_max_bytes`. Only whole lines count: a torn
///   last line (a crash mid-write) is cut off when the log is opened again.
/// - `checkpoints.log`: signed checkpoints, one per line, each line the signed note's text as a JSON
///   string (the note itself spans several lines).
/// - `audit-key`: the Ed25519 private key (32-byte seed, base64), mode 0600, unless `audit.key_file`
///   names another place; `audit-key.pub`: the verifier key (`<origin>+<key hash hex>+<base64(0x01 ||
///   public key)>`), for `proxima audit verify`.
/// - `index.sqlite`: the search index (by tenant, time, request id), rebuilt from the segments when
///   missing or behind. Not part of what is proven.
/// - `archive/`: segments moved aside by retention (when archiving rather than deleting).
public enum AuditFiles {
    public static let segmentPrefix = "segment-"
    public static let segmentSuffix = ".log"
    public static let checkpoints = "checkpoints.log"
    public static let privateKey = "audit-key"
    public static let publicKey = "audit-key.pub"
    public static let index = "index.sqlite"
    public static let archive = "archive"

    /// `segment-000000001000.log` for a segment whose first record is 1000.
    public static func segmentName(firstSeq: Int) -> String {
        let digits = String(firstSeq)
        return segmentPrefix + String(repeating: "0", count: max(0, 12 - digits.count)) + digits + segmentSuffix
    }

    /// The first record's seq of a segment file name, or nil when the name is not a segment's.
    public static func firstSeq(ofSegment name: String) -> Int? {
        guard name.hasPrefix(segmentPrefix), name.hasSuffix(segmentSuffix) else { return nil }
        let digits = name.dropFirst(segmentPrefix.count).dropLast(segmentSuffix.count)
        guard digits.count == 12, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }
}
