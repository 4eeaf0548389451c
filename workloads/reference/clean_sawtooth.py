"""Clean: a batch buffer that fills for 500 calls and is flushed, over and over."""

import time

EXPECTED = "clean"
SETTLE_CALLS = 500  # one full batch

_batch: list[bytes] = []


def step() -> None:
    _batch.append(bytes(300))
    if len(_batch) >= 500:
        _batch.clear()
    time.sleep(0.0005)
