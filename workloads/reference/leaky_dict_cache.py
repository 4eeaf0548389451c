"""Leaky: a response cache keyed by request id, never evicted."""

import itertools
import json
import time

EXPECTED = "leak"

_request_ids = itertools.count()
_responses: dict[int, str] = {}


def step() -> None:
    request_id = next(_request_ids)
    body = json.dumps({"id": request_id, "items": list(range(20))})
    _responses[request_id] = body.upper()  # LEAK
    time.sleep(0.0005)
