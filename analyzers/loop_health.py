"""Async honesty: is the event loop blocked, does "async" code run in a thread pool? Pure.

Both are shares of time measured over the analysed window (after the warm-up), judged against a
threshold rather than tested for a trend: a loop blocked 40% of the time is a problem whether or
not it gets worse. A share must pass its threshold in each half of the window, so that one stall
(a long collection, a slow first call) is not called a blocked loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from soak.analyzers.growth import SeriesFinding
from soak.inprocess.probes.loop_lag import BLOCK_PREFIX
from soak.model.finding import Evidence, ProbeKey
from soak.model.thresholds import Thresholds

MIN_PERIODS = 4
"""Snapshot periods needed after the warm-up (two per half): a share of time is measured, not a
trend fitted, and a loop blocked throughout gives few snapshots (each waits for the loop)."""
SUSPECT = "suspect"
POOL_TOTALS = ("caller_s", "own_s")
"""The thread-pool probe's series that are not a call site's."""
"""Async findings are not leaks: they are reported, and fail a run, as suspects."""


@dataclass(frozen=True)
class ProbeData:
    """One async probe's series on the snapshot grid: ``(name, unit)`` → values per snapshot
    (what happened in the period that ends at that snapshot), and evidence by series name."""

    probe: str
    values: Mapping[tuple[str, str], np.ndarray]
    evidence: Mapping[str, Evidence]


def _halves(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    middle = len(window) // 2
    return window[:middle], window[middle:]


def _share(part: np.ndarray, whole: np.ndarray, index: np.ndarray) -> float:
    total = float(whole[index].sum())
    return float(part[index].sum()) / total if total > 0 else 0.0


def window_of(times: np.ndarray, thresholds: Thresholds) -> np.ndarray | None:
    """Snapshots after the warm-up (the growth analysis' warm-up), or None when too few to judge."""
    if len(times) == 0:
        return None
    start = times[0] + (times[-1] - times[0]) * thresholds.warmup_fraction
    window = np.flatnonzero(times >= start)
    # a period's values arrive with the snapshot that ends it: the first one in the window
    # covers time before the window, so it is left out
    window = window[1:]
    return window if len(window) >= MIN_PERIODS else None


def blocked_loop(times: np.ndarray, data: ProbeData, thresholds: Thresholds) -> list[SeriesFinding]:
    """Stacks that held the loop (a heartbeat later than its block threshold) for at least
    ``max_blocked_share`` of the time, in both halves of the window: one finding per blocking
    line, most blocked first. The loop's lag and its blocked time from every cause go with it."""
    window = window_of(times, thresholds)
    wall = data.values.get(("wall_s", "seconds"))
    if window is None or wall is None:
        return []
    lag = {name: data.values.get((name, "seconds")) for name in ("lag_p50", "lag_p99", "lag_max")}
    blocked = data.values.get(("blocked_s", "seconds"))
    loop = {
        "loop_share": _share(blocked, wall, window) if blocked is not None else None,
        "lag_p50_s": float(np.median(lag["lag_p50"][window])) if lag["lag_p50"] is not None else None,
        "lag_p99_s": float(np.median(lag["lag_p99"][window])) if lag["lag_p99"] is not None else None,
        "lag_max_s": float(np.max(lag["lag_max"][window])) if lag["lag_max"] is not None else None,
    }
    findings = []
    for (name, unit), seconds in data.values.items():
        if unit != "seconds" or not name.startswith(BLOCK_PREFIX):
            continue
        shares = [_share(seconds, wall, half) for half in _halves(window)]
        if min(shares) < thresholds.max_blocked_share:
            continue
        evidence = {**data.evidence.get(name, {}), **loop}
        evidence.update(
            measure="blocked_share", share=_share(seconds, wall, window), share_halves=shares,
            threshold_share=thresholds.max_blocked_share,
            window_s=[float(times[window[0]]), float(times[window[-1]])], warmup_until_s=float(times[window[0]]),
        )
        findings.append(_finding((data.probe, name, "seconds"), evidence))
    return sorted(findings, key=lambda f: -f.evidence["share"])


def hidden_pools(times: np.ndarray, data: ProbeData, thresholds: Thresholds) -> list[SeriesFinding]:
    """Call sites whose work ran in a thread pool for at least ``max_pool_share`` of the callers'
    time, in both halves of the window: an ``async`` API that is a pool in disguise."""
    window = window_of(times, thresholds)
    callers = data.values.get(("caller_s", "seconds"))
    if window is None or callers is None:
        return []
    findings = []
    for (name, unit), pool_s in data.values.items():
        if unit != "seconds" or name in POOL_TOTALS:
            continue
        shares = [_share(pool_s, callers, half) for half in _halves(window)]
        if min(shares) < thresholds.max_pool_share:
            continue
        submits = data.values.get((name, "count"))
        evidence = dict(data.evidence.get(name, {}))
        evidence.update(
            measure="pool_share", share=_share(pool_s, callers, window), share_halves=shares,
            threshold_share=thresholds.max_pool_share,
            window_s=[float(times[window[0]]), float(times[window[-1]])], warmup_until_s=float(times[window[0]]),
            submits_per_s=float(submits[window].sum() / max(1e-9, times[window[-1]] - times[window[0] - 1]))
            if submits is not None else None,
        )
        findings.append(_finding((data.probe, name, "seconds"), evidence))
    return sorted(findings, key=lambda f: -f.evidence["share"])


def _finding(series: tuple[str, str, str], evidence: Evidence) -> SeriesFinding:
    # A measured share against a threshold: no test statistic, so no p-value or confidence.
    probe, name, unit = series
    return SeriesFinding(ProbeKey("async", probe, name, unit), SUSPECT, 0.0, None, None, None,  # type: ignore[arg-type]
                         {**evidence, "series": name, "unit": unit})
