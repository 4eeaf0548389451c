"""Event-loop health: how late the loop runs a heartbeat, and what blocked it while it was late.

A heartbeat callback is scheduled on the measured loop every ``heartbeat_s``; how late it runs is
the loop's scheduling lag. A watchdog thread checks the heartbeat and, once it is later than
``block_s``, reads the loop thread's Python stack (``sys._current_frames``) *while the block is
still going on*, so the finding names the blocking call rather than whatever ran after it.
leaksoak's own snapshot pauses are not the workload's blocks: the host brackets them with
:meth:`LoopLagProbe.pausing`, and their time is taken out of the lag.

Series per snapshot (kind ``async``, unit seconds): ``lag_p50``, ``lag_p99``, ``lag_max``,
``blocked_s`` (time the loop was late beyond ``block_s``), ``wall_s`` (the time they cover, less
leaksoak's pauses), ``own_s`` (the probe's own cost between snapshots, beside the pause that
``run_probes`` measures of its collection), and per blocking stack ``block <site>``: the blocked time the watchdog found
that stack on the loop thread. A call that blocks the loop blocks it at the same line again and
again; a loop starved of the CPU or the GIL by other threads is caught at a different line each
time, so it shows in ``blocked_s`` and the lag but is no one line's finding.
"""

from __future__ import annotations

import asyncio
import dis
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from soak.inprocess.probes.frames import DRIVER_FILES, FrameFilter
from soak.inprocess.probes.probe import FindingKind, ProbeResult, Reading

DEFAULT_HEARTBEAT_S = 0.01
"""Time between two heartbeats: lag is measured at this resolution."""
DEFAULT_BLOCK_S = 0.05
"""A heartbeat later than this is a block: its time counts as blocked and its stack is read
(asyncio's debug mode calls a callback slow from 0.1 s; a request's budget is often less)."""
MAX_STACK_FRAMES = 30
MAX_BLOCK_SITES = 5
"""Blocking stacks listed in ``blocked_s``'s evidence, most blocked time first."""
BLOCK_PREFIX = "block "
"""Series of one blocking stack: ``block rag.py:27 <- rag.py:53``."""
IDLE_FILES = ("selectors.py",)
"""A loop thread found here is waiting for I/O, not blocked: a late heartbeat then is the OS's
scheduling (or the GIL held elsewhere), and no blocking call is named."""

THREADING_FILE = threading.__file__
_RESUME = dis.opmap.get("RESUME", -1)


def just_started(frame: Any) -> bool:
    """Whether ``frame`` was read on entering its function or resuming its coroutine.

    A block that holds the GIL (a C extension that never releases it: pydantic-core validating a
    large payload) keeps the watchdog from reading the loop thread until it returns; the thread
    then gives the GIL up at its next check, which may be after it has left the blocking call
    (leaksoak's driver entering ``Event.is_set``, a coroutine resuming at its ``await``). A
    function that has only just started, or a coroutine just resumed, did not hold the loop:
    such a read names no line, and the block counts in the loop's blocked time only."""
    lasti = frame.f_lasti
    if lasti < 0:
        return True
    try:
        return frame.f_code.co_code[lasti] == _RESUME or (_RESUME < 0 and lasti == 0)  # 3.10: no RESUME
    except IndexError:
        return False


StackFrame = tuple[str, int, str]
"""(file, line, function) of one frame, innermost first."""


@dataclass
class BlockSite:
    """Blocks that had the same stack on the loop thread."""

    frames: tuple[StackFrame, ...]
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    @property
    def label(self) -> str:
        return BLOCK_PREFIX + site_label(self.frames)

    def as_evidence(self) -> dict[str, Any]:
        return {"frames": [{"file": f, "line": n, "function": fn} for f, n, fn in self.frames],
                "count": self.count, "total_s": round(self.total_s, 4), "max_s": round(self.max_s, 4)}


