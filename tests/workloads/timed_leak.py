"""Leaky at a set rate per second of wall-clock time, whatever the call rate: each call keeps
``LEAKSOAK_TEST_LEAK_KIB_PER_S`` (default 64) KiB for every second since the previous call.

The reference leaks leak per call, so their rate in bytes per second follows how fast a busy
machine runs the worker; this one does not, so that two runs can be compared: doubling the
variable doubles the slope.
"""

import os
import time

RATE_BYTES_PER_S = float(os.environ.get("LEAKSOAK_TEST_LEAK_KIB_PER_S", "64")) * 1024
CHUNK = 1024

_kept: list[bytes] = []
_last = time.monotonic()
_owed = 0.0


def step() -> None:
    global _last, _owed
    now = time.monotonic()
    _owed += (now - _last) * RATE_BYTES_PER_S
    _last = now
    while _owed >= CHUNK:
        _kept.append(bytes(CHUNK))  # LEAK
        _owed -= CHUNK
    time.sleep(0.001)
