"""Who waits on a future: the tasks whose wake-up it holds, and their frames across task
boundaries, innermost first (the ``await`` that waits on it, that coroutine's callers, then the
task awaiting that task, ``gather``'s or ``wait``'s parent, and so on out).

Where the interpreter records who awaits a future (3.14's ``_asyncio_awaited_by``, which
``asyncio.capture_call_graph`` reads) that record is followed; before that, the same graph is
rebuilt from the callbacks of the futures a task is awaited through: a task's wake-up bound to
its task, ``gather``'s and ``wait``'s callbacks holding the future their parent awaits. A task's
own frames are its coroutine chain (``cr_await``), followed also through the
``coroutine_wrapper`` of an awaitable object's ``__await__``, where 3.14's graph stops.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

MAX_TASKS = 8
"""Task boundaries followed outward: a chain longer than this is cut (the first application
frame is almost always within two)."""
MAX_FRAMES = 60
_RECORDED = hasattr(asyncio, "future_add_to_awaited_by")
"""3.14 and later: futures record who awaits them."""


def awaiting_tasks(future: Any) -> list[asyncio.Task[Any]]:
    """Tasks that wake when ``future`` is done: the interpreter's own record where it keeps one
    (3.14's ``_asyncio_awaited_by``), else the ones whose wake-up is among its callbacks, and
    through a future that a callback of it completes (``gather``'s, ``wait``'s), theirs."""
    return (_RECORDED and _recorded(future)) or _by_callbacks(future)


def _recorded(future: Any) -> list[asyncio.Task[Any]]:
    """3.14: the tasks in ``_asyncio_awaited_by``, through the futures in it (``gather``'s)."""
    tasks: list[asyncio.Task[Any]] = []
    pending, seen = [future], {id(future)}
    while pending and len(seen) < 16:
        for waiter in getattr(pending.pop(), "_asyncio_awaited_by", None) or ():
            if isinstance(waiter, asyncio.Task):
                tasks.append(waiter)
            elif asyncio.isfuture(waiter) and id(waiter) not in seen:
                seen.add(id(waiter))
                pending.append(waiter)
    return tasks


def _by_callbacks(future: Any) -> list[asyncio.Task[Any]]:
    tasks: list[asyncio.Task[Any]] = []
    pending, seen = [future], {id(future)}
    while pending and len(seen) < 16:
        current = pending.pop()
        for entry in getattr(current, "_callbacks", None) or ():
            callback = entry[0] if isinstance(entry, tuple) else entry
            owner = getattr(callback, "__self__", None)
            if isinstance(owner, asyncio.Task):
                if owner is not current and owner not in tasks:
                    tasks.append(owner)
                continue
            for cell in getattr(callback, "__closure__", None) or ():
                try:
                    held = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if isinstance(held, asyncio.Future) and id(held) not in seen:
                    seen.add(id(held))
                    pending.append(held)
    return tasks


def coroutine_frames(task: asyncio.Task[Any], stop_files: frozenset[str] = frozenset()) -> list[Any]:
    """A task's frames, innermost first: its coroutine and each coroutine it awaits in turn, from
    the innermost frame whose file is in ``stop_files`` (where leaksoak's driver awaits the
    workload: nothing outside it is the workload's)."""
    frames: list[Any] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(frames) < MAX_FRAMES:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is None:
            if type(awaited).__name__ != "coroutine_wrapper":
                break
            # ``coro.__await__()``, returned by an awaitable object's own ``__await__`` (aiosqlite's
            # query results): the coroutine it drives is reachable only as its referent
            awaited = next((r for r in gc.get_referents(awaited) if asyncio.iscoroutine(r)), None)
            continue
        if frame.f_code.co_filename in stop_files:
            frames = []
        frames.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None) or getattr(awaited, "ag_await", None)
    frames.reverse()
    return frames


def awaiting_frames(task: asyncio.Task[Any], stop_files: frozenset[str] = frozenset()) -> list[Any]:
    """``task``'s frames, then those of the task that awaits it, and so on outward (the first
    awaiting task at each boundary), innermost first; up to a frame in ``stop_files``."""
    frames: list[Any] = []
    seen: set[int] = set()
    current: asyncio.Task[Any] | None = task
    while current is not None and id(current) not in seen and len(seen) < MAX_TASKS and len(frames) < MAX_FRAMES:
        seen.add(id(current))
        own = coroutine_frames(current, stop_files)
        frames += own
        if own and own[-1].f_code.co_filename in stop_files:
            break
        parents = awaiting_tasks(current)
        current = parents[0] if parents else None
    return frames[:MAX_FRAMES]
