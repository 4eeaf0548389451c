"""Cheap in-process counts: objects tracked by the garbage collector, live asyncio tasks."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any, Collection


def gc_object_count() -> tuple[int, float]:
    """Number of gc-tracked objects and the pause it took, in ms."""
    started = time.perf_counter()
    count = len(gc.get_objects())
    return count, (time.perf_counter() - started) * 1000


def asyncio_task_count(
    loop: asyncio.AbstractEventLoop | None, own: Collection[asyncio.Task[Any]] = ()
) -> int | None:
    """Live tasks on ``loop`` that are not in ``own`` (the driver's callers), or None without a loop.

    Best called on the loop's own thread.
    """
    if loop is None or loop.is_closed():
        return None
    return sum(1 for task in asyncio.all_tasks(loop) if task not in own)
