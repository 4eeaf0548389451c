"""The exact tracer: every allocation, through tracemalloc, grouped by traceback."""

from __future__ import annotations

import time
import tracemalloc

from soak.inprocess.probes.frames import Frame, FrameFilter
from soak.inprocess.probes.sites import SiteSample, TraceResult


class TracemallocTracer:
    """Exact tracing with tracemalloc, grouped by traceback of ``frames`` frames."""

    name = "exact"

    def __init__(self, frames: int = 10) -> None:
        self.frames = frames
        self._filter = FrameFilter()

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
            frames = self._filter.workload_frames(traceback)
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


def _raw_traces() -> list[tuple[int, int, tuple[Frame, ...], int]]:
    """(domain, size, traceback, total_nframe) per live block, allocation frame first.

    ``tracemalloc._get_traces`` is what ``take_snapshot`` itself calls (CPython 3.4 through 3.14);
    using it directly skips building a Snapshot object per call.
    """
    get_traces = getattr(tracemalloc, "_get_traces", None)
    if get_traces is not None:
        return get_traces()  # type: ignore[no-any-return]
    return [(t.domain, t.size, tuple((f.filename, f.lineno) for f in reversed(t.traceback)), 0)
            for t in tracemalloc.take_snapshot().traces]
