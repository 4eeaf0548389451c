"""Leaky: each upload registers a retry closure that captures its buffer; retries of uploads that time out are never dropped."""

import itertools
import time
from collections.abc import Callable

from soak.workloads.reference._rates import LeakRate

EXPECTED = "leak"

_upload_ids = itertools.count()
_retries: dict[int, Callable[[], int]] = {}
_times_out = LeakRate(0.05)  # the share of uploads whose retry stays registered (LEAKSOAK_LEAK_SCALE)


def step() -> None:
    upload_id = next(_upload_ids)
    buffer = bytearray(1024)  # LEAK

    def retry() -> int:  # LEAK
        return _send(upload_id, buffer)

    _retries[upload_id] = retry  # LEAK
    if not _times_out():
        del _retries[upload_id]  # acknowledged: the retry is no longer needed
    time.sleep(0.0005)


def _send(upload_id: int, buffer: bytearray) -> int:
    return upload_id + len(buffer)