@dataclass
class _Period:
    """What the heartbeat saw since the last snapshot."""

    lags: list[float] = field(default_factory=list)
    blocked_s: float = 0.0
    by_site: dict[tuple[StackFrame, ...], float] = field(default_factory=dict)
    own_s: float = 0.0
    """The probe's own time: in its heartbeat on the loop and its watchdog's checks."""
    started: float = field(default_factory=time.monotonic)
    paused_mark: float = 0.0
    """leaksoak's pause time up to ``started``: the period's own pauses are not its wall time."""


def site_label(frames: tuple[StackFrame, ...]) -> str:
    """``client.py:120 <- rag.py:44``: a stack's first line and the one that called it."""
    return " <- ".join(f"{os.path.basename(f)}:{n}" for f, n, _ in frames[:2])


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, by linear interpolation (numpy's default)."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


_FRAME_CACHE: dict[tuple[int, int], tuple[Any, StackFrame]] = {}
"""(id of code, instruction offset) → (code, (file, line, function)): a frame's line costs a scan
of its code's line table (``f_lineno``), which a submission made thousands of times a second
cannot pay each time. Keyed by id, as hashing a code object hashes its bytecode and constants;
the code kept beside it tells a reused id from the same code."""
_FRAME_CACHE_MAX = 50_000


def read_stack(frame: Any, limit: int = MAX_STACK_FRAMES) -> tuple[StackFrame, ...]:
    """(file, line, function) of ``frame`` and its callers, innermost first, up to the frame
    where leaksoak's driver called the workload (soak.inprocess.probes.frames) or ``limit`` frames."""
    frames: list[StackFrame] = []
    while frame is not None and len(frames) < limit:
        entry = frame_entry(frame)
        frames.append(entry)
        if entry[0] in DRIVER_FILES:
            break
        frame = frame.f_back
    return tuple(frames)


def frame_entry(frame: Any) -> StackFrame:
    """(file, line, function) of one frame, cached by its code and instruction."""
    code = frame.f_code
    key = (id(code), frame.f_lasti)
    cached = _FRAME_CACHE.get(key)
    if cached is not None and cached[0] is code:
        return cached[1]
    if len(_FRAME_CACHE) >= _FRAME_CACHE_MAX:
        _FRAME_CACHE.clear()
    entry = (code.co_filename, frame.f_lineno or 0, getattr(code, "co_qualname", code.co_name))
    _FRAME_CACHE[key] = (code, entry)
    return entry


class LoopLagProbe:
    """Scheduling lag of one event loop, and the stacks that blocked it."""

    name = "event_loop"
    kind: FindingKind = "async"

    def __init__(self, block_s: float = DEFAULT_BLOCK_S, heartbeat_s: float = DEFAULT_HEARTBEAT_S) -> None:
        self.block_s = block_s
        self.heartbeat_s = heartbeat_s
        self._filter = FrameFilter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._period = _Period()
        self._due = 0.0
        self._paused_total = 0.0
        self._paused_at_due = 0.0
        self._pause_started: float | None = None
        self._pause_ended = 0.0
        self._pending: tuple[float, tuple[StackFrame, ...]] | None = None
        """The block going on: the heartbeat it holds back, and the stack read during it."""
        self._idle_due = -1.0
        """A heartbeat that was late while the loop thread sat in its selector: not a block."""
        self._credited: tuple[float, float] = (-1.0, 0.0)
        """(due, seconds): the blocked time of a heartbeat still late that a snapshot has already
        counted in the period it ended, so that the heartbeat, when it runs, counts only the rest."""
        self._sites: dict[tuple[StackFrame, ...], BlockSite] = {}
        self._lead = 0.0
        """How long before a deadline the watchdog wakes (twice the switch interval)."""
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._lock = threading.Lock()

    # The loop side -------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the heartbeat on ``loop`` and the watchdog; call from the loop's own thread."""
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._lead = min(self.block_s / 2, 2 * sys.getswitchinterval())
        self._period = _Period(paused_mark=self._paused_total)
        self._stop.clear()
        self._schedule(loop.time())
        self._watchdog = threading.Thread(target=self._watch, name="soak-loop-watchdog", daemon=True)
        self._watchdog.start()

    def detach(self) -> None:
        """Stop the heartbeat and the watchdog. From another thread than the loop's, the next
        heartbeat sees the stop and does not come back (a handle is not cancelled across threads)."""
        self._stop.set()
        if self._handle is not None and threading.get_ident() == self._loop_thread:
            self._handle.cancel()
        self._handle = None
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=1.0)
        self._watchdog = None
        self._loop = None

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self.heartbeat_s
        self._paused_at_due = self._paused_total
        self._handle = self._loop.call_at(self._due, self._beat)

    def _beat(self) -> None:
        started = time.perf_counter()
        try:
            loop = self._loop
            if loop is None or self._stop.is_set():
                return
            now = loop.time()
            # leaksoak's own pauses since this beat was scheduled are not the loop's lag
            lag = max(0.0, now - self._due - (self._paused_total - self._paused_at_due))
            with self._lock:
                period = self._period
                period.lags.append(lag)
                rest = max(0.0, lag - self._credited_so_far())
                if lag > self.block_s and self._idle_due != self._due:
                    period.blocked_s += rest
                pending, self._pending = self._pending, None
                if pending is not None and lag > self.block_s and pending[0] == self._due:
                    self._record_block(pending[1], lag)
                    period.by_site[pending[1]] = period.by_site.get(pending[1], 0.0) + rest
            self._schedule(now)
        except Exception:  # noqa: BLE001 - a probe never raises into the workload's loop
            self._handle = None
        self._period.own_s += time.perf_counter() - started

    def _record_block(self, frames: tuple[StackFrame, ...], lag: float) -> None:
        site = self._sites.get(frames)
        if site is None:
            site = self._sites[frames] = BlockSite(frames)
        site.count += 1
        site.total_s += lag
        site.max_s = max(site.max_s, lag)

    # The watchdog ---------------------------------------------------------------------------

    def _watch(self) -> None:
        # Wakes when the heartbeat would be a block if it has not run by then, not on a fixed
        # tick: each wake-up takes the GIL from the loop's thread, so fewer is cheaper.
        timeout = self.block_s
        while not self._stop.wait(timeout):
            started = time.perf_counter()
            try:
                timeout = self._check()
            except Exception:  # noqa: BLE001 - the watchdog must outlive any surprise
                timeout = self.block_s
            self._period.own_s += time.perf_counter() - started

    def _check(self) -> float:
        """Read the loop thread's stack if the heartbeat is late beyond ``block_s``; the time
        until the next check."""
        due, thread, loop = self._due, self._loop_thread, self._loop
        if self._pause_started is not None or thread is None or loop is None or not loop.is_running():
            return self.block_s  # a loop that has stopped is not blocked; its thread does something else now
        deadline = max(due, self._pause_ended) + self.block_s
        now = time.monotonic()
        if now < deadline:
            # wake once a little before the deadline: a call that holds the GIL keeps the watchdog
            # waiting for it, and a waiter asks for the GIL only after the switch interval; asked
            # for before the deadline, the GIL comes back the moment the call returns, while the
            # loop thread is still at the line of that call (see just_started)
            early = deadline - self._lead
            return max(0.001, early - now if now < early else deadline - now)
        if self._pending is not None and self._pending[0] == due:
            return self.block_s  # this block's stack is read already
        frame = sys._current_frames().get(thread)
        if frame is None:
            return self.block_s
        if frame.f_code.co_filename.endswith(IDLE_FILES):
            self._idle_due = due
            return self.block_s
        stack = self.blocking_stack(read_stack(frame)) if not just_started(frame) else ()
        if stack:
            with self._lock:
                if self._due == due:
                    self._pending = (due, stack)
                    # the loop sat in its selector at an earlier check of this heartbeat, then
                    # ran a blocking call: the heartbeat is late because of the block
                    if self._idle_due == due:
                        self._idle_due = -1.0
        return self.block_s

    def blocking_stack(self, stack: tuple[StackFrame, ...]) -> tuple[StackFrame, ...]:
        """The workload's part of a stack read on the loop thread (innermost first), from its
        first frame outside ``threading.py`` (a ``threading`` wait is placed at its caller); ()
        when the loop was idle in its selector or running leaksoak's own code (see
        soak.inprocess.probes.frames)."""
        if not stack or stack[0][0].endswith(IDLE_FILES):
            return ()
        first = 0
        while first < len(stack) and stack[first][0] == THREADING_FILE:
            first += 1
        stack = stack[first:]
        kept = self._filter.workload_frames(tuple((f, n) for f, n, _ in stack))
        return stack[: len(kept)]

    # The host side ---------------------------------------------------------------------------

    @contextmanager
    def pausing(self) -> Iterator[None]:
        """Bracket leaksoak's own pause (a snapshot): its time is not counted as lag."""
        started = time.monotonic()
        self._pause_started = started
        try:
            yield
        finally:
            ended = time.monotonic()
            self._paused_total += ended - started
            self._pause_ended = ended
            self._pause_started = None

    def _credited_so_far(self) -> float:
        """The blocked time of the heartbeat due now that snapshots have counted already."""
        due, seconds = self._credited
        return seconds if due == self._due else 0.0

    def _credit_late_heartbeat(self, period: _Period, paused: float) -> None:
        """Count in the period that ends now the blocked time so far of a heartbeat still late
        (under the lock). A block that a snapshot interrupts -- the worker's snapshot runs on the
        loop, after the blocking call returns and before the late heartbeat -- belongs to the period
        it happened in; counted when the heartbeat runs, it would fall in a period too short to
        hold it, and its line's share and the loop's blocked share would disagree."""
        loop = self._loop
        if loop is None or self._handle is None:
            return
        late = loop.time() - self._due - (paused - self._paused_at_due)
        if late <= self.block_s or self._idle_due == self._due:
            return
        part = late - self._credited_so_far()
        if part <= 0:
            return
        period.blocked_s += part
        pending = self._pending
        if pending is not None and pending[0] == self._due:
            period.by_site[pending[1]] = period.by_site.get(pending[1], 0.0) + part
            self._sites.setdefault(pending[1], BlockSite(pending[1]))
        self._credited = (self._due, late)

    def collect(self) -> ProbeResult:
        if self._loop is None:
            return ProbeResult([])
        now = time.monotonic()
        paused = self._paused_total + (now - self._pause_started if self._pause_started is not None else 0.0)
        with self._lock:
            period, self._period = self._period, _Period(started=now, paused_mark=paused)
            self._credit_late_heartbeat(period, paused)
            sites = sorted(self._sites.values(), key=lambda s: -s.total_s)[:MAX_BLOCK_SITES]
            blocking = [(self._sites[frames], seconds) for frames, seconds in period.by_site.items()]
        wall = max(0.0, now - period.started - (paused - period.paused_mark))
        lags = sorted(period.lags or [0.0])
        readings = [
            Reading("lag_p50", "seconds", percentile(lags, 0.50)),
            Reading("lag_p99", "seconds", percentile(lags, 0.99)),
            Reading("lag_max", "seconds", lags[-1]),
            Reading("blocked_s", "seconds", min(period.blocked_s, wall)),
            Reading("wall_s", "seconds", wall),
            Reading("own_s", "seconds", period.own_s),
        ]
        evidence = {"blocked_s": {"block_s": self.block_s, "heartbeat_s": self.heartbeat_s,
                                  "blocks": [site.as_evidence() for site in sites]}}
        for site, seconds in blocking:
            readings.append(Reading(site.label, "seconds", seconds))
            evidence[site.label] = {**site.as_evidence(), "block_s": self.block_s, "heartbeat_s": self.heartbeat_s}
        return ProbeResult(readings, evidence)
