"""Grows until memory runs out: each call keeps 64 KiB chunks at ``LEAKSOAK_TEST_GROW_MIB_PER_S``
(default 20) MiB per second of wall-clock time. With ``LEAKSOAK_TEST_RLIMIT_AS_MIB`` set, setup()
caps the worker's address space at what it uses now plus that many MiB (ulimit -v, for machines
where the OOM test cannot make a memory cgroup).
"""

import os
import resource
import time

RATE_BYTES_PER_S = float(os.environ.get("LEAKSOAK_TEST_GROW_MIB_PER_S", "20")) * 1024 * 1024
CHUNK = 64 * 1024

_kept: list[bytes] = []
_last = time.monotonic()
_owed = 0.0


def setup() -> None:
    extra = os.environ.get("LEAKSOAK_TEST_RLIMIT_AS_MIB")
    if extra:
        with open("/proc/self/status", encoding="ascii") as handle:
            size = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
        limit = size + int(extra) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def step() -> None:
    global _last, _owed
    now = time.monotonic()
    _owed += (now - _last) * RATE_BYTES_PER_S
    _last = now
    while _owed >= CHUNK:
        _kept.append(bytes(CHUNK))  # LEAK
        _owed -= CHUNK
    time.sleep(0.005)
