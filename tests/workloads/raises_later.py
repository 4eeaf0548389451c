"""Raises from the workload function after a second."""

import time

_started = time.monotonic()


def step() -> None:
    if time.monotonic() - _started > 1.0:
        raise ValueError("bad request payload")
    time.sleep(0.001)
