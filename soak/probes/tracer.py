"""Allocation tracers: live bytes and blocks per allocation traceback ("site").

A tracer is swappable (``--tracer``); today there is the exact tracer on top of tracemalloc.
Each result carries a sampling ``weight`` (1.0 for an exact tracer) so that a sampled tracer
can report estimates through the same message.
"""

from __future__ import annotations

import importlib.util
import os
import time
import tracemalloc
from dataclasses import dataclass
from typing import Protocol

Frame = tuple[str, int]
"""(file, line) of one frame; function names are resolved from source by the supervisor."""


def _module_file(name: str) -> str:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    return os.path.abspath(spec.origin)


# leaksoak's machinery in the worker (control thread, wire format, probes): a trace with any
# frame here is leaksoak's own memory, not the workload's, and is dropped whole.
_MACHINERY = frozenset((_module_file("soak.control"), _module_file("soak.protocol")))
_PROBES_DIR = os.path.dirname(os.path.abspath(__file__))
# The path that calls the workload: frames from here outward are cut from every traceback.
DRIVER_FILES = frozenset(
    _module_file(name) for name in ("soak.worker", "soak.targets", "soak.workloads.adapters", "soak.agent", "runpy")
)
# Allocation frames that are the interpreter's bookkeeping, not the workload's.
_NOT_WORKLOAD_ALLOCATORS = frozenset(
    (tracemalloc.__file__, "<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>", "<unknown>")
)


@dataclass(frozen=True)
class SiteSample:
    frames: tuple[Frame, ...]
    """Allocation frame first, then its callers, up to leaksoak's driver loop."""
    size: int
    count: int


@dataclass(frozen=True)
class TraceResult:
    sites: list[SiteSample]
    traced_bytes: int
    tracer_overhead_bytes: int
    weight: float
    pause_ms: float


class Tracer(Protocol):
    """What the worker needs from an allocation tracer."""

    name: str

    def start(self) -> None: ...

    def collect(self) -> TraceResult: ...

    def stop(self) -> None: ...


class TracemallocTracer:
    """Exact tracing with tracemalloc, grouped by traceback of ``frames`` frames."""

    name = "exact"

    def __init__(self, frames: int = 10) -> None:
        self.frames = frames
        self._file_kind: dict[str, str] = {}

    def start(self) -> None:
        tracemalloc.start(self.frames)

    def stop(self) -> None:
        tracemalloc.stop()

    def collect(self) -> TraceResult:
        started = time.perf_counter()
        raw = _raw_traces()
        # While we group, tracemalloc traces our own allocations too, at several microseconds
        # each; so the loop allocates nothing per trace (it appends existing size objects).
        groups: dict[tuple[Frame, ...], list[int]] = {}
        for _domain, size, traceback, _total_nframe in raw:
            sizes = groups.get(traceback)
            if sizes is None:
                groups[traceback] = sizes = []
            sizes.append(size)
        del raw
        merged: dict[tuple[Frame, ...], list[int]] = {}
        traced = 0
        for traceback, sizes in groups.items():
            frames = self._workload_frames(traceback)
            if not frames:
                continue
            size = sum(sizes)
            slot = merged.setdefault(frames, [0, 0])
            slot[0] += size
            slot[1] += len(sizes)
            traced += size
        sites = [SiteSample(frames, size, count) for frames, (size, count) in merged.items()]
        pause_ms = (time.perf_counter() - started) * 1000
        return TraceResult(sites, traced, tracemalloc.get_tracemalloc_memory(), 1.0, pause_ms)

    def _kind(self, filename: str) -> str:
        kind = self._file_kind.get(filename)
        if kind is None:
            if filename in DRIVER_FILES:
                kind = "driver"
            elif filename in _MACHINERY or os.path.dirname(filename) == _PROBES_DIR:
                kind = "machinery"
            else:
                kind = "workload"
            self._file_kind[filename] = kind
        return kind

    def _workload_frames(self, traceback: tuple[Frame, ...]) -> tuple[Frame, ...]:
        """The workload's part of a raw traceback (allocation frame first); () for leaksoak's own memory."""
        frames: list[Frame] = []
        for frame in traceback:
            kind = self._kind(frame[0])
            if kind == "driver":
                break
            if kind == "machinery":
                return ()
            frames.append(frame)
        if not frames or frames[0][0] in _NOT_WORKLOAD_ALLOCATORS:
            return ()
        return tuple(frames)


def _raw_traces() -> list[tuple[int, int, tuple[Frame, ...], int]]:
    """(domain, size, traceback, total_nframe) per live block, allocation frame first.

    ``tracemalloc._get_traces`` is what ``take_snapshot`` itself calls (CPython 3.4 through 3.14);
    using it directly skips building a Snapshot object per call.
    """
    get_traces = getattr(tracemalloc, "_get_traces", None)
    if get_traces is not None:
        return get_traces()
    return [(t.domain, t.size, tuple((f.filename, f.lineno) for f in reversed(t.traceback)), 0)
            for t in tracemalloc.take_snapshot().traces]


def make_tracer(name: str, frames: int) -> Tracer | None:
    if name == "exact":
        return TracemallocTracer(frames)
    if name == "off":
        return None
    raise ValueError(f"unknown tracer {name!r}")
