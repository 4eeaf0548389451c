"""Which series grow without bound: per-series trends after warm-up, FDR control, a run verdict.

A series is a *leak* when, after the warm-up is set aside, its growth is statistically
significant across all series tested (Benjamini–Hochberg), material (bytes per hour above a
floor), and persistent: still significant in the most recent part of the run, so that a cache
which filled up and stopped growing is not called a leak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

import numpy as np

from soak.analyzers.trend import Trend, fit_trend

LEAK, SUSPECT, CLEAN, INCONCLUSIVE = "leak", "suspect", "clean", "inconclusive"


@dataclass(frozen=True)
class Series:
    """Live bytes (and, where known, object counts) of one site, type or resource over time."""

    key: Hashable
    bytes: np.ndarray
    counts: np.ndarray | None = None


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.01
    """False discovery rate at which growth counts as a leak."""
    suspect_alpha: float = 0.05
    """Weaker evidence that is reported as suspect."""
    recent_alpha: float = 0.05
    """Significance the recent window must show on its own for growth to count as persistent."""
    min_points: int = 8
    """Snapshots needed after warm-up before anything is said."""
    warmup_fraction: float = 0.2
    """Leading share of the run set aside as warm-up."""
    recent_fraction: float = 0.4
    """Trailing share of the analysed window that must still grow..."""
    min_recent_points: int = 6
    """...and never fewer snapshots than this, so that the recent trend test has power."""
    min_growth_bytes_per_hour: float = 1024 * 1024
    """Growth slower than this is not material, however significant."""
    min_growth_bytes: float = 64 * 1024
    """Nor is growth of fewer bytes than this across the analysed window: CPython's free lists
    and caches fill up by a few KiB early in a run, which looks like a trend in a short one."""
    max_points: int = 400
    """Longer series are thinned evenly before fitting (Theil–Sen is quadratic)."""


@dataclass(frozen=True)
class Finding:
    key: Hashable
    verdict: str
    growth_bytes_per_hour: float
    growth_count_per_hour: float | None
    p_value: float
    q_value: float
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        """1 − q: how sure we are this is not a false discovery among all series tested."""
        return 1.0 - self.q_value


@dataclass(frozen=True)
class Analysis:
    verdict: str
    findings: list[Finding]
    warmup_until_s: float
    points: int
    """Snapshots analysed after the warm-up."""
    tested: int
    """Series whose growth was tested (the rest were flat or too small to matter)."""
    needed_s: float | None = None
    """For an inconclusive verdict: the run length at which there would be enough points."""


def analyze(times: Sequence[float] | np.ndarray, series: Sequence[Series], thresholds: Thresholds = Thresholds()) -> Analysis:
    """Test every series on the shared time grid ``times`` (seconds since the run started)."""
    t = np.asarray(times, dtype=float)
    if len(t) == 0:
        return Analysis(INCONCLUSIVE, [], 0.0, 0, 0, needed_s=None)
    warmup_until_s = float(t[0] + (t[-1] - t[0]) * thresholds.warmup_fraction)
    window = np.flatnonzero(t >= warmup_until_s)
    if len(window) < thresholds.min_points:
        interval = float(np.median(np.diff(t))) if len(t) > 1 else None
        needed = interval * thresholds.min_points / (1 - thresholds.warmup_fraction) if interval else None
        return Analysis(INCONCLUSIVE, [], warmup_until_s, len(window), 0, needed_s=needed)
    window = _thin(window, thresholds.max_points)
    tw = t[window]
    span_h = (tw[-1] - tw[0]) / 3600
    n_recent = min(len(tw), max(thresholds.min_recent_points, int(np.ceil(len(tw) * thresholds.recent_fraction))))
    recent = np.arange(len(tw)) >= len(tw) - n_recent

    candidates: list[tuple[Series, Trend, np.ndarray]] = []
    for s in series:
        y = np.asarray(s.bytes, dtype=float)[window]
        # Cheap screen: a series whose whole range is below the material floor cannot pass it.
        if np.ptp(y) < max(thresholds.min_growth_bytes_per_hour * span_h, thresholds.min_growth_bytes):
            continue
        candidates.append((s, fit_trend(tw, y), y))
    if not candidates:
        return Analysis(CLEAN, [], warmup_until_s, len(window), 0)

    from scipy import stats  # imported here: see trend.fit_trend

    q_values = stats.false_discovery_control([trend.p_value for _, trend, _ in candidates])
    findings = []
    for (s, trend, y), q in zip(candidates, q_values):
        rate = trend.slope * 3600
        material = rate >= thresholds.min_growth_bytes_per_hour and trend.slope * span_h * 3600 >= thresholds.min_growth_bytes
        if q > thresholds.suspect_alpha or not material:
            continue
        late = fit_trend(tw[recent], y[recent])
        persistent = late.p_value <= thresholds.recent_alpha and late.slope > 0
        if not persistent:
            continue
        verdict = LEAK if q <= thresholds.alpha and trend.slope_low > 0 else SUSPECT
        count_rate = None
        if s.counts is not None:
            count_rate = fit_trend(tw, np.asarray(s.counts, dtype=float)[window]).slope * 3600
        findings.append(
            Finding(
                key=s.key,
                verdict=verdict,
                growth_bytes_per_hour=rate,
                growth_count_per_hour=count_rate,
                p_value=trend.p_value,
                q_value=float(q),
                evidence={
                    "slope_bytes_per_s": trend.slope,
                    "slope_interval": [trend.slope_low, trend.slope_high],
                    "recent_slope_bytes_per_s": late.slope,
                    "recent_p_value": late.p_value,
                    "warmup_until_s": warmup_until_s,
                    "window_s": [float(tw[0]), float(tw[-1])],
                    "points": int(len(tw)),
                    "growth_bytes": float(y[-1] - y[0]),
                },
            )
        )
    findings.sort(key=lambda f: (f.verdict != LEAK, -f.growth_bytes_per_hour))
    verdict = findings[0].verdict if findings else CLEAN
    return Analysis(verdict, findings, warmup_until_s, len(window), len(candidates))


def _thin(index: np.ndarray, max_points: int) -> np.ndarray:
    if len(index) <= max_points:
        return index
    keep = np.unique(np.linspace(0, len(index) - 1, max_points).round().astype(int))
    return index[keep]
