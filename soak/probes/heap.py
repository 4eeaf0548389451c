"""Cheap in-process counts: objects tracked by the garbage collector, by type."""

from __future__ import annotations

import gc
import time
from collections import Counter


def gc_object_count() -> tuple[int, float]:
    """Number of gc-tracked objects and the pause it took, in ms."""
    started = time.perf_counter()
    count = len(gc.get_objects())
    return count, round((time.perf_counter() - started) * 1000, 3)


def type_census() -> tuple[int, dict[str, int], float]:
    """Total gc-tracked objects, their count per type (``module.qualname``), and the pause in ms."""
    started = time.perf_counter()
    objects = gc.get_objects()
    by_type = Counter(map(type, objects))
    total = len(objects)
    del objects
    counts = {f"{t.__module__}.{t.__qualname__}": n for t, n in by_type.items()}
    return total, counts, (time.perf_counter() - started) * 1000
