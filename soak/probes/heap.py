"""A cheap in-process count: objects tracked by the garbage collector (the census by type is
soak.probes.types)."""

from __future__ import annotations

import gc
import time


def gc_object_count() -> tuple[int, float]:
    """Number of gc-tracked objects and the pause it took, in ms."""
    started = time.perf_counter()
    count = len(gc.get_objects())
    return count, round((time.perf_counter() - started) * 1000, 3)

