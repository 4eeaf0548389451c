"""Hidden thread pools: work that code running on an event loop hands to an executor.

While installed, ``submit`` of ``concurrent.futures``' thread and process pools is wrapped (the
loop's default executor, ``loop.run_in_executor`` and ``asyncio.to_thread`` all go through it).
A submission made from a thread that runs an event loop is recorded with the stack that made it,
cut to the workload's frames (soak.inprocess.probes.frames) and with the pool machinery of ``asyncio`` and
``concurrent.futures`` left out, so its first frame is the library line that called into the
pool. The time from submission to completion is summed per call site.

Series per snapshot (kind ``async``), per call site: ``<site>`` in seconds (time in the pool) and
in count (submissions); and ``caller_s``, the time the workload's callers had in the period
(callers × wall time), which a share of pool time is taken of; and ``own_s``, the wrapper's own
cost in the period.
The wrapper never raises into the workload: its own bookkeeping is guarded, and the original
``submit`` is always what runs. :meth:`ExecutorProbe.uninstall` puts the originals back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from soak.inprocess.probes.frames import FrameFilter
from soak.inprocess.probes.loop_lag import StackFrame, read_stack, site_label
from soak.inprocess.probes.probe import FindingKind, ProbeResult, Reading

_POOL_MACHINERY = tuple(os.path.join(os.path.dirname(os.path.abspath(module.__file__ or "")), "")
                        for module in (asyncio, concurrent.futures))
"""Frames here are how a submission reaches the pool, not who made it."""
SUBMIT_FRAMES = 12
"""Frames read of a submission's stack: the pool machinery's one or two, then the library's call
and the application's above it (reading each costs, and a service may submit thousands a second)."""
_POOLS: tuple[type[concurrent.futures.Executor], ...] = (concurrent.futures.ThreadPoolExecutor, concurrent.futures.ProcessPoolExecutor)


@dataclass
class PoolSite:
    """Submissions from one call site."""

    label: str
    frames: tuple[StackFrame, ...]
    executor: str
    function: str
    submits: int = 0
    pool_s: float = 0.0


def submitting_frames(stack: tuple[StackFrame, ...], frame_filter: FrameFilter) -> tuple[StackFrame, ...]:
    """The workload's frames of a submission, innermost first, from the first frame outside the
    pool machinery (the library's call into the pool); () when leaksoak made it."""
    first = 0
    while first < len(stack) and stack[first][0].startswith(_POOL_MACHINERY):
        first += 1
    stack = stack[first:]
    kept = frame_filter.workload_frames(tuple((f, n) for f, n, _ in stack))
    return stack[: len(kept)]


def _function_name(fn: Any) -> str:
    """What was submitted; ``asyncio.to_thread`` submits ``partial(context.run, func, ...)``."""
    target = fn
    if isinstance(target, functools.partial):
        target = target.args[0] if isinstance(getattr(target.func, "__self__", None), contextvars.Context) and target.args else target.func
    module = getattr(target, "__module__", None) or "?"
    return f"{module}.{getattr(target, '__qualname__', type(target).__qualname__)}"


