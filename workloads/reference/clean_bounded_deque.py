"""Clean: the last 2,000 requests kept for a debug page in a ``deque(maxlen=2000)``."""

import itertools
import time
from collections import deque

EXPECTED = "clean"
SETTLE_CALLS = 2000  # full from then on

_request_ids = itertools.count()
_recent: deque[str] = deque(maxlen=2000)


def step() -> None:
    request_id = next(_request_ids)
    _recent.append(f"request {request_id}: GET /api/items?page={request_id % 50} -> 200 in 0.4 ms")
    time.sleep(0.0005)
