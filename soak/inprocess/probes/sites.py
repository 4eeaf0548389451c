"""What an allocation tracer reports: live bytes and blocks per allocation traceback ("site")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from soak.inprocess.probes.frames import Frame

MAX_FRAMES = 100
"""The deepest traceback a tracer records per site."""


class BadTracer(ValueError):
    """An unknown tracer name or a bad tracer setting; the message says what is allowed."""


def check_settings(frames: int, sample_interval: int | None = None) -> None:
    """Raise BadTracer unless ``frames`` and the sampled tracer's interval are usable."""
    if not 1 <= frames <= MAX_FRAMES:
        raise BadTracer(f"--frames must be between 1 and {MAX_FRAMES}")
    if sample_interval is not None and sample_interval < 1:
        raise BadTracer("--sample-interval must be at least 1 byte")


@dataclass(frozen=True)
class SiteSample:
    frames: tuple[Frame, ...]
    """Allocation frame first, then its callers, up to leaksoak's driver loop."""
    size: int
    """Live bytes allocated here (an estimate for a sampled tracer)."""
    count: int
    """Live blocks allocated here (an estimate for a sampled tracer)."""
    samples: int | None = None
    """How many sampled blocks the estimates stand on; None for an exact tracer."""


@dataclass(frozen=True)
class TraceResult:
    sites: list[SiteSample]
    traced_bytes: int
    """Live bytes of the workload's sites (estimated for a sampled tracer)."""
    tracer_overhead_bytes: int
    """The tracer's own memory."""
    weight: float
    """1.0: every allocation is traced, or for a sampled tracer the mean sampling interval in bytes."""
    pause_ms: float
    sample_interval: int | None = None
    """Mean bytes between two samples; None for an exact tracer."""


class Tracer(Protocol):
    """What the worker and the agent need from an allocation tracer."""

    name: str

    def start(self) -> None: ...

    def collect(self) -> TraceResult: ...

    def stop(self) -> None: ...
