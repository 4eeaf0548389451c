"""The allocation tracers by name: the one place that knows ``--tracer``'s values."""

from __future__ import annotations

import sys
from collections.abc import Callable

from soak.inprocess.probes.exact import TracemallocTracer
from soak.inprocess.probes.sampled import DEFAULT_SAMPLE_INTERVAL, SampledTracer, free_threaded, sampled_unavailable
from soak.inprocess.probes.sites import BadTracer, Tracer, check_settings

TRACERS = ("sampled", "exact", "off")
"""``sampled``: the C sampler (estimates, low cost); ``exact``: tracemalloc; ``off``: none."""
DEFAULT_TRACER = "sampled"
SITE_TRACERS = ("sampled", "exact")
"""The tracers that can tell which site allocated an object (soak.inprocess.probes.holders._allocation_frames):
under these a site finding's holders are searched; a type finding's under any tracer."""


__all__ = ["BadTracer", "DEFAULT_TRACER", "SITE_TRACERS", "TRACERS", "check_tracer", "make_tracer"]


def check_tracer(name: str, frames: int = 10, sample_interval: int | None = None) -> None:
    """Raise BadTracer unless the settings name a tracer that ``make_tracer`` can build."""
    if name not in TRACERS:
        raise BadTracer(f"--tracer must be one of {', '.join(TRACERS)}, not {name!r}")
    check_settings(frames, sample_interval)
    if name == "sampled" and free_threaded():
        # refused, not fallen back from: a build that cannot run it at all is the user's to choose for
        raise BadTracer(f"--tracer sampled (the default) cannot run on a free-threaded Python ({sys.version.split()[0]}, "
                        "built without the GIL, which the sampler relies on); pass --tracer exact")


def _warn(message: str) -> None:
    print(f"leaksoak: {message}", file=sys.stderr, flush=True)


def make_tracer(
    name: str, frames: int = 10, sample_interval: int | None = None, warn: Callable[[str], None] = _warn,
) -> Tracer | None:
    """The tracer of that name (None for ``off``); ``sampled`` falls back to ``exact``, with one
    warning, where the extension cannot load."""
    check_tracer(name, frames, sample_interval)
    if name == "off":
        return None
    if name == "sampled":
        reason = sampled_unavailable()
        if reason is None:
            return SampledTracer(frames, sample_interval or DEFAULT_SAMPLE_INTERVAL)
        warn(f"the sampled tracer is unavailable ({reason}); tracing exactly with tracemalloc instead")
    return TracemallocTracer(frames)
