import Foundation
import ProximaCore
import Testing

@testable import ProximaGuard

@Suite struct DNSMessageTests {
    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    /// dnsmasq 2.90's answer to `2.0.0.127.in-addr.arpa PTR` (the answer's name is a pointer to the
    /// question's), captured on this machine.
    static let dnsmasqPointerAnswer = hex(
        "1234858000010001000000000132013001300331323707696e2d61646472046172706100000c0001c00c000c00010000012c001f0f637261776c2d3132372d302d302d3209676f6f676c65626f7403636f6d00"
    )
    /// Its answer to `crawl-127-0-0-2.googlebot.com A`.
    static let dnsmasqAddressAnswer = hex(
        "1234858000010001000000000f637261776c2d3132372d302d302d3209676f6f676c65626f7403636f6d0000010001c00c000100010000012c00047f000002")
    /// Its NXDOMAIN for `4.0.0.127.in-addr.arpa PTR`.
    static let dnsmasqNoSuchName = hex("1234818300010000000000000134013001300331323707696e2d61646472046172706100000c0001")

    @Test func realAnswersDecode() throws {
        let pointer = try DNSMessage(decoding: Self.dnsmasqPointerAnswer)
        #expect(pointer.id == 0x1234 && pointer.isResponse && pointer.isAuthoritative && pointer.responseCode == .noError)
        #expect(pointer.questions == [.init(name: "2.0.0.127.in-addr.arpa", type: .ptr)])
        #expect(pointer.answers == [.init(name: "2.0.0.127.in-addr.arpa", type: .ptr, ttl: 300, data: .name("crawl-127-0-0-2.googlebot.com"))])
        #expect(ReverseDNS.answer(to: pointer.questions[0], in: pointer) == .names(["crawl-127-0-0-2.googlebot.com"], ttl: 300))
        let address = try DNSMessage(decoding: Self.dnsmasqAddressAnswer)
        #expect(ReverseDNS.answer(to: address.questions[0], in: address) == .addresses([IPAddress("127.0.0.2")!], ttl: 300))
        let missing = try DNSMessage(decoding: Self.dnsmasqNoSuchName)
        #expect(missing.responseCode == .nameError)
        #expect(ReverseDNS.answer(to: missing.questions[0], in: missing) == .noSuchName(ttl: 0))
    }

    @Test func messagesRoundTripWithCompression() throws {
        let message = DNSMessage(
            id: 0xBEEF, isResponse: true, isAuthoritative: true, recursionAvailable: true,
            questions: [.init(name: "crawl-1.googlebot.com", type: .a)],
            answers: [
                .init(name: "crawl-1.googlebot.com", type: .cname, ttl: 60, data: .name("host.googlebot.com")),
                .init(name: "host.googlebot.com", type: .a, ttl: 300, data: .address(IPAddress("66.249.66.1")!)),
                .init(name: "host.googlebot.com", type: .aaaa, ttl: 200, data: .address(IPAddress("2001:4860:4801::1")!)),
                .init(name: "googlebot.com", type: .init(rawValue: 16), ttl: 5, data: .other([3, 0x61, 0x62, 0x63])),
            ])
        let bytes = try message.encoded()
        #expect(try DNSMessage(decoding: bytes) == message)
        // Names after the first are pointers: the message is shorter than writing every name in full.
        // Written in full: header 12, question 23 + 4, answers (23 + 10 + 20), (20 + 10 + 4), (20 + 10 + 16), (15 + 10 + 4).
        let uncompressed = 201
        #expect(bytes.count < uncompressed - 40)
        // The A answer is found through the CNAME, with the smaller TTL.
        #expect(ReverseDNS.answer(to: message.questions[0], in: message) == .addresses([IPAddress("66.249.66.1")!], ttl: 60))
        let query = DNSMessage.query(id: 7, name: "1.66.249.66.in-addr.arpa", type: .ptr)
        #expect(try DNSMessage(decoding: query.encoded()) == query)
    }

    @Test func hostileBytesAreRefused() throws {
        var forward = Self.dnsmasqPointerAnswer
        // The answer's pointer (c0 0c) pointed at itself, and forwards.
        let pointerAt = 40
        #expect(forward[pointerAt] == 0xC0 && forward[pointerAt + 1] == 0x0C)
        forward[pointerAt + 1] = UInt8(pointerAt)
        #expect(throws: DNSMessage.DecodingError.badPointer) { try DNSMessage(decoding: forward) }
        forward[pointerAt + 1] = 0x60
        #expect(throws: DNSMessage.DecodingError.badPointer) { try DNSMessage(decoding: forward) }
        for length in 0..<Self.dnsmasqPointerAnswer.count {
            #expect(throws: DNSMessage.DecodingError.self) { try DNSMessage(decoding: Array(Self.dnsmasqPointerAnswer[0..<length])) }
        }
        #expect(throws: DNSMessage.DecodingError.trailingBytes) { try DNSMessage(decoding: Self.dnsmasqPointerAnswer + [0]) }
        // Counts far beyond the bytes are refused before anything is read.
        var counts = Self.dnsmasqNoSuchName
        counts[6] = 0xFF
        counts[7] = 0xFF
        #expect(throws: DNSMessage.DecodingError.truncated) { try DNSMessage(decoding: counts) }
        // An A record of the wrong length.
        var badA = Self.dnsmasqAddressAnswer
        badA[badA.count - 5] = 5
        #expect(throws: DNSMessage.DecodingError.self) { try DNSMessage(decoding: badA) }
        // A label with a dot and binary bytes reads one way only, escaped, and is under no domain.
        let odd = DNSMessage(id: 1, isResponse: true, questions: [.init(name: "x\\.y\\000.googlebot.com", type: .ptr)])
        let decoded = try DNSMessage(decoding: odd.encoded())
        #expect(decoded.questions[0].name == "x\\.y\\000.googlebot.com")
        #expect(try DNSMessage.labels(of: decoded.questions[0].name).first == Array("x.y".utf8) + [0])
        #expect(!ReverseDNS.isName("evil\\.x.googlebot.com", under: ["googlebot.com"]))
        #expect(throws: DNSMessage.EncodingError.self) { try DNSMessage.query(id: 1, name: String(repeating: "a", count: 64) + ".com", type: .a).encoded() }
        #expect(throws: DNSMessage.EncodingError.self) { try DNSMessage.query(id: 1, name: "a..com", type: .a).encoded() }
    }

