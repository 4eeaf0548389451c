"""Leaky: an in-memory access log, one ``bytearray`` that every request appends to and nothing rotates."""

import itertools
import time

from soak.workloads.reference._rates import LeakRate

EXPECTED = "leak"

_request_ids = itertools.count()
_access_log = bytearray()
_logged = LeakRate(0.5)  # the share of requests that are logged (LEAKSOAK_LEAK_SCALE)


def step() -> None:
    request_id = next(_request_ids)
    line = f"GET /api/items/{request_id} 200 0.4ms\n".encode()
    if _logged():
        _access_log.extend(line * 2)  # LEAK
    time.sleep(0.0005)