class ExecutorProbe:
    """Work submitted to executors from event-loop threads, by call site."""

    name = "thread_pools"
    kind: FindingKind = "async"

    def __init__(self, callers: Callable[[], int] | None = None) -> None:
        """``callers``: how many callers of the workload run at once (the async driver's
        concurrency); None for a service, whose pool time is then a share of wall time (above
        100% when several requests wait in the pool at once)."""
        self._callers = callers
        self._filter = FrameFilter()
        self._sites: dict[tuple[StackFrame, ...], PoolSite] = {}
        self._labels: dict[str, tuple[StackFrame, ...]] = {}
        self._known: dict[tuple[int, int, int, int], tuple[Any, Any, tuple[StackFrame, ...]]] = {}
        self._period_s: dict[tuple[StackFrame, ...], float] = {}
        self._period_submits: dict[tuple[StackFrame, ...], int] = {}
        self._period_started = time.monotonic()
        self._own_s = 0.0
        """The wrapper's own time since the last snapshot (the pool's time is not counted)."""
        self._originals: dict[type[concurrent.futures.Executor], Any] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        if self._originals:
            return
        for pool in _POOLS:
            original = pool.__dict__["submit"]
            self._originals[pool] = original
            pool.submit = self._wrap(original)  # type: ignore[method-assign]
        self._period_started = time.monotonic()

    def uninstall(self) -> None:
        for pool, original in self._originals.items():
            pool.submit = original  # type: ignore[method-assign]
        self._originals = {}

    def _wrap(self, original: Callable[..., concurrent.futures.Future[Any]]) -> Callable[..., concurrent.futures.Future[Any]]:
        probe = self

        def submit(executor: Any, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
            began = time.perf_counter()
            try:
                site = probe._site(executor, fn, sys._getframe(1))
            except Exception:  # noqa: BLE001 - bookkeeping never costs the workload its call
                site = None
            cost = time.perf_counter() - began
            future = original(executor, fn, *args, **kwargs)
            if site is not None:
                began = time.perf_counter()
                try:
                    started = time.monotonic()
                    future.add_done_callback(lambda _: probe._done(site, started))
                except Exception:  # noqa: BLE001
                    pass
                cost += time.perf_counter() - began
            probe._own_s += cost
            return future

        submit.__wrapped__ = original  # type: ignore[attr-defined]
        submit.__doc__ = original.__doc__
        return submit

    def _site(self, executor: Any, fn: Any, caller: Any) -> tuple[StackFrame, ...] | None:
        loop = asyncio._get_running_loop()
        if loop is None:
            return None  # plain threaded code: a pool in the open, not one hidden behind an await
        frames = self._frames(caller)
        if not frames:
            return None
        with self._lock:
            if frames not in self._sites:
                label = site_label(frames)
                while label in self._labels:  # two stacks through the same two lines
                    label += "'"
                default = executor is getattr(loop, "_default_executor", None)
                workers = getattr(executor, "_max_workers", None)
                notes = [*(["the loop's default executor"] if default else []),
                         *([f"{workers} workers"] if isinstance(workers, int) else [])]
                kind = type(executor).__name__ + (f" ({', '.join(notes)})" if notes else "")
                self._sites[frames] = PoolSite(label, frames, kind, _function_name(fn))
                self._labels[label] = frames
            self._period_submits[frames] = self._period_submits.get(frames, 0) + 1
        return frames

    def _frames(self, caller: Any) -> tuple[StackFrame, ...]:
        """The submission's frames (see :func:`submitting_frames`), read in full only the first
        time its two innermost lines outside the pool machinery are seen: a site is those two
        lines (its label), and reading a whole stack on every submission costs more than most."""
        frame = caller
        while frame is not None and frame.f_code.co_filename.startswith(_POOL_MACHINERY):
            frame = frame.f_back
        if frame is None:
            return ()
        outer = frame.f_back
        key = (id(frame.f_code), frame.f_lasti, id(outer.f_code) if outer else 0, outer.f_lasti if outer else -1)
        known = self._known.get(key)
        if known is not None and known[0] is frame.f_code and known[1] is (outer.f_code if outer else None):
            return known[2]
        frames = submitting_frames(read_stack(caller, SUBMIT_FRAMES), self._filter)
        self._known[key] = (frame.f_code, outer.f_code if outer else None, frames)
        return frames

    def _done(self, frames: tuple[StackFrame, ...], started: float) -> None:
        began = time.perf_counter()
        elapsed = time.monotonic() - started
        with self._lock:
            self._period_s[frames] = self._period_s.get(frames, 0.0) + elapsed
        self._own_s += time.perf_counter() - began

    def collect(self) -> ProbeResult:
        now = time.monotonic()
        with self._lock:
            seconds, self._period_s = self._period_s, {}
            submits, self._period_submits = self._period_submits, {}
            wall, self._period_started = now - self._period_started, now
            own, self._own_s = self._own_s, 0.0
            sites = list(self._sites.values())
        if not self._originals:
            return ProbeResult([])
        readings = [Reading("caller_s", "seconds", wall * (max(1, self._callers()) if self._callers else 1))]
        readings.append(Reading("own_s", "seconds", own))
        share_of = "the callers' time" if self._callers else "wall time"
        evidence: dict[str, Any] = {}
        for site in sites:
            site.submits += submits.get(site.frames, 0)
            site.pool_s += seconds.get(site.frames, 0.0)
            readings.append(Reading(site.label, "seconds", seconds.get(site.frames, 0.0)))
            readings.append(Reading(site.label, "count", submits.get(site.frames, 0)))
            evidence[site.label] = {
                "frames": [{"file": f, "line": n, "function": fn} for f, n, fn in site.frames],
                "executor": site.executor, "submitted": site.function,
                "submits_total": site.submits, "pool_s_total": round(site.pool_s, 4), "share_of": share_of,
            }
        return ProbeResult(readings, evidence)
