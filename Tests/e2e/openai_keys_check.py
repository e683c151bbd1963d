"""The README's "Keys and limits" example, run by StoreWiringTests against a gateway in keys mode:
the official openai client with a Proxima API key uses a model of its scope and is refused another.
Usage: openai_keys_check.py BASE_URL TOKEN ALLOWED_MODEL REFUSED_MODEL. Exits non-zero on a failure."""
import sys

import openai
from openai import OpenAI

base_url, token, allowed, refused = sys.argv[1:5]

# --- the README example ---------------------------------------------------------------------
client = OpenAI(base_url=base_url + "/v1", api_key=token)
reply = client.chat.completions.create(
    model=allowed,
    messages=[{"role": "user", "content": "Say hello."}],
    max_tokens=16,
)
print(reply.choices[0].message.content)
# ---------------------------------------------------------------------------------------------

assert reply.choices[0].message.content, "the allowed model answered"
assert [m.id for m in client.models.list().data] == [allowed], "models.list shows only the key's models"

try:
    client.chat.completions.create(model=refused, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    sys.exit("FAILED: a model outside the key's scope was served")
except openai.PermissionDeniedError as error:
    assert error.status_code == 403 and error.body.get("code") == "model_not_allowed", error.body

bad = OpenAI(base_url=base_url + "/v1", api_key=token[:-4] + "aaaa", max_retries=0)
try:
    bad.chat.completions.create(model=allowed, messages=[{"role": "user", "content": "hi"}])
    sys.exit("FAILED: a wrong secret was accepted")
except openai.AuthenticationError as error:
    assert error.status_code == 401, error

print("all openai keys checks passed")
