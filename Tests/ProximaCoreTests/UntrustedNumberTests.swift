import Testing
@testable import ProximaCore

/// Numbers from callers, engines, files and the admin API are range-checked where they enter, and the
/// arithmetic on them saturates instead of trapping.
@Suite struct UntrustedNumberTests {
    typealias F = RoutingFixture

    @Test(arguments: [Int.max, Int.max - 1, Int(Int32.max) + 1])
    func aHugeMaxTokensIsTooLongForAContextNotAnOverflow(maxTokens: Int) throws {
        let fleet = try F.fleet([F.endpoint("a", site: "frankfurt")], models: [ModelSettings(name: "m", contextLength: 8_192)])
        let request = F.request(fleet, prompt: 1_000, output: maxTokens)
        let decision = FleetRouter().decide(
            request, policy: F.policy(.balanced), fleet: fleet, telemetry: FleetTelemetry(endpointCount: 1), now: 0, entropy: 1)
        #expect(decision.candidates.isEmpty)
        #expect(decision.exclusions.first?.kind == .contextTooLong)
    }

    @Test func aHugeMaxTokensWithoutAContextLengthIsRatedFinitely() throws {
        let fleet = try F.fleet([F.endpoint("a", site: "frankfurt")])
        var policy = F.policy(.balanced)
        policy.expectedOutputTokens = Int.max
        let decision = FleetRouter().decide(
            F.request(fleet, output: Int.max), policy: policy, fleet: fleet, telemetry: FleetTelemetry(endpointCount: 1), now: 0,
            entropy: 1)
        #expect(decision.candidates.first?.evaluation.predictedTTFTSeconds.isFinite == true)
    }

    @Test(arguments: ["1e308", "+Inf", "NaN", "-1e308", "1.7976931348623157e308"])
    func absurdEngineLoadIsClampedWhereItEnters(value: String) throws {
        let text = """
            vllm:num_requests_running{model_name="m"} \(value)
            vllm:num_requests_running{model_name="n"} \(value)
            vllm:num_requests_waiting{model_name="m"} \(value)
            vllm:kv_cache_usage_perc{model_name="m"} \(value)
            DCGM_FI_DEV_POWER_USAGE{gpu="0"} \(value)
            """
        let snapshot = EngineLoadSnapshot(samples: PrometheusText.parse(text))
        for field in [snapshot.running, snapshot.waiting, snapshot.kvCacheUsage, snapshot.powerWatts] {
            if let field { #expect(field.isFinite && field >= 0 && field <= EngineLoadSnapshot.maximumCount) }
        }
        if let usage = snapshot.kvCacheUsage { #expect(usage <= 1) }
        // Also when a snapshot is made directly (llama.cpp's /slots, tests): the telemetry clamps it.
        let fleet = try F.fleet([F.endpoint("a", site: "frankfurt")])
        var telemetry = FleetTelemetry(endpointCount: 1)
        telemetry.recordEngineRead(0, snapshot: EngineLoadSnapshot(running: .infinity, waiting: 1e308, kvCacheUsage: .nan), at: 0)
        let engine = try #require(telemetry[0].engine)
        #expect(engine.running == EngineLoadSnapshot.maximumCount && engine.waiting == EngineLoadSnapshot.maximumCount)
        #expect(engine.kvCacheUsage == nil)
        let decision = FleetRouter().decide(F.request(fleet), policy: F.policy(.slo), fleet: fleet, telemetry: telemetry, now: 0, entropy: 1)
        let predicted = try #require(decision.candidates.first?.evaluation.predictedTTFTSeconds)
        #expect(predicted.isFinite && predicted > 0)
    }

    @Test(arguments: [Double.nan, .infinity, -.infinity, 1e300, -1e300, 0, -1, 1.5, 3_153_600_000, 1e10])
    func durationsFromSecondsSaturate(seconds: Double) {
        let duration = Duration.seconds(clampedSeconds: seconds)
        #expect(duration >= .zero && duration <= .seconds(Duration.maximumClampedSeconds))
        if seconds.isFinite, seconds > 0, seconds < 1e9 { #expect(abs(duration.seconds - seconds) < 1e-6) }
        #expect(Int(saturating: seconds * 1000) == (seconds.isNaN ? 0 : Int(saturating: seconds * 1000)))
    }

    @Test func saturatingIntegerConversions() {
        #expect(Int(saturating: .nan) == 0)
        #expect(Int(saturating: .infinity) == .max)
        #expect(Int(saturating: -.infinity) == .min)
        #expect(Int(saturating: 1e300) == .max)
        #expect(Int(saturating: 2.6) == 2)
        #expect(Duration.seconds(9e9).nanoseconds > 0 && Duration.seconds(1e12).nanoseconds == .max)
    }
}
