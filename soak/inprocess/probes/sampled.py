"""The sampled tracer: Poisson sampling over allocated bytes, in C (``soak.inprocess.probes._sampler``).

Every allocation in the MEM and OBJ domains passes a hook that subtracts its size from a
countdown; only when the countdown runs out (on average every ``interval`` bytes) is the Python
stack captured and the block remembered by pointer. Live bytes and blocks per site are
Horvitz-Thompson estimates: unbiased, with a relative error of about sqrt(interval / bytes) for
a site of small blocks (12% at 1 MiB with the default 16 KiB).
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

from soak.inprocess.probes.frames import Frame, FrameFilter
from soak.inprocess.probes.sites import SiteSample, TraceResult, check_settings

DEFAULT_SAMPLE_INTERVAL = 16 * 1024
"""Mean bytes between two samples (docs/how-it-works/sampled-tracer.md says why this value)."""

_module: ModuleType | None = None
_unavailable: str | None = None


def _load() -> ModuleType | None:
    global _module, _unavailable
    if _module is None and _unavailable is None:
        try:
            from soak.inprocess.probes import _sampler
        except ImportError as exc:
            _unavailable = str(exc) or "the extension soak.inprocess.probes._sampler is not built"
        else:
            _module = _sampler
    return _module


def sampled_unavailable() -> str | None:
    """None when the sampled tracer can run here, else why not (one line)."""
    _load()
    return _unavailable


def free_threaded() -> bool:
    """Whether this interpreter is a free-threaded build (3.13t, ``Py_GIL_DISABLED``): the
    sampler's hooks, its tables and its reading of object headers rely on the GIL and the
    default build's object layout."""
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def running_sampler() -> Any | None:
    """The extension's module while the sampled tracer runs in this process, else None."""
    module = _load()
    return module if module is not None and module.is_tracing() else None


class SampledTracer:
    """Sampled tracing: estimated live bytes and blocks per traceback of up to ``frames`` frames."""

    name = "sampled"

    def __init__(self, frames: int = 10, interval: int = DEFAULT_SAMPLE_INTERVAL) -> None:
        check_settings(frames, interval)
        module = _load()
        if module is None:
            raise RuntimeError(f"the sampled tracer is unavailable: {_unavailable}")
        self._sampler: Any = module
        self.frames = frames
        self.interval = interval
        self._filter = FrameFilter()

    def start(self) -> None:
        self._sampler.start(interval=self.interval, frames=self.frames)

    def stop(self) -> None:
        self._sampler.stop()

    def collect(self) -> TraceResult:
        started = time.perf_counter()
        raw, stats = self._sampler.collect()
        merged: dict[tuple[Frame, ...], list[float]] = {}
        for traceback, size, count, samples in raw:
            frames = self._filter.workload_frames(traceback)
            if not frames:
                continue
            slot = merged.get(frames)
            if slot is None:
                merged[frames] = [size, count, samples]
            else:
                slot[0] += size
                slot[1] += count
                slot[2] += samples
        sites = [SiteSample(frames, round(size), round(count), int(samples))
                 for frames, (size, count, samples) in merged.items()]
        traced = sum(site.size for site in sites)
        pause_ms = (time.perf_counter() - started) * 1000
        return TraceResult(sites, traced, int(stats["memory_bytes"]), float(self.interval), pause_ms,
                           sample_interval=self.interval)
