"""Clean: an LRU cache bounded at 2,000 entries; it fills in about two seconds, then stays flat."""

import itertools
import time
from collections import OrderedDict

EXPECTED = "clean"
SETTLE_CALLS = 2000  # full from then on

MAX_ENTRIES = 2000
_keys = itertools.count()
_cache: OrderedDict[int, bytes] = OrderedDict()


def step() -> None:
    key = next(_keys)
    _cache[key] = bytes(200)
    if len(_cache) > MAX_ENTRIES:
        _cache.popitem(last=False)
    time.sleep(0.0005)
