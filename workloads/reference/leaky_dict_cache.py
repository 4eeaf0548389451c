"""Leaky: a response cache keyed by request id, never evicted."""

import json
import time

from soak.workloads.reference._rates import fresh_ids

EXPECTED = "leak"
_request_ids = fresh_ids()  # a new id on a share of requests (LEAKSOAK_LEAK_SCALE), else a retry
_responses: dict[int, str] = {}


def step() -> None:
    request_id = next(_request_ids)
    body = json.dumps({"id": request_id, "items": list(range(20))})
    _responses[request_id] = body.upper()  # LEAK
    time.sleep(0.0005)
