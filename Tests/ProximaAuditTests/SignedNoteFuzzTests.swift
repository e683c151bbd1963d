import Crypto
import Foundation
import ProximaAudit
import Testing

extension FuzzSuites {
    /// Truncations and mutations of a valid signed checkpoint, of its body and of a verifier key: the
    /// parsers throw their own error or return, never crash or hang, and a mutated note that still
    /// opens has the original body (a signature cannot be moved to other text).
    @Suite struct SignedNoteFuzzTests {
        @Test func notesAndCheckpointsAlwaysGiveATypedResult() async throws {
            let signer = try SignedNoteTests.signer()
            let witness = try SignedNoteTests.signer(name: "witness.example")
            let verifier = try NoteVerifier(verifierKey: signer.verifierKey)
            let checkpoint = Checkpoint(
                origin: SignedNoteTests.origin, size: 4_242, rootHash: Array(repeating: 9, count: 32), extensions: ["time 1765094400"])
            let note = try signer.sign(checkpoint.body)
            let cosigned = note + String(try witness.sign(checkpoint.body).dropFirst(checkpoint.body.count + 1))
            var opened = 0
            var refused = 0
            let count = try await AuditFuzzing.run(
                seeds: [Array(note.utf8), Array(cosigned.utf8), Array(checkpoint.body.utf8)],
                iterations: AuditFuzzing.iterations(default: 4_000), salt: 0x5167
            ) { bytes in
                do {
                    let parsed = try SignedNote(parsing: bytes)
                    #expect(!parsed.signatures.isEmpty)
                } catch is NoteError {}
                let text = String(decoding: bytes, as: UTF8.self)
                do {
                    let body = try verifier.open(text)
                    #expect(body == checkpoint.body)
                    #expect(try Checkpoint.parse(body: body) == checkpoint)
                    opened += 1
                } catch is NoteError {
                    refused += 1
                }
                do {
                    let parsed = try Checkpoint.parse(body: text)
                    // What parses prints back to the same text.
                    #expect(parsed.body == text)
                } catch is NoteError {}
            }
            #expect(count > 4_000)
            #expect(opened > 0)
            #expect(refused > opened)
        }

        @Test func verifierKeysAlwaysGiveATypedResult() async throws {
            let key = try SignedNoteTests.signer().verifierKey
            var accepted = 0
            let count = try await AuditFuzzing.run(seeds: [Array(key.utf8)], iterations: AuditFuzzing.iterations(default: 2_000), salt: 0x4B)
            { bytes in
                do {
                    let verifier = try NoteVerifier(verifierKey: String(decoding: bytes, as: UTF8.self))
                    #expect(verifier.keyHash.count == 4)
                    accepted += 1
                } catch is NoteError {}
            }
            #expect(count > 2_000)
            #expect(accepted >= 1)
        }
    }
}