    @Test func ttlWithTheTopBitSetReadsAsZero() throws {
        var bytes = Self.dnsmasqAddressAnswer
        // TTL bytes of the only answer: after name pointer (2), type (2), class (2).
        let ttlAt = bytes.count - 4 - 2 - 4
        bytes[ttlAt] = 0x80
        #expect(try DNSMessage(decoding: bytes).answers[0].ttl == 0)
    }

    @Test func namesAreUnderADomainOnlyAtALabelBoundary() {
        let domains = ["googlebot.com", "google.com"]
        #expect(ReverseDNS.isName("crawl-66-249-66-1.googlebot.com", under: domains))
        #expect(ReverseDNS.isName("CRAWL-1.GoogleBot.COM.", under: domains))
        #expect(ReverseDNS.isName("google.com", under: domains))
        #expect(!ReverseDNS.isName("evilgooglebot.com", under: domains))
        #expect(!ReverseDNS.isName("googlebot.com.evil.example", under: domains))
        #expect(!ReverseDNS.isName("", under: domains))
        #expect(!ReverseDNS.isName("com", under: domains))
    }

    @Test func pointerNamesOfAddresses() {
        #expect(ReverseDNS.pointerName(for: IPAddress("66.249.66.1")!) == "1.66.249.66.in-addr.arpa")
        #expect(ReverseDNS.pointerName(for: IPAddress("2001:db8::567:89ab")!)
            == "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa")
    }

    @Test func theForwardConfirmedDecisions() {
        let google = CrawlerOperator(name: "Googlebot", operator: "Google", tokens: ["Googlebot"], domains: ["googlebot.com"])
        let address = IPAddress("66.249.66.1")!
        #expect(ReverseDNS.start(address: address, crawler: google, ranges: CrawlerRanges()) == .askPointer("1.66.249.66.in-addr.arpa"))
        let ranges = CrawlerRanges(["Google": [try! IPNetwork(parsing: "66.249.64.0/19")]])
        #expect(ReverseDNS.start(address: address, crawler: google, ranges: ranges) == .decided(.verified(via: "ranges")))
        #expect(ReverseDNS.afterPointer(.names(["crawl-66-249-66-1.googlebot.com"], ttl: 60), address: address, crawler: google)
            == .askForward("crawl-66-249-66-1.googlebot.com", .a))
        #expect(ReverseDNS.afterPointer(.names(["x.example"], ttl: 60), address: address, crawler: google) == .decided(.refuted(reason: "ptr_outside_domains")))
        #expect(ReverseDNS.afterPointer(.names([], ttl: 0), address: address, crawler: google) == .decided(.refuted(reason: "no_ptr")))
        #expect(ReverseDNS.afterPointer(.noSuchName(ttl: 0), address: address, crawler: google) == .decided(.refuted(reason: "no_ptr")))
        #expect(ReverseDNS.afterPointer(.failure, address: address, crawler: google) == .decided(.unproven(reason: "dns_failure")))
        #expect(ReverseDNS.afterPointer(.timeout, address: address, crawler: google) == .decided(.unproven(reason: "dns_timeout")))
        #expect(ReverseDNS.afterForward(.addresses([address], ttl: 5), address: address) == .verified(via: "dns"))
        #expect(ReverseDNS.afterForward(.addresses([IPAddress("66.249.66.2")!], ttl: 5), address: address) == .refuted(reason: "forward_mismatch"))
        #expect(ReverseDNS.afterForward(.noSuchName(ttl: 0), address: address) == .refuted(reason: "forward_mismatch"))
        // SERVFAIL and REFUSED prove nothing.
        let question = DNSMessage.Question(name: "1.66.249.66.in-addr.arpa", type: .ptr)
        for code in [DNSMessage.ResponseCode.serverFailure, .refused, .formatError] {
            #expect(ReverseDNS.answer(to: question, in: DNSMessage(id: 1, isResponse: true, responseCode: code, questions: [question])) == .failure)
        }
        #expect(ReverseDNS.answer(to: question, in: DNSMessage(id: 1, isResponse: true, isTruncated: true, questions: [question])) == .failure)
    }
}
