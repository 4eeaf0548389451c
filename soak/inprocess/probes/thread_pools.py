"""Hidden thread pools: any thread doing work for a coroutine that waits on it.

One mechanism: a thread hands its result back to a coroutine through the loop's
``call_soon_threadsafe``, with the future the coroutine awaits among the call's arguments (or as
the callback's owner). That is how ``concurrent.futures`` executors reach asyncio
(``run_in_executor``, ``asyncio.to_thread``: ``wrap_future``'s ``_set_state``), how anyio's worker
threads report (``anyio.to_thread.run_sync``, Starlette's ``run_in_threadpool``, so FastAPI's
plain ``def`` endpoints and dependencies), and how a dedicated thread fed by a queue answers
(aiosqlite, janus-style bridges). While installed, the watched loop's ``call_soon_threadsafe`` is
wrapped (on the loop object only); a call from another thread that completes a future some task
waits on is a hidden pool's answer. Its place is the waiting task's ``await``, followed across
task boundaries to the application (soak.inprocess.probes.awaiting), cut to the workload's
frames (soak.inprocess.probes.frames), with the pool's own machinery (``asyncio``,
``concurrent.futures``, anyio) left out, so its first frame is the library line that waits on
the pool.

How long the coroutine waited: exactly, for an executor's work, from the time of the ``submit``
(``submit`` of ``concurrent.futures``' pools is wrapped to stamp the future it returns); for any
other thread, by sampling: every ``scan_s`` the loop's tasks are looked at, and each future a
task waits on is credited the time since the last look (an unbiased estimate of its wait, however
short). The sampling starts only once a thread other than an executor's has answered a coroutine.

Series per snapshot (kind ``async``), per call site: ``<site>`` in seconds (time waited) and in
count (answers); ``caller_s``, the time the workload's callers had in the period (callers × wall
time), which a share of pool time is taken of; and ``own_s``, the probe's own cost in the period.
The wrappers never raise into the workload: their own bookkeeping is guarded, and the original is
always what runs. :meth:`HiddenPoolProbe.uninstall` puts the originals back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import importlib.util
import os
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from soak.inprocess.probes.awaiting import awaiting_frames, awaiting_tasks
from soak.inprocess.probes.frames import DRIVER_FILES, FrameFilter
from soak.inprocess.probes.loop_lag import StackFrame, frame_entry, site_label
from soak.inprocess.probes.probe import FindingKind, ProbeResult, Reading


def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    return os.path.join(os.path.dirname(os.path.abspath(origin)), "") if origin else None


_POOL_MACHINERY = tuple(d for d in (_package_dir("asyncio"), _package_dir("concurrent.futures"), _package_dir("anyio")) if d)
"""Frames here are how a coroutine waits on a pool (asyncio's and anyio's ``to_thread``), not who
waits: a site starts at the first frame outside them."""
DEFAULT_SCAN_S = 0.01
"""Time between two looks at the loop's waiting tasks, once a thread other than an executor's has
answered a coroutine."""
_STAMP = "_soak_submitted"
"""The attribute a wrapped ``submit`` sets on the future it returns: (monotonic time, executor, function)."""
_KNOWN_MAX = 10_000
_POOLS: tuple[type[concurrent.futures.Executor], ...] = (concurrent.futures.ThreadPoolExecutor, concurrent.futures.ProcessPoolExecutor)


@dataclass
class PoolSite:
    """Answers from other threads to coroutines waiting at one call site."""

    label: str
    frames: tuple[StackFrame, ...]
    executor: str
    function: str
    function_at: StackFrame | None = None
    """Where the function run in the thread is defined: the user's code behind a framework's pool."""
    answered_at: StackFrame | None = None
    """The thread's line that handed the result back to the loop: the pool's own code (anyio's
    worker thread, aiosqlite's connection thread), which names the library that hides the pool
    when the waiting stack holds none (``await anyio.to_thread.run_sync(f)``). None for an
    executor's work (``concurrent.futures``, the stdlib's)."""
    answers: int = 0
    pool_s: float = 0.0


@dataclass
class _Period:
    seconds: dict[tuple[StackFrame, ...], float] = field(default_factory=dict)
    answers: dict[tuple[StackFrame, ...], int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


def waiting_site(frames: tuple[StackFrame, ...], frame_filter: FrameFilter) -> tuple[StackFrame, ...]:
    """The workload's frames of a wait, innermost first, from the first frame outside the pool
    machinery (the library's wait on the pool); () when leaksoak is the one waiting."""
    first = 0
    while first < len(frames) and frames[first][0].startswith(_POOL_MACHINERY):
        first += 1
    cut = list(frames[first:])
    for n, entry in enumerate(cut):
        if entry[0] in DRIVER_FILES:
            cut = cut[: n + 1]
            break
    kept = frame_filter.workload_frames(tuple((f, line) for f, line, _ in cut))
    return tuple(cut[: len(kept)])


_FUNCTIONS = (types.FunctionType, types.MethodType, functools.partial)


def _cell(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def _unwrapped(fn: Any) -> Any:
    """What a partial or a closure runs: the first function it passes on or closes over. A
    wrapper that runs a function it is handed (``asyncio.to_thread``'s ``partial(context.run, func, ...)``, FastAPI's
    ``partial(_run_sync_endpoint, function=endpoint, ...)``, langchain's ``wrapper`` closure over
    ``func``) is named by the function it runs."""
    for _ in range(8):
        if isinstance(fn, functools.partial):
            passed = [a for a in (*fn.args, *fn.keywords.values()) if isinstance(a, _FUNCTIONS)]
            in_context = isinstance(getattr(fn.func, "__self__", None), contextvars.Context) and fn.args
            fn = passed[0] if passed else fn.args[0] if in_context else fn.func
        elif isinstance(fn, types.FunctionType) and fn.__closure__:  # a closure that calls what it closes over
            held = [value for value in map(_cell, fn.__closure__) if value is not fn and isinstance(value, _FUNCTIONS)]
            if not held:
                break
            fn = held[0]
        else:
            break
    return fn


def _function_name(fn: Any) -> str:
    target = _unwrapped(fn)
    module = getattr(target, "__module__", None) or "?"
    return f"{module}.{getattr(target, '__qualname__', type(target).__qualname__)}"


def _function_at(fn: Any) -> StackFrame | None:
    code = getattr(_unwrapped(fn), "__code__", None)
    return (code.co_filename, code.co_firstlineno, code.co_qualname if hasattr(code, "co_qualname") else code.co_name) if code else None


def _executor_name(executor: Any, loop: asyncio.AbstractEventLoop | None) -> str:
    default = loop is not None and executor is getattr(loop, "_default_executor", None)
    workers = getattr(executor, "_max_workers", None)
    notes = [*(["the loop's default executor"] if default else []), *([f"{workers} workers"] if isinstance(workers, int) else [])]
    return type(executor).__name__ + (f" ({', '.join(notes)})" if notes else "")


def _thread_name(thread: threading.Thread) -> str:
    return f"{type(thread).__name__} {thread.name!r}"


def _ran_in(frame: Any) -> Any:
    """The callable a thread just ran for a coroutine: the first one held by the frames that hand
    the result back (anyio's worker has ``func``, aiosqlite's thread ``function``)."""
    for _ in range(2):
        if frame is None:
            break
        for name, value in frame.f_locals.items():
            if name == "self" or not callable(value) or isinstance(value, type):
                continue
            if not asyncio.isfuture(getattr(value, "__self__", None)):  # not a future's own set_result
                return value
        frame = frame.f_back
    return None


class HiddenPoolProbe:
    """Work done in other threads for coroutines that wait on it, by the coroutines' call site."""

    name = "thread_pools"
    kind: FindingKind = "async"

    def __init__(self, callers: Callable[[], int] | None = None, scan_s: float = DEFAULT_SCAN_S) -> None:
        """``callers``: how many callers of the workload run at once (the async driver's
        concurrency); None for a service, whose pool time is then a share of wall time (above
        100% when several requests wait in the pool at once)."""
        self._callers = callers
        self.scan_s = scan_s
        self._filter = FrameFilter()
        self._sites: dict[tuple[StackFrame, ...], PoolSite] = {}
        self._labels: dict[str, tuple[StackFrame, ...]] = {}
        self._known: dict[tuple[tuple[int, int], ...], tuple[tuple[Any, ...], tuple[StackFrame, ...]]] = {}
        """An await chain's (code id, instruction) → (its codes, its site): see :meth:`_site_frames`."""
        self._period = _Period()
        self._own_s = 0.0
        """The wrappers' and the scan's own time since the last snapshot (the pool's time is not counted)."""
        self._originals: dict[type[concurrent.futures.Executor], Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._waited: dict[int, tuple[Any, float]] = {}
        """id of a future some task waits on → (the future, seconds credited to it by the scans)."""
        self._last_scan = 0.0
        self._scan_handle: asyncio.TimerHandle | None = None
        self._scanning = False
        self._lock = threading.Lock()

    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Wrap ``submit`` and, given the loop (from its own thread), its ``call_soon_threadsafe``."""
        if self._originals:
            return
        for pool in _POOLS:
            original = pool.__dict__["submit"]
            self._originals[pool] = original
            pool.submit = self._wrap_submit(original)  # type: ignore[method-assign]
        if loop is not None:
            self._loop, self._loop_thread = loop, threading.get_ident()
            try:
                loop.call_soon_threadsafe = self._wrap_threadsafe(loop.call_soon_threadsafe)  # type: ignore[method-assign,assignment]
            except (AttributeError, TypeError):  # a loop object that takes no attribute: no pool is seen,
                pass  # and the loop's lag is still measured
        self._period = _Period()

    def uninstall(self) -> None:
        for pool, original in self._originals.items():
            pool.submit = original  # type: ignore[method-assign]
        self._originals = {}
        loop, self._loop = self._loop, None
        if loop is not None and "call_soon_threadsafe" in getattr(loop, "__dict__", {}):
            del loop.call_soon_threadsafe
        if self._scan_handle is not None and threading.get_ident() == self._loop_thread:
            self._scan_handle.cancel()
        self._scan_handle, self._scanning = None, False
        with self._lock:
            self._waited = {}

    # The hooks ---------------------------------------------------------------------------------

    def _wrap_submit(self, original: Callable[..., concurrent.futures.Future[Any]]) -> Callable[..., concurrent.futures.Future[Any]]:
        probe = self

        def submit(executor: Any, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
            started = time.monotonic()
            future = original(executor, fn, *args, **kwargs)
            if probe._loop is not None and threading.get_ident() == probe._loop_thread:
                began = time.perf_counter()
                try:
                    setattr(future, _STAMP, (started, executor, fn))
                except Exception:  # noqa: BLE001 - bookkeeping never costs the workload its call
                    pass
                probe._own_s += time.perf_counter() - began
            return future

        submit.__wrapped__ = original  # type: ignore[attr-defined]
        submit.__doc__ = original.__doc__
        return submit

    def _wrap_threadsafe(self, original: Callable[..., asyncio.Handle]) -> Callable[..., asyncio.Handle]:
        probe = self

        def call_soon_threadsafe(callback: Any, *args: Any, context: contextvars.Context | None = None) -> asyncio.Handle:
            if threading.get_ident() != probe._loop_thread and probe._loop is not None:
                began = time.perf_counter()
                try:
                    probe._answered(callback, args, sys._getframe(1))
                except Exception:  # noqa: BLE001
                    pass
                probe._own_s += time.perf_counter() - began
            return original(callback, *args, context=context)

        call_soon_threadsafe.__wrapped__ = original  # type: ignore[attr-defined]
        return call_soon_threadsafe

    # A thread answers -------------------------------------------------------------------------

    def _answered(self, callback: Any, args: tuple[Any, ...], caller: Any) -> None:
        """A thread hands ``callback(*args)`` to the loop: if it completes a future that a task
        waits on, that wait was for this thread's work."""
        futures = [a for a in args if isinstance(a, asyncio.Future) and not a.done()]
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, asyncio.Future) and not owner.done():
            futures.append(owner)
        if not futures:
            return
        stamp = next((getattr(a, _STAMP) for a in args if isinstance(a, concurrent.futures.Future) and hasattr(a, _STAMP)), None)
        for future in futures:
            tasks = awaiting_tasks(future)
            if not tasks:
                continue
            frames = self._site_frames(awaiting_frames(tasks[0], DRIVER_FILES))
            if not frames:
                return
            if stamp is not None:
                seconds = time.monotonic() - stamp[0]
                self._record(frames, seconds, lambda: (_executor_name(stamp[1], self._loop), stamp[2], None))
                return
            with self._lock:
                entry = self._waited.pop(id(future), None)
            seconds = entry[1] if entry is not None and entry[0] is future else 0.0
            self._record(frames, seconds, lambda: (_thread_name(threading.current_thread()), _ran_in(caller), frame_entry(caller)))
            self._start_scanning()
            return

    def _site_frames(self, frames: list[Any]) -> tuple[StackFrame, ...]:
        """:func:`waiting_site` of a wait's frames, remembered by their code and instructions:
        the same ``await`` chain answers over and over."""
        key = tuple((id(frame.f_code), frame.f_lasti) for frame in frames)
        known = self._known.get(key)
        codes = tuple(frame.f_code for frame in frames)
        if known is not None and known[0] == codes:
            return known[1]
        if len(self._known) >= _KNOWN_MAX:
            self._known.clear()
        site = waiting_site(tuple(frame_entry(f) for f in frames), self._filter)
        self._known[key] = (codes, site)
        return site

    def _record(self, frames: tuple[StackFrame, ...], seconds: float,
                describe: Callable[[], tuple[str, Any, StackFrame | None]]) -> None:
        """Count an answer at ``frames``; ``describe`` (the pool, the function it ran and the
        thread's line that answered) is called only for a site seen the first time."""
        with self._lock:
            if frames not in self._sites:
                executor, fn, answered_at = describe()
                label = site_label(frames)
                while label in self._labels:  # two stacks through the same two lines
                    label += "'"
                function = _function_name(fn) if fn is not None else "?"
                self._sites[frames] = PoolSite(label, frames, executor, function, _function_at(fn) if fn is not None else None,
                                               answered_at)
                self._labels[label] = frames
            period = self._period
            period.seconds[frames] = period.seconds.get(frames, 0.0) + seconds
            period.answers[frames] = period.answers.get(frames, 0) + 1

    # The scan, on the loop -------------------------------------------------------------------

    def _start_scanning(self) -> None:
        loop = self._loop
        if self._scanning or loop is None:
            return
        self._scanning = True
        self._last_scan = time.monotonic()
        original = getattr(loop.call_soon_threadsafe, "__wrapped__", loop.call_soon_threadsafe)
        original(self._schedule_scan)

    def _schedule_scan(self) -> None:
        loop = self._loop
        if loop is not None and self._scanning:
            self._scan_handle = loop.call_later(self.scan_s, self._scan)

    def _scan(self) -> None:
        """Credit each future a task waits on with the time since the last scan."""
        began = time.perf_counter()
        loop = self._loop
        if loop is None or not self._scanning:
            return
        try:
            now = time.monotonic()
            step, self._last_scan = now - self._last_scan, now
            with self._lock:
                previous = self._waited
                waited: dict[int, tuple[Any, float]] = {}
                for task in asyncio.all_tasks(loop):
                    future = getattr(task, "_fut_waiter", None)
                    if future is None or isinstance(future, asyncio.Task):
                        continue
                    before = previous.get(id(future))
                    waited[id(future)] = (future, (before[1] if before is not None and before[0] is future else 0.0) + step)
                self._waited = waited
            self._schedule_scan()
        except Exception:  # noqa: BLE001 - a probe never raises into the workload's loop
            self._scan_handle = None
        self._own_s += time.perf_counter() - began

    # Collection --------------------------------------------------------------------------------

    def collect(self) -> ProbeResult:
        now = time.monotonic()
        with self._lock:
            period, self._period = self._period, _Period(started=now)
            own, self._own_s = self._own_s, 0.0
            sites = list(self._sites.values())
        if not self._originals:
            return ProbeResult([])
        wall = now - period.started
        readings = [Reading("caller_s", "seconds", wall * (max(1, self._callers()) if self._callers else 1))]
        readings.append(Reading("own_s", "seconds", own))
        share_of = "the callers' time" if self._callers else "wall time"
        evidence: dict[str, Any] = {}
        for site in sites:
            site.answers += period.answers.get(site.frames, 0)
            site.pool_s += period.seconds.get(site.frames, 0.0)
            readings.append(Reading(site.label, "seconds", period.seconds.get(site.frames, 0.0)))
            readings.append(Reading(site.label, "count", period.answers.get(site.frames, 0)))
            evidence[site.label] = {
                "frames": [{"file": f, "line": n, "function": fn} for f, n, fn in site.frames],
                "executor": site.executor, "submitted": site.function,
                "submitted_at": ({"file": site.function_at[0], "line": site.function_at[1], "function": site.function_at[2]}
                                 if site.function_at else None),
                "answered_at": ({"file": site.answered_at[0], "line": site.answered_at[1], "function": site.answered_at[2]}
                                if site.answered_at else None),
                "submits_total": site.answers, "pool_s_total": round(site.pool_s, 4), "share_of": share_of,
            }
        return ProbeResult(readings, evidence)
