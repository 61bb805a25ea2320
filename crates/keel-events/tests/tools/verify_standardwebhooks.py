"""Check webhooks Keel signed with the reference `standardwebhooks` library (PyPI).

stdin: a JSON list of cases, each {"name", "secret" (whsec_...), "headers" (the
webhook-* headers Keel sends), "body_b64" (the exact body bytes)}.
stdout: a JSON list of results, each {"name", "verified", "error", "payload_ok",
"signature"}: whether `Webhook(secret).verify(body, headers)` accepted it (and if not,
the library's message), whether the payload it returned is the body's JSON, and the
library's own signature of the same id, timestamp and body, for Keel to compare.
Anything but a verification error (a crash, a bad secret) fails the run.
"""

import base64
import json
import sys
from datetime import datetime, timezone

from standardwebhooks import Webhook, WebhookVerificationError


def check(case):
    body = base64.b64decode(case["body_b64"])
    headers = case["headers"]
    hook = Webhook(case["secret"])
    result = {"name": case["name"], "verified": False, "error": None, "payload_ok": None}
    try:
        payload = hook.verify(body, headers)
        result["verified"] = True
        result["payload_ok"] = payload == json.loads(body)
    except WebhookVerificationError as e:
        result["error"] = str(e)
    timestamp = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=timezone.utc)
    result["signature"] = hook.sign(headers["webhook-id"], timestamp, body.decode())
    return result


def main():
    cases = json.load(sys.stdin)
    json.dump([check(c) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()
