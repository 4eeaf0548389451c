"""Crashes the interpreter (SIGABRT) after running for ABORT_AFTER_S seconds."""

import os
import time

ABORT_AFTER_S = float(os.environ.get("ABORT_AFTER_S", "2"))
_started = time.monotonic()
_kept: list[bytes] = []


def step() -> None:
    _kept.append(bytes(100))
    if time.monotonic() - _started > ABORT_AFTER_S:
        os.abort()
    time.sleep(0.001)
