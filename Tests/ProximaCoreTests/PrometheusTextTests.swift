import Testing
@testable import ProximaCore

@Suite struct PrometheusTextTests {
    @Test func readsNamesLabelsAndValuesAndSkipsTheRest() {
        let samples = PrometheusText.parse(
            #"""
            # HELP vllm:num_requests_running Number of requests in model execution batches.
            # TYPE vllm:num_requests_running gauge
            vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B"} 12.0
            vllm:num_requests_waiting{model_name="m"} 3
            vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 42
            weird{label="with \"quote\", and comma"} 1e3 1700000000000
            broken{label="x" 5
            no_value
            llamacpp:requests_processing 2
            """#)
        #expect(samples.count == 5)
        #expect(samples[0] == PrometheusSample(name: "vllm:num_requests_running", labels: ["engine": "0", "model_name": "meta-llama/Llama-3.1-8B"], value: 12))
        #expect(samples[2].labels["le"] == "+Inf")
        #expect(samples[3].labels["label"] == #"with "quote", and comma"#)
        #expect(samples[3].value == 1000)
        #expect(samples[4].name == "llamacpp:requests_processing")
    }

    @Test func summarisesVLLMAndLlamaCppLoad() {
        let vllm = EngineLoadSnapshot(
            samples: PrometheusText.parse(
                """
                vllm:num_requests_running{model_name="a"} 10
                vllm:num_requests_running{model_name="b"} 2
                vllm:num_requests_waiting{model_name="a"} 4
                vllm:kv_cache_usage_perc{model_name="a"} 0.75
                vllm:prefix_cache_queries_total{model_name="a"} 100
                vllm:prefix_cache_hits_total{model_name="a"} 37
                DCGM_FI_DEV_POWER_USAGE{gpu="0"} 350.5
                DCGM_FI_DEV_POWER_USAGE{gpu="1"} 349.5
                """))
        #expect(vllm == EngineLoadSnapshot(running: 12, waiting: 4, kvCacheUsage: 0.75, prefixCacheQueries: 100, prefixCacheHits: 37, powerWatts: 700))
        let llama = EngineLoadSnapshot(samples: PrometheusText.parse("llamacpp:requests_processing 1\nllamacpp:requests_deferred 2\n"))
        #expect(llama.running == 1 && llama.waiting == 2 && llama.kvCacheUsage == nil)
    }
}
