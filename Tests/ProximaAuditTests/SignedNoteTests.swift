import Crypto
import Foundation
import ProximaAudit
import Testing

@Suite struct SignedNoteTests {
    static let origin = "proxima.test/audit/eu-1"

    /// A fixed key (seed bytes 1...32), so the verifier key and the signature are known values,
    /// recomputed here with an independent Ed25519 and SHA-256 implementation (Python's
    /// `cryptography`): Ed25519 signatures are deterministic.
    static func fixedSigner(name: String = origin) throws -> NoteSigner {
        try NoteSigner(name: name, privateKey: Curve25519.Signing.PrivateKey(rawRepresentation: Array(1...32) as [UInt8]))
    }

    static func signer(name: String = origin) throws -> NoteSigner {
        try NoteSigner(name: name, privateKey: Curve25519.Signing.PrivateKey())
    }

    static let emptyBody = "proxima.test/audit/eu-1\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    static let emptyNote =
        emptyBody
        + "\n— proxima.test/audit/eu-1 W8gAoD7YWRFVN70PovZ+5l68sMHy0xJGfkutUa7anIsYbTYTzwOsEYG99TGtrezXSD9dvp8E12baIfpzWOILXG/j+Qg=\n"

    @Test func aFixedKeyGivesTheIndependentlyComputedKeyAndSignature() throws {
        let signer = try Self.fixedSigner()
        #expect(signer.verifierKey == "proxima.test/audit/eu-1+5bc800a0+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk")
        let body = Checkpoint(origin: Self.origin, size: 0, rootHash: MerkleHashing.emptyRoot).body
        #expect(body == Self.emptyBody)
        #expect(try signer.sign(body) == Self.emptyNote)
        let verifier = try NoteVerifier(verifierKey: signer.verifierKey)
        #expect(verifier.name == Self.origin)
        #expect(verifier.keyHash == [0x5b, 0xc8, 0x00, 0xa0])
        #expect(try verifier.open(Self.emptyNote) == Self.emptyBody)
    }

    @Test func aCheckpointRoundTrips() throws {
        let signer = try Self.signer()
        let checkpoint = Checkpoint(origin: Self.origin, size: 1234, rootHash: Array(repeating: 7, count: 32), extensions: ["time 1765094400"])
        let note = try signer.sign(checkpoint.body)
        let body = try NoteVerifier(verifierKey: signer.verifierKey).open(note)
        #expect(try Checkpoint.parse(body: body) == checkpoint)
        let parsed = try SignedNote(parsing: Array(note.utf8))
        #expect(parsed.body == checkpoint.body)
        #expect(parsed.signatures.count == 1)
        #expect(parsed.signatures[0].signature.count == 64)
    }

    @Test func unknownKeysLinesAreIgnoredAndAnyKnownOneSuffices() throws {
        let ours = try Self.signer()
        let other = try Self.signer(name: "witness.example")
        let body = Checkpoint(origin: Self.origin, size: 3, rootHash: Array(repeating: 1, count: 32)).body
        let ourLine = String(try ours.sign(body).dropFirst(body.count + 1))
        let otherLine = String(try other.sign(body).dropFirst(body.count + 1))
        // Cosigned: both lines, in either order.
        #expect(try NoteVerifier(verifierKey: ours.verifierKey).open(body + "\n" + otherLine + ourLine) == body)
        #expect(try NoteVerifier(verifierKey: other.verifierKey).open(body + "\n" + ourLine + otherLine) == body)
        // Only the other key's line: not signed by ours.
        #expect(throws: NoteError.self) { try NoteVerifier(verifierKey: ours.verifierKey).open(body + "\n" + otherLine) }
        // Same name, another key (a forger): its hash differs, so it is an unknown line.
        let forger = try Self.signer()
        #expect(throws: NoteError.self) { try NoteVerifier(verifierKey: ours.verifierKey).open(try forger.sign(body)) }
    }

