"""Drives a running Proxima gateway with the official openai Python client and checks what a client
sees: plain and streamed chat and completions, usage, model listing, and errors.
Usage: openai_client_check.py BASE_URL MODEL [EMBEDDING_MODEL]. Exits non-zero on the first failure."""
import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
embedding_model = sys.argv[3] if len(sys.argv) > 3 else None
client = openai.OpenAI(base_url=base_url + "/v1", api_key="caller-secret-key", max_retries=0, timeout=120)
messages = [{"role": "user", "content": "Say hello in three words."}]


def check(condition, message):
    if not condition:
        print("FAILED:", message)
        sys.exit(1)
    print("ok:", message)


listed = [m.id for m in client.models.list().data]
check(model in listed, f"models.list includes {model} ({listed})")

raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=16)
chat = raw.parse()
check(raw.headers.get("x-proxima-endpoint"), "chat response names the endpoint")
check(raw.headers.get("x-request-id"), "chat response carries a request id")
check(chat.choices[0].message.content, "non-streamed chat has content")
check(chat.usage and chat.usage.prompt_tokens > 0 and chat.usage.completion_tokens > 0, f"non-streamed chat reports usage ({chat.usage})")

pieces, usage_chunks = [], 0
for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=16, stream=True):
    if chunk.usage is not None:
        usage_chunks += 1
    for choice in chunk.choices:
        if choice.delta and choice.delta.content:
            pieces.append(choice.delta.content)
check("".join(pieces), "streamed chat yields content through the unchanged iterator")
check(usage_chunks == 0, "a stream that did not ask for usage shows no usage chunk")

usage = None
for chunk in client.chat.completions.create(
        model=model, messages=messages, max_tokens=16, stream=True, stream_options={"include_usage": True}):
    if chunk.usage is not None:
        usage = chunk.usage
check(usage is not None and usage.completion_tokens > 0, f"a stream that asked for usage gets it ({usage})")

completion = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8)
check(completion.choices[0].text, "non-streamed completion has text")
check(completion.usage and completion.usage.completion_tokens > 0, "non-streamed completion reports usage")

text = "".join(c.choices[0].text for c in client.completions.create(
    model=model, prompt="Once upon a time", max_tokens=12, stream=True) if c.choices)
check(text, "streamed completion yields text")

try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    check(False, "unknown model is refused")
except openai.NotFoundError as error:
    check(error.status_code == 404 and error.body.get("code") == "model_not_found", "unknown model gives 404 model_not_found")

try:
    client.chat.completions.create(model=model, messages=[])
    check(False, "empty messages are refused")
except openai.BadRequestError as error:
    check(error.status_code == 400 and error.body.get("param") == "messages", "empty messages give 400 naming 'messages'")

if embedding_model:
    result = client.embeddings.create(model=embedding_model, input=["hello world", "bonjour le monde"])
    check(len(result.data) == 2 and len(result.data[0].embedding) > 0, f"embeddings return vectors ({len(result.data[0].embedding)} dims)")

print("all openai client checks passed")
