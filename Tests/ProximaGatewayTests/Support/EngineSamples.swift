/// Small, realistic samples of what engines send, in the shape each engine sends it: the seeds the
/// fuzzers mutate. Written for these tests after the formats of vLLM 0.8-0.10, llama.cpp's server
/// (b4000 and later, OpenAI-compatible mode) and DCGM's exporter; ids and timings are made up.
enum EngineSamples {
    /// A vLLM chat stream with `include_usage`: a role chunk, content, a finish chunk, the usage chunk.
    static let vllmStream = """
        data: {"id":"chatcmpl-7f3c2a9e4b1d4c6f9a0e","object":"chat.completion.chunk","created":1718000000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"chatcmpl-7f3c2a9e4b1d4c6f9a0e","object":"chat.completion.chunk","created":1718000000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":"Caf\\u00e9 \\ud83d\\ude00\\n"},"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"chatcmpl-7f3c2a9e4b1d4c6f9a0e","object":"chat.completion.chunk","created":1718000000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}],"usage":null}

        data: {"id":"chatcmpl-7f3c2a9e4b1d4c6f9a0e","object":"chat.completion.chunk","created":1718000000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[],"usage":{"prompt_tokens":12,"total_tokens":20,"completion_tokens":8}}

        data: [DONE]


        """

    /// A llama.cpp server chat stream: usage and timings on the last content chunk, CRLF-free.
    static let llamaCppStream = """
        data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1718000001,"id":"chatcmpl-Qx1bVf0d","model":"smollm2","system_fingerprint":"b4589-3e3357fd","object":"chat.completion.chunk"}

        data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Bonjour"}}],"created":1718000001,"id":"chatcmpl-Qx1bVf0d","model":"smollm2","system_fingerprint":"b4589-3e3357fd","object":"chat.completion.chunk"}

        data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":" \\u00e0 vous"}}],"created":1718000001,"id":"chatcmpl-Qx1bVf0d","model":"smollm2","system_fingerprint":"b4589-3e3357fd","object":"chat.completion.chunk"}

        data: {"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1718000001,"id":"chatcmpl-Qx1bVf0d","model":"smollm2","system_fingerprint":"b4589-3e3357fd","object":"chat.completion.chunk","usage":{"completion_tokens":3,"prompt_tokens":14,"total_tokens":17},"timings":{"prompt_n":14,"prompt_ms":17.87,"prompt_per_token_ms":1.276,"prompt_per_second":783.4,"predicted_n":3,"predicted_ms":35.2,"predicted_per_token_ms":11.73,"predicted_per_second":85.2}}

        data: [DONE]


        """

    /// An SSE stream with CRLF line ends, a comment keep-alive, an `event:` line and an error event
    /// (what proxies in front of engines and overloaded engines send).
    static let mixedStream =
        ": keep-alive\r\n\r\n"
        + "event: message\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}],\"usage\":null}\r\n\r\n"
        + "data: {\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}\n\n"
        + "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}\n\n"
        + "data: [DONE]\n\n"

    /// A plain (not streamed) chat answer from vLLM.
    static let vllmAnswer = #"""
        {"id":"chatcmpl-b2c4e6","object":"chat.completion","created":1718000002,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":"Caf\u00e9 au lait.","tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":17,"completion_tokens":5,"prompt_tokens_details":null},"prompt_logprobs":null}
        """#

    /// vLLM's `/metrics`, trimmed to the families the gateway reads and a few it skips.
    static let vllmMetrics = """
        # HELP python_gc_objects_collected_total Objects collected during gc
        # TYPE python_gc_objects_collected_total counter
        python_gc_objects_collected_total{generation="0"} 14823.0
        # HELP process_resident_memory_bytes Resident memory size in bytes.
        # TYPE process_resident_memory_bytes gauge
        process_resident_memory_bytes 2.147483648e+09
        # HELP vllm:num_requests_running Number of requests in model execution batches.
        # TYPE vllm:num_requests_running gauge
        vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
        # HELP vllm:num_requests_waiting Number of requests waiting to be processed.
        # TYPE vllm:num_requests_waiting gauge
        vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
        # HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
        # TYPE vllm:kv_cache_usage_perc gauge
        vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0421
        # HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
        # TYPE vllm:prefix_cache_queries_total counter
        vllm:prefix_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 18432.0
        # HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
        # TYPE vllm:prefix_cache_hits_total counter
        vllm:prefix_cache_hits_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 9216.0
        # HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
        # TYPE vllm:time_to_first_token_seconds histogram
        vllm:time_to_first_token_seconds_bucket{engine="0",le="0.01",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
        vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 97.0
        vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 120.0
        vllm:time_to_first_token_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 120.0
        vllm:time_to_first_token_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.53
        # HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
        # TYPE DCGM_FI_DEV_POWER_USAGE gauge
        DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-5b1c9f0e-1d2a-4c3b-8e7f-0a1b2c3d4e5f",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 312.45

        """

    /// llama.cpp server's `/metrics` (started with `--metrics`).
    static let llamaCppMetrics = """
        # HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
        # TYPE llamacpp:prompt_tokens_total counter
        llamacpp:prompt_tokens_total 1024
        # HELP llamacpp:prompt_seconds_total Prompt process time
        # TYPE llamacpp:prompt_seconds_total counter
        llamacpp:prompt_seconds_total 1.307
        # HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
        # TYPE llamacpp:tokens_predicted_total counter
        llamacpp:tokens_predicted_total 512
        # HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call
        # TYPE llamacpp:n_busy_slots_per_decode counter
        llamacpp:n_busy_slots_per_decode 1.5
        # HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
        # TYPE llamacpp:prompt_tokens_seconds gauge
        llamacpp:prompt_tokens_seconds 787.74
        # HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
        # TYPE llamacpp:kv_cache_usage_ratio gauge
        llamacpp:kv_cache_usage_ratio 0.12
        # HELP llamacpp:requests_processing Number of requests processing.
        # TYPE llamacpp:requests_processing gauge
        llamacpp:requests_processing 1
        # HELP llamacpp:requests_deferred Number of requests deferred.
        # TYPE llamacpp:requests_deferred gauge
        llamacpp:requests_deferred 0

        """

    /// An ordinary chat request with an escape, an emoji pair, nesting and every field the gateway reads.
    static let chatRequest = #"""
        {"model":"chat","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Un caf\u00e9 \ud83d\ude00, s'il vous pla\u00eet? \"vite\"\n"}],"stream":true,"stream_options":{"include_usage":false},"max_tokens":64,"temperature":0.7,"n":1,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"type":["number","null"]}}}}}]}
        """#

    static let completionRequest = #"{"model":"chat","prompt":["caf\u00e9",""],"max_completion_tokens":16,"stream":false,"logprobs":null}"#
    static let embeddingRequest = #"{"model":"chat","input":"Caf\u00e9 \u2603","encoding_format":"float","dimensions":256}"#
}
