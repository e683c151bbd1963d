import ProximaCore

/// Forward-confirmed reverse DNS (SECURITY-FORMATS): the pure decisions of a crawler check. The
/// gateway asks DNS and feeds the answers in; these say what to ask next and what the answers prove.
public enum ReverseDNS {
    /// What one lookup gave.
    public enum Answer: Sendable, Equatable {
        /// The records of the asked type (PTR names, or A/AAAA addresses) with the smallest TTL among
        /// them; empty when the name exists without such records.
        case names([String], ttl: UInt32)
        case addresses([IPAddress], ttl: UInt32)
        /// NXDOMAIN: no such name.
        case noSuchName(ttl: UInt32)
        /// SERVFAIL, REFUSED, a malformed or truncated answer: nothing proven either way.
        case failure
        /// No answer within the deadline.
        case timeout
    }

    /// The outcome of a check, with how long it may be remembered.
    public enum Verdict: Sendable, Equatable {
        case verified(via: String)
        /// The claim failed: `no_ptr`, `ptr_outside_domains`, `forward_mismatch`, `not_in_ranges`.
        case refuted(reason: String)
        /// Nothing could be proven: `dns_timeout`, `dns_failure`, `unverifiable` (an operator without
        /// domains and no ranges configured).
        case unproven(reason: String)

        public var reason: String {
            switch self {
            case .verified(let via): via
            case .refuted(let reason), .unproven(let reason): reason
            }
        }
    }

    /// The first step: proven or refuted by ranges alone, or the PTR name to ask.
    public enum Start: Sendable, Equatable {
        case decided(Verdict)
        case askPointer(String)
    }

    public static func start(address: IPAddress, crawler: CrawlerOperator, ranges: CrawlerRanges) -> Start {
        if ranges.contains(address, for: crawler) { return .decided(.verified(via: "ranges")) }
        if crawler.domains.isEmpty {
            return .decided(ranges.hasRanges(for: crawler) ? .refuted(reason: "not_in_ranges") : .unproven(reason: "unverifiable"))
        }
        return .askPointer(pointerName(for: address))
    }

    /// After the PTR lookup: refuted, unproven, or the name (under the operator's domains) to look up
    /// forward.
    public enum AfterPointer: Sendable, Equatable {
        case decided(Verdict)
        case askForward(String, DNSMessage.RecordType)
    }

    public static func afterPointer(_ answer: Answer, address: IPAddress, crawler: CrawlerOperator) -> AfterPointer {
        switch answer {
        case .timeout: return .decided(.unproven(reason: "dns_timeout"))
        case .failure: return .decided(.unproven(reason: "dns_failure"))
        case .noSuchName, .addresses: return .decided(.refuted(reason: "no_ptr"))
        case .names(let names, _):
            guard !names.isEmpty else { return .decided(.refuted(reason: "no_ptr")) }
            guard let name = names.first(where: { isName($0, under: crawler.domains) }) else {
                return .decided(.refuted(reason: "ptr_outside_domains"))
            }
            return .askForward(name, address.isIPv4 ? .a : .aaaa)
        }
    }

    /// After the forward lookup of the PTR name: verified when it returned the caller's address.
    public static func afterForward(_ answer: Answer, address: IPAddress) -> Verdict {
        switch answer {
        case .timeout: .unproven(reason: "dns_timeout")
        case .failure: .unproven(reason: "dns_failure")
        case .noSuchName, .names: .refuted(reason: "forward_mismatch")
        case .addresses(let addresses, _): addresses.contains(address) ? .verified(via: "dns") : .refuted(reason: "forward_mismatch")
        }
    }

    /// Whether `name` is one of `domains` or under one of them at a label boundary
    /// (`crawl-1.googlebot.com` is under `googlebot.com`; `evilgooglebot.com` is not), ASCII case
    /// ignored; names with escaped bytes (not host names) are under nothing.
    public static func isName(_ name: String, under domains: [String]) -> Bool {
        var name = Substring(name)
        if name.hasSuffix(".") { name = name.dropLast() }
        guard !name.isEmpty, !name.contains("\\") else { return false }
        let lowered = name.lowercased()
        for domain in domains {
            var domain = Substring(domain.lowercased())
            if domain.hasSuffix(".") { domain = domain.dropLast() }
            guard !domain.isEmpty else { continue }
            if lowered == domain { return true }
            if lowered.hasSuffix("." + domain) { return true }
        }
        return false
    }

    /// Whether `text` is a host name: dot-separated labels of letters, digits, `-` and `_`, 1 to 63
    /// bytes each, at most 253 bytes in all.
    public static func isHostName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        var labelLength = 0
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "."):
                guard labelLength > 0 else { return false }
                labelLength = 0
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"):
                labelLength += 1
                guard labelLength <= 63 else { return false }
            default:
                return false
            }
        }
        return labelLength > 0
    }

    /// The PTR name of an address: `4.3.2.1.in-addr.arpa` for 1.2.3.4, the 32 nibbles reversed under
    /// `ip6.arpa` for IPv6.
    public static func pointerName(for address: IPAddress) -> String {
        if address.isIPv4 {
            let value = UInt32(truncatingIfNeeded: address.low)
            return "\(value & 0xFF).\(value >> 8 & 0xFF).\(value >> 16 & 0xFF).\(value >> 24).in-addr.arpa"
        }
        let digits = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(72)
        for word in [address.low, address.high] {
            for nibble in 0..<16 {
                text.append(digits[Int(word >> UInt64(4 * nibble) & 0xF)])
                text.append(".")
            }
        }
        return text + "ip6.arpa"
    }

    /// Reads the answer to `question` out of a response: the records of its type at its name or at the
    /// end of a CNAME chain from it (at most 8 links), with the smallest TTL among those used.
    public static func answer(to question: DNSMessage.Question, in response: DNSMessage) -> Answer {
        switch response.responseCode {
        case .noError: break
        case .nameError:
            return .noSuchName(ttl: 0)
        default:
            return .failure
        }
        if response.isTruncated { return .failure }
        var owner = question.name.lowercased()
        var ttl = UInt32.max
        for _ in 0..<8 {
            guard let alias = response.answers.first(where: { $0.type == .cname && $0.name.lowercased() == owner }),
                case .name(let target) = alias.data
            else { break }
            ttl = min(ttl, alias.ttl)
            owner = target.lowercased()
        }
        var names: [String] = []
        var addresses: [IPAddress] = []
        for record in response.answers where record.type == question.type && record.name.lowercased() == owner {
            switch record.data {
            case .name(let name): names.append(name)
            case .address(let address): addresses.append(address)
            case .other: continue
            }
            ttl = min(ttl, record.ttl)
        }
        if ttl == .max { ttl = 0 }
        if question.type == .ptr { return .names(names, ttl: ttl) }
        return .addresses(addresses, ttl: ttl)
    }
}
