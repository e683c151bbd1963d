import ProximaAudit
import Testing

@Suite struct AuditFilesTests {
    @Test func segmentNamesRoundTripAndRefuseOthers() {
        #expect(AuditFiles.segmentName(firstSeq: 1000) == "segment-000000001000.log")
        #expect(AuditFiles.firstSeq(ofSegment: "segment-000000001000.log") == 1000)
        #expect(AuditFiles.firstSeq(ofSegment: "segment-1000.log") == nil)
        #expect(AuditFiles.firstSeq(ofSegment: "segment-00000000100x.log") == nil)
        #expect(AuditFiles.firstSeq(ofSegment: "checkpoints.log") == nil)
    }

    @Test func recordsEncodeDeterministicallyAndRoundTrip() throws {
        var record = AuditRecord(kind: .request, time: "2026-12-07T08:00:00.000Z", seq: 3, prev: "ab")
        record.tenant = "acme"
        record.route = AuditRoute(endpoint: "gpu-1", site: "fra", jurisdiction: "DE", attempts: 1)
        let line = try record.encodedLine()
        #expect(try record.encodedLine() == line)
        #expect(!line.contains(UInt8(ascii: "\n")))
        #expect(try AuditRecord.decode(line: line) == record)
    }
}
