"""Which series grow without bound: per-series trends in their latest regime, FDR control, a verdict.

A series is a *leak* when, in its latest regime (after warm-up, after a cache filled, or since a
leak started), the floor of its values (the lower envelope, so a sawtooth buffer is judged by what
it falls back to) grows

- significantly across all series tested: an autocorrelation-corrected Mann–Kendall test, with
  the false discovery rate controlled by Benjamini–Hochberg;
- materially: bytes per hour above a floor and a share of the heap, and enough bytes in all
  (for a sampled series, more than its sampling noise);
- persistently: still growing in the most recent part of the run (a plain trend test there), and
  not stalled in the last few snapshots, so a cache that filled up and stopped is not a leak.

Weaker evidence (q between ``alpha`` and ``suspect_alpha``, a confidence interval that reaches
zero, or a slow-down too recent to judge) is *suspect*.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from soak.analyzers.changepoint import envelope_width, lower_envelope, regime_start
from soak.analyzers.mann_kendall import mann_kendall
from soak.analyzers.trend import Trend, drift_p_value, fit_trend
from soak.model.finding import Evidence
from soak.model.thresholds import Thresholds
from soak.model.verdicts import CLEAN, INCONCLUSIVE, LEAK, SUSPECT


@dataclass(frozen=True)
class Series:
    """Live bytes (and, where known, object counts) of one site, type or resource over time."""

    key: Hashable
    bytes: np.ndarray
    counts: np.ndarray | None = None
    samples: np.ndarray | None = None
    """Live sampled blocks behind each estimate, for a sampled tracer (None: exact values)."""


@dataclass(frozen=True)
class SeriesFinding:
    """What the analyzers say of one series that grows: its verdict, rates and test. Analysis
    (soak.judging.analysis) places it in the code: a soak.model.finding.Finding."""

    key: Hashable
    verdict: str
    growth_bytes_per_hour: float
    growth_count_per_hour: float | None
    p_value: float
    q_value: float
    evidence: Evidence = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        """1 − q: how sure we are this is not a false discovery among all series tested."""
        return 1.0 - self.q_value


@dataclass(frozen=True)
class Analysis:
    verdict: str
    findings: list[SeriesFinding]
    warmup_until_s: float
    points: int
    """Snapshots analysed after the warm-up."""
    tested: int
    """Series whose growth was tested (the rest were flat or too small to matter)."""
    needed_s: float | None = None
    """For an inconclusive verdict: the run length at which there would be enough points."""


def analyze(
    times: Sequence[float] | np.ndarray,
    series: Sequence[Series],
    thresholds: Thresholds = Thresholds(),
    heap_bytes: float | None = None,
    sample_interval: float | None = None,
    unit: str = "bytes",
) -> Analysis:
    """Test every series on the shared time grid ``times`` (seconds since the run started).

    All of ``series`` are in ``unit``, which sets what growth is material (see
    :meth:`Thresholds.materiality`); growth rates in findings are in that unit per hour.
    ``heap_bytes`` (the traced heap, or the process's memory) sets the share-of-heap floor.
    ``sample_interval`` is a sampled tracer's mean interval R in bytes: with it, a series that
    carries its live ``samples`` must grow by more than its sampling noise to be material.
    """
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
    material = thresholds.materiality(unit)
    floor_per_h = max(material.per_hour, material.heap_share_per_hour * (heap_bytes or 0))
    screen = max(floor_per_h * (tw[-1] - tw[0]) / 3600, material.total)
    shortest = max(1, len(tw) // thresholds.envelope_points)

    candidates = []
    for s in series:
        y = np.asarray(s.bytes, dtype=float)[window]
        if np.ptp(y) < screen:  # cheap: a series whose whole range is below the floor cannot pass it
            continue
        width = envelope_width(y, shortest, len(tw) // 4)
        counts = None if s.counts is None else np.asarray(s.counts, dtype=float)[window]
        samples = None if s.samples is None or not sample_interval else np.asarray(s.samples, dtype=float)[window]
        candidates.append(_Candidate.fit(s, tw, y, counts, samples, sample_interval, width, thresholds))
    if not candidates:
        return Analysis(CLEAN, [], warmup_until_s, len(window), 0)

    from scipy import stats  # imported here: see trend.fit_trend

    q_values = stats.false_discovery_control([c.p_value for c in candidates])
    findings = []
    for c, q in zip(candidates, q_values, strict=True):
        finding = c.judge(float(q), floor_per_h, material.total, thresholds)
        if finding is not None:
            findings.append(finding)
    findings.sort(key=lambda f: (f.verdict != LEAK, -f.growth_bytes_per_hour))
    verdict = findings[0].verdict if findings else CLEAN
    return Analysis(verdict, findings, warmup_until_s, len(window), len(candidates))


@dataclass(frozen=True)
class _Candidate:
    """One series' fit in its latest regime, before the false discovery rate is known."""

    series: Series
    times: np.ndarray
    envelope: np.ndarray
    start: int
    """Index (in the analysed window) where the latest regime begins."""
    pending_shift: int | None
    """A significant change of growth rate with too few snapshots after it to analyse alone."""
    trend: Trend
    width: int
    """Snapshots in the trailing minimum that made the envelope."""
    count_envelope: np.ndarray | None
    count_trend: Trend | None
    p_drift: float
    """The drift test on the floor's bytes."""
    p_value: float
    """Evidence of growth from all the tests (see :func:`_evidence_of_growth`)."""
    sampling_noise: float = 0.0
    """Bytes that sampling alone can add between the regime's first and last snapshots (one standard deviation)."""

    @classmethod
    def fit(cls, s: Series, t: np.ndarray, y: np.ndarray, counts: np.ndarray | None, samples: np.ndarray | None,
            sample_interval: float | None, width: int, thresholds: Thresholds) -> _Candidate:
        envelope = lower_envelope(y, width)
        start, pending = regime_start(envelope, thresholds.shift_alpha, thresholds.min_points)
        trend = fit_trend(t[start:], envelope[start:])
        p_drift = drift_p_value(envelope[start:])
        p_values = [trend.p_value, p_drift]
        count_envelope = count_trend = None
        if counts is not None:
            count_envelope = lower_envelope(counts, width)
            count_trend = fit_trend(t[start:], count_envelope[start:])
            p_values += [count_trend.p_value, drift_p_value(count_envelope[start:])]
        noise = 0.0 if samples is None else sampling_noise(samples[start], samples[-1], sample_interval or 0.0)
        return cls(s, t, envelope, start, pending, trend, width, count_envelope, count_trend,
                   p_drift, _evidence_of_growth(p_values), noise)

    def judge(self, q: float, floor_per_h: float, min_total: float, thresholds: Thresholds) -> SeriesFinding | None:
        t, e = self.times[self.start:], self.envelope[self.start:]
        trend = self.trend
        rate = trend.slope * 3600
        growth = trend.slope * (t[-1] - t[0])
        material = (rate >= floor_per_h and growth >= min_total
                    and growth >= thresholds.min_growth_sampling_z * self.sampling_noise)
        if q > thresholds.suspect_alpha or not material:
            return None
        n = len(t)
        n_recent = min(n, max(thresholds.min_recent_points, int(np.ceil(n * thresholds.recent_fraction))))
        late = fit_trend(t[-n_recent:], e[-n_recent:])
        recent_p = _still_growing(e[-n_recent:], None if self.count_envelope is None else self.count_envelope[self.start:][-n_recent:])
        if not (recent_p <= thresholds.recent_alpha and late.slope > 0):
            return None  # growth that stopped: a cache that filled, a warm-up
        early = fit_trend(t[:n_recent], e[:n_recent])
        stalled = _stalled(t, e, trend.slope, thresholds)
        slowing = stalled or (self.pending_shift is not None and _slowed(self.envelope, self.pending_shift))
        verdict = LEAK if q <= thresholds.alpha and trend.slope_low > 0 and not slowing else SUSPECT
        count_rate = None if self.count_trend is None else self.count_trend.slope * 3600
        evidence: Evidence = {
            "slope_bytes_per_s": trend.slope,
            "slope_interval": [trend.slope_low, trend.slope_high],
            "autocorrelation_correction": trend.correction,
            "early_slope_bytes_per_s": early.slope,
            "recent_slope_bytes_per_s": late.slope,
            "recent_p_value": recent_p,
            "p_level": trend.p_value,
            "p_drift": self.p_drift,
            "warmup_until_s": float(t[0]),
            "regime_shift": self.start > 0,
            "window_s": [float(t[0]), float(t[-1])],
            "points": int(n),
            "growth_bytes": float(e[-1] - e[0]),
            "envelope_points": self.width,
        }
        if self.sampling_noise:
            evidence["sampling_noise_bytes"] = self.sampling_noise
        if self.pending_shift is not None:
            evidence["pending_shift_at_s"] = float(self.times[self.pending_shift])
        if slowing:
            evidence["slowing"] = True
            evidence.setdefault("pending_shift_at_s", float(t[-thresholds.min_points]))
        return SeriesFinding(self.series.key, verdict, rate, count_rate, self.p_value, q, evidence)


def sampling_noise(first: float, last: float, interval: float) -> float:
    """Standard deviation, in bytes, of the change between two sampled estimates with ``first``
    and ``last`` live samples at mean interval ``interval`` when no block is shared between them.

    A small block is sampled with probability about s/R and then weighs about R, so an estimate
    of n live samples is R times a Poisson count, of variance n·R²; two estimates whose blocks
    turned over in between are independent. (Blocks larger than R are sampled almost surely and
    carry almost no noise; this overstates theirs, which only asks more of such a site's growth.)
    """
    return interval * float(np.sqrt(max(first, 0.0) + max(last, 0.0)))


def _evidence_of_growth(p_values: list[float]) -> float:
    """Evidence of growth from two tests on bytes, and the same two on live blocks where counted.

    The level test (Mann–Kendall, corrected for autocorrelation) is strong when a leak sits in
    stationary noise; the drift test (mean step) when the leak itself is noisy, its residuals
    wandering like a random walk. Live blocks are the steadier sign of many leaks: a dict that
    keeps every response gains one string per call while its bytes also jump at each resize.
    """
    return _bonferroni(p_values)


def _bonferroni(p_values: list[float]) -> float:
    """The smallest p-value times the number of tests: valid whatever their dependence."""
    return min(1.0, len(p_values) * min(p_values))


def _still_growing(values: np.ndarray, counts: np.ndarray | None) -> float:
    """p-value of 'the recent floor still grows', bytes or live blocks (Bonferroni).

    The plain Mann–Kendall test: its job is to reject growth that stopped (a cache that filled),
    not to establish that growth is real, which the corrected, FDR-controlled test already did.
    Corrected for autocorrelation, a dozen snapshots of a leak (a random walk around its line)
    would rarely pass it.
    """
    p_values = [mann_kendall(values, autocorrelation=False).p_value]
    if counts is not None:
        p_values.append(mann_kendall(counts, autocorrelation=False).p_value)
    return _bonferroni(p_values)


def _stalled(t: np.ndarray, values: np.ndarray, slope: float, thresholds: Thresholds) -> bool:
    """Whether growth has stopped lately, as far as one can tell yet.

    Two signs together: the last ``min_points`` snapshots grow, with 99% confidence, at less than
    ``slowdown_ratio`` of the regime's rate; and the floor has gone more than twice as long without
    a new high as ever before in the regime. The second keeps a staircase (a buffer or a table
    whose capacity grows in steps, each up to twice as long as the one before) from reading as
    stopped on every plateau.
    """
    n = thresholds.min_points
    if len(values) <= n or _tail_slope_high(t[-n:], values[-n:]) >= thresholds.slowdown_ratio * slope:
        return False
    steps = np.diff(values)
    rises = steps[steps > 0]
    margin = 0.5 * float(np.median(rises)) if len(rises) else 0.0  # a new high clears the noise
    highs = np.flatnonzero(values > np.maximum.accumulate(np.r_[-np.inf, values[:-1]]) + margin)
    if len(highs) == 0:
        return False
    current = len(values) - 1 - int(highs[-1])
    longest_before = int(np.max(np.diff(highs))) - 1 if len(highs) > 1 else 0
    return current >= 3 and current > 2 * longest_before


def _tail_slope_high(t: np.ndarray, values: np.ndarray) -> float:
    """Upper end of the 99% interval of the Theil–Sen slope over the last few snapshots."""
    from scipy import stats

    if len(t) < 3 or np.ptp(values) == 0:
        return 0.0
    return float(stats.theilslopes(values, t, alpha=0.99)[3])


def _slowed(values: np.ndarray, shift: int) -> bool:
    """Whether growth per snapshot after ``shift`` is below what it was before."""
    before, after = np.diff(values[:shift]), np.diff(values[shift - 1:])
    return len(before) > 0 and len(after) > 0 and float(np.median(after)) < float(np.median(before))


def _thin(index: np.ndarray, max_points: int) -> np.ndarray:
    if len(index) <= max_points:
        return index
    keep = np.unique(np.linspace(0, len(index) - 1, max_points).round().astype(int))
    thinned: np.ndarray = index[keep]
    return thinned
