"""How long the snapshots paused the measured process: the run's share of wall time, the
spread per snapshot, and each probe's part (see soak.probes.budget for what rations them).

Read from the stored snapshots (``pause_ms``, the workload's pause, and ``probe_ms``, each
probe's); the supervisor's readings from outside (``process``) pause nothing and are left out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from soak.storage.queries import probe_pauses
from soak.storage.schema import OUTSIDE_PROBE


@dataclass(frozen=True)
class ProbePauses:
    probe: str
    runs: int
    """Snapshots in which it ran (rationed probes skip some)."""
    median_ms: float
    max_ms: float
    total_ms: float


@dataclass(frozen=True)
class PauseSummary:
    share: float
    """Total pause over the run's wall time."""
    snapshots: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    probes: list[ProbePauses]
    """Costliest first."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pause_summary(snapshots: list[dict[str, Any]], wall_s: float | None) -> PauseSummary | None:
    """The pauses of a run's snapshots over ``wall_s`` seconds; None when none were recorded."""
    pauses = np.array([row["pause_ms"] for row in snapshots if row.get("pause_ms") is not None], dtype=float)
    if len(pauses) == 0 or not wall_s or wall_s <= 0:
        return None
    by_probe: dict[str, list[float]] = {}
    for row in snapshots:
        for probe, ms in probe_pauses(row).items():
            if probe != OUTSIDE_PROBE and ms is not None:
                by_probe.setdefault(probe, []).append(float(ms))
    probes = [ProbePauses(probe, len(ms), round(float(np.median(ms)), 3), round(max(ms), 3), round(sum(ms), 3))
              for probe, ms in by_probe.items()]
    probes.sort(key=lambda p: -p.total_ms)
    return PauseSummary(
        share=float(pauses.sum() / 1000 / wall_s), snapshots=len(pauses),
        p50_ms=round(float(np.percentile(pauses, 50)), 3), p99_ms=round(float(np.percentile(pauses, 99)), 3),
        max_ms=round(float(pauses.max()), 3), probes=probes,
    )


def pause_note(summary: PauseSummary | None, probes: int = 4) -> str | None:
    """One line for every report format: ``snapshot pauses 1.98% of wall time (p50 23 ms, ...)``."""
    if summary is None:
        return None
    costliest = ", ".join(f"{p.probe} {_ms(p.median_ms)} x{p.runs}" for p in summary.probes[:probes])
    return (f"snapshot pauses {summary.share:.2%} of wall time (p50 {_ms(summary.p50_ms)}, p99 {_ms(summary.p99_ms)},"
            f" max {_ms(summary.max_ms)})" + (f"; by probe, median x snapshots: {costliest}" if costliest else ""))


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
