"""Raises from the workload function two seconds after its first call (ten snapshots at 0.2 s)."""

import time

_first_call: float | None = None


def step() -> None:
    global _first_call
    _first_call = _first_call or time.monotonic()
    if time.monotonic() - _first_call > 2.0:
        raise ValueError("bad request payload")
    time.sleep(0.001)
