import Testing
@testable import ProximaCore

/// Addresses and networks as the trust of steering headers and the network-to-location table use
/// them: IPv4 and IPv6 text forms, CIDR matching, and the client behind trusted proxies.
@Suite struct IPNetworkTests {
    static func address(_ text: String) -> IPAddress {
        let parsed = IPAddress(text)
        #expect(parsed != nil, "\(text)")
        return parsed ?? IPAddress(high: .max, low: .max)
    }

    @Test func ipv4AddressesParseAndPrint() throws {
        #expect(Self.address("192.0.2.1").description == "192.0.2.1")
        #expect(Self.address("0.0.0.0").isIPv4)
        #expect(Self.address("255.255.255.255").description == "255.255.255.255")
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4", "1.2.3.4/8", "a.b.c.d"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func ipv6AddressesParseInEveryTextForm() throws {
        #expect(Self.address("::1").description == "::1")
        #expect(Self.address("::").description == "::")
        #expect(Self.address("2001:db8::1").description == "2001:db8::1")
        #expect(Self.address("2001:0DB8:0000:0000:0000:0000:0000:0001") == Self.address("2001:db8::1"))
        #expect(Self.address("1::") == Self.address("1:0:0:0:0:0:0:0"))
        #expect(Self.address("fe80::1%eth0") == Self.address("fe80::1"))
        #expect(Self.address("64:ff9b::192.0.2.33").description == "64:ff9b::c000:221")
        // Runs of zeros: the longest becomes `::`; a single zero group stays.
        #expect(Self.address("2001:db8:0:1:0:0:0:1").description == "2001:db8:0:1::1")
        #expect(Self.address("2001:db8:0:1:1:1:1:1").description == "2001:db8:0:1:1:1:1:1")
        for bad in [":", ":::", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::", "g::", ":1", "1:", "::1.2.3", "%eth0", "[::1]"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func anIPv4MappedAddressIsTheIPv4Address() throws {
        let mapped = Self.address("::ffff:192.0.2.1")
        #expect(mapped == (Self.address("192.0.2.1")))
        #expect(mapped.isIPv4)
        #expect(try IPNetwork(parsing: "192.0.2.0/24").contains(mapped))
    }

    @Test func networksMatchTheirAddressesOnly() throws {
        let ten = try IPNetwork(parsing: "10.0.0.0/8")
        #expect(ten.contains(Self.address("10.255.1.2")))
        #expect(!ten.contains(Self.address("11.0.0.1")))
        #expect(!ten.contains(Self.address("::a00:1")), "an IPv6 address with the same low bits is not in an IPv4 network")
        let single = try IPNetwork(parsing: "192.0.2.7")
        #expect(single.contains(Self.address("192.0.2.7")) && !single.contains(Self.address("192.0.2.8")))
        let v6 = try IPNetwork(parsing: "2001:db8::/32")
        #expect(v6.contains(Self.address("2001:db8:ffff::1")) && !v6.contains(Self.address("2001:db9::1")))
        let odd = try IPNetwork(parsing: "2001:db8:8000::/33")
        #expect(odd.contains(Self.address("2001:db8:8000::1")) && !odd.contains(Self.address("2001:db8:7fff::1")))
        #expect(try IPNetwork(parsing: "0.0.0.0/0").contains(Self.address("203.0.113.9")))
        #expect(!(try IPNetwork(parsing: "0.0.0.0/0").contains(Self.address("2001:db8::1"))), "IPv4 /0 is every IPv4 address only")
        #expect(try IPNetwork(parsing: "::/0").contains(Self.address("203.0.113.9")))
        #expect(try IPNetwork(parsing: "::1/128").contains(Self.address("::1")))
        #expect(try IPNetwork(parsing: "10.0.0.0/8").description == "10.0.0.0/8")
        #expect(try IPNetwork(parsing: "2001:db8::/32").description == "2001:db8::/32")
    }

    @Test func badNetworksAreRefusedWithTheReason() {
        #expect(throws: IPNetwork.ParseError.notAnAddress) { try IPNetwork(parsing: "10.0.0/8") }
        #expect(throws: IPNetwork.ParseError.badPrefix) { try IPNetwork(parsing: "10.0.0.0/33") }
        #expect(throws: IPNetwork.ParseError.badPrefix) { try IPNetwork(parsing: "10.0.0.0/") }
        #expect(throws: IPNetwork.ParseError.badPrefix) { try IPNetwork(parsing: "::/129") }
        #expect(throws: IPNetwork.ParseError.badPrefix) { try IPNetwork(parsing: "10.0.0.0/-1") }
        #expect(throws: IPNetwork.ParseError.hostBitsSet(suggestion: "10.0.0.0/8")) { try IPNetwork(parsing: "10.1.2.3/8") }
        #expect(throws: IPNetwork.ParseError.hostBitsSet(suggestion: "2001:db8::/32")) { try IPNetwork(parsing: "2001:db8::1/32") }
    }

    @Test func forwardedHopsMayCarryBracketsAndPorts() throws {
        #expect(IPAddress(forwardedHop: " 203.0.113.7:5144") == (Self.address("203.0.113.7")))
        #expect(IPAddress(forwardedHop: "[2001:db8::1]:443") == (Self.address("2001:db8::1")))
        #expect(IPAddress(forwardedHop: "\t2001:db8::1 ") == (Self.address("2001:db8::1")))
        for bad in ["unknown", "[1.2.3.4]", "1.2.3.4:", "1.2.3.4:x", "[::1", "[::1]x", "_hidden", ""] {
            #expect(IPAddress(forwardedHop: bad[...]) == nil, "\(bad)")
        }
    }

    @Test func theClientIsTheRightmostUntrustedHop() throws {
        let trusted = [try IPNetwork(parsing: "10.0.0.0/8"), try IPNetwork(parsing: "2001:db8:1::/48")]
        let proxy = Self.address("10.0.0.5")
        let stranger = Self.address("198.51.100.1")
        func client(_ peer: IPAddress, _ values: [String]) -> String {
            ForwardedClient.address(peer: peer, forwardedFor: values.map { $0[...] }, trusted: trusted).description
        }
        // Not from a trusted proxy: the header is ignored, whatever it says.
        #expect(client(stranger, ["1.1.1.1"]) == "198.51.100.1")
        // A client may forge hops on the left; the rightmost untrusted one is the client.
        #expect(client(proxy, ["6.6.6.6, 203.0.113.9, 10.0.0.7"]) == "203.0.113.9")
        #expect(client(proxy, ["6.6.6.6", "203.0.113.9", "10.1.1.1, 2001:db8:1::5"]) == "203.0.113.9")
        // Every hop trusted: the leftmost.
        #expect(client(proxy, ["10.0.0.9, 10.0.0.8"]) == "10.0.0.9")
        // No header: the proxy itself.
        #expect(client(proxy, []) == "10.0.0.5")
        // Garbage ends the walk at the last trusted hop.
        #expect(client(proxy, ["203.0.113.9, garbage, 10.0.0.8"]) == "10.0.0.8")
        // Many hops: only the last 32 are read.
        let long = (Array(repeating: "10.0.0.1", count: 40) + ["10.0.0.2"]).joined(separator: ",")
        #expect(client(proxy, ["203.0.113.9," + long]) == "10.0.0.1")
    }
}