    @Test func everyMalformedNoteIsRefused() throws {
        let signer = try Self.signer()
        let verifier = try NoteVerifier(verifierKey: signer.verifierKey)
        let body = Checkpoint(origin: Self.origin, size: 9, rootHash: Array(repeating: 2, count: 32)).body
        let note = try signer.sign(body)
        let signatureLine = String(note.dropFirst(body.count + 1))
        #expect(try verifier.open(note) == body)

        func refused(_ text: String, _ comment: Comment) {
            #expect(throws: NoteError.self, comment) { try verifier.open(text) }
        }
        refused(body + signatureLine, "no blank line between body and signatures")
        refused(String(note.dropLast()), "no trailing newline")
        refused(note + "\n", "an empty signature line")
        refused(body + "\n", "no signature lines")
        refused(body + "\n" + signatureLine.replacingOccurrences(of: "— ", with: "-- "), "not an em dash")
        refused(body + "\n" + signatureLine.replacingOccurrences(of: "— ", with: "—"), "no space after the em dash")
        refused(note.replacingOccurrences(of: "\n9\n", with: "\n10\n"), "a changed body: bad signature")
        refused(body.replacingOccurrences(of: "\n9\n", with: "\n\r9\n") + "\n" + signatureLine, "a control character")
        // A wrong key hash with the right name: an unknown key, so not signed by ours.
        var raw = [UInt8](Data(base64Encoded: String(signatureLine.split(separator: " ")[2].dropLast()))!)
        raw[0] ^= 1
        refused(body + "\n— \(Self.origin) \(Data(raw).base64EncodedString())\n", "a wrong key hash")
        // A flipped signature bit with the right key hash: a bad signature.
        raw[0] ^= 1
        raw[20] ^= 0x10
        refused(body + "\n— \(Self.origin) \(Data(raw).base64EncodedString())\n", "a bad signature")
        refused(body + "\n— \(Self.origin) AAAA\n", "a signature too short")
        refused(body + "\n— \(Self.origin) not*base64\n", "not base64")
        refused(body + "\n— \(Self.origin)\n", "no signature")
        refused(body + "\n— a b c\n", "too many fields")
        var invalid = Array(note.utf8)
        invalid[3] = 0xFF
        #expect(throws: NoteError.self) { try SignedNote(parsing: invalid) }
        // The signer refuses bodies it could not sign in this format.
        #expect(throws: NoteError.self) { try signer.sign("no newline") }
        #expect(throws: NoteError.self) { try signer.sign("a\n\n") }
        #expect(throws: NoteError.self) { try NoteSigner(name: "two words", privateKey: .init()) }
        #expect(throws: NoteError.self) { try NoteSigner(name: "a+b", privateKey: .init()) }
        #expect(throws: NoteError.self) { try NoteSigner(name: "", privateKey: .init()) }
    }

    @Test func verifierKeysAreCheckedStrictly() throws {
        let key = try Self.fixedSigner().verifierKey
        #expect(throws: Never.self) { try NoteVerifier(verifierKey: key) }
        for bad in [
            key.replacingOccurrences(of: "+5bc800a0+", with: "+5bc800a1+"),  // hash does not match
            key.replacingOccurrences(of: "+5bc800a0+", with: "+5BC800A0+"),  // upper-case hex
            key.replacingOccurrences(of: "+5bc800a0+", with: "+5bc800+"),
            key.replacingOccurrences(of: "proxima.test/audit/eu-1+", with: "other+"),  // another name
            key.replacingOccurrences(of: "+AXm1", with: "+Anm1"),  // another algorithm byte
            String(key.dropLast(4)),
            key + "+x", "", "a+b", "+5bc800a0+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
        ] {
            #expect(throws: NoteError.self, "\(bad)") { try NoteVerifier(verifierKey: bad) }
        }
    }

    @Test func checkpointBodiesAreParsedStrictly() throws {
        let root = Data(Array(repeating: 5, count: 32)).base64EncodedString()
        #expect(try Checkpoint.parse(body: "o\n0\n\(root)\n").size == 0)
        #expect(try Checkpoint.parse(body: "o\n17\n\(root)\next one\next two\n").extensions == ["ext one", "ext two"])
        for bad in [
            "o\n17\n\(root)", "o\n17\n", "o\n\(root)\n", "\n17\n\(root)\n", "o\n017\n\(root)\n", "o\n+17\n\(root)\n", "o\n-1\n\(root)\n",
            "o\n 17\n\(root)\n", "o\n1e3\n\(root)\n", "o\n99999999999999999999\n\(root)\n", "o\n17\n\(root.dropLast())\n",
            "o\n17\n\(Data(Array(repeating: 5, count: 31)).base64EncodedString())\n", "o\n17\n\(root)\n\n", "o\n17\n\(root) \n",
            "o\r\n17\n\(root)\n",
        ] {
            #expect(throws: NoteError.self, "\(bad.debugDescription)") { try Checkpoint.parse(body: bad) }
        }
    }
}
