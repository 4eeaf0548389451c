"""Leaky: rendered responses cached by request id in a module-level dict, never evicted."""

import itertools
import time

EXPECTED = "leak"
HELD_BY = "soak.workloads.holders.cache_leak._RESPONSES"


class Response:
    def __init__(self, request_id: int, body: str) -> None:
        self.request_id = request_id
        self.body = body


_RESPONSES: dict[int, Response] = {}
_calls = itertools.count()


def step() -> None:
    n = next(_calls)
    if n % 10 == 0:
        _RESPONSES[n] = Response(n, f"<p>{n}</p>")  # LEAK
    time.sleep(0.0005)
