import ProximaCache
import Testing

struct CachePayloadTests {
    struct Text: CachePayload {
        var value: String
        var byteCount: Int { value.utf8.count }
    }

    @Test func aPayloadReportsItsOwnSize() {
        #expect(Text(value: "héllo").byteCount == 6)
    }
}
