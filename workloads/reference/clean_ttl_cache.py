"""Clean: a de-duplication cache of request ids that expire after ``TTL_S`` (0.5 s); expired ids are swept every 200 calls."""

import itertools
import time
from collections import OrderedDict

EXPECTED = "clean"
TTL_S = 0.5
SETTLE_S = 2 * TTL_S  # full after one TTL, its dict at its working size after about two

_request_ids = itertools.count()
_seen: OrderedDict[int, tuple[float, bytes]] = OrderedDict()  # insertion order is expiry order


def step() -> None:
    request_id = next(_request_ids)
    now = time.monotonic()
    _seen[request_id] = (now + TTL_S, bytes(200))  # the id, when it expires, the response to replay
    if request_id % 200 == 0:
        while _seen and next(iter(_seen.values()))[0] <= now:
            _seen.popitem(last=False)
    time.sleep(0.0005)
