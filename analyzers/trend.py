"""Robust trend of one series: Theil–Sen slope with its interval, and an autocorrelation-robust test."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from soak.analyzers.mann_kendall import mann_kendall


@dataclass(frozen=True)
class Trend:
    slope: float
    """Theil–Sen slope, units per second."""
    slope_low: float
    slope_high: float
    """95% confidence interval of the slope."""
    p_value: float
    """One-sided Mann–Kendall test of 'increasing over time', corrected for autocorrelation;
    1.0 for a constant series."""
    correction: float = 1.0
    """How much the test's variance was inflated for autocorrelation (1 = none)."""


def fit_trend(times: np.ndarray, values: np.ndarray) -> Trend:
    """Theil–Sen slope and a corrected Mann–Kendall test on (times, values); needs at least 3 points.

    The variance of Kendall's S is inflated by the larger of Hamed and Rao's factor (from the
    significant autocorrelations of the detrended ranks) and the lag-1 effective-sample-size
    factor (1+φ)/(1−φ), φ being the bias-corrected lag-1 autocorrelation of the residuals. On
    short series Hamed–Rao's estimate of the autocorrelations is low; the lag-1 factor is the same
    one the detection bound T* in ``benchmarks/accuracy.py`` uses.
    """
    from scipy import stats  # imported here: scipy.stats costs ~1 s, which `soak report` never needs

    t = np.asarray(times, dtype=float)
    y = np.asarray(values, dtype=float)
    if np.ptp(y) == 0:
        return Trend(0.0, 0.0, 0.0, 1.0)
    slope, _, low, high = stats.theilslopes(y, t, alpha=0.95)
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    test = mann_kendall(y, slope * step)
    correction = max(test.correction, lag1_factor(y - slope * t))
    if correction > test.correction and test.variance > 0:
        variance = test.variance / test.correction * correction
        z = (test.s - math.copysign(1.0, test.s)) / math.sqrt(variance) if test.s else 0.0
        p_value = 0.5 * math.erfc(z / math.sqrt(2))
    else:
        p_value = test.p_value
    return Trend(float(slope), float(low), float(high), p_value, correction)


def lag1_factor(residuals: np.ndarray) -> float:
    """(1+φ)/(1−φ) for the bias-corrected lag-1 autocorrelation φ of ``residuals``, φ in [0, 0.95]."""
    r = np.asarray(residuals, dtype=float)
    n = len(r)
    r = r - r.mean()
    denominator = float(np.dot(r, r))
    if n < 4 or denominator == 0:
        return 1.0
    phi = float(np.dot(r[1:], r[:-1])) / denominator
    phi += (1 + 3 * phi) / n  # Kendall's first-order bias correction of the estimate
    phi = min(max(phi, 0.0), 0.95)
    return (1 + phi) / (1 - phi)


def drift_p_value(values: np.ndarray) -> float:
    """One-sided t-test that the mean step between consecutive values is positive.

    A leak accumulates: its series is a sum of per-interval allocations, so around a straight line
    its residuals wander like a random walk, which an autocorrelation correction of a level test
    (rightly, for a bounded series) treats as weak evidence. Its steps, though, are close to
    independent with a positive mean, which this tests directly. For a bounded (stationary)
    series the steps are negatively correlated, which makes this test conservative.
    """
    from scipy import stats

    steps = np.diff(np.asarray(values, dtype=float))
    n = len(steps)
    if n < 3:
        return 1.0
    sd = float(np.std(steps, ddof=1))
    mean = float(np.mean(steps))
    if sd == 0:
        return 0.0 if mean > 0 else 1.0
    return float(stats.t.sf(mean / (sd / math.sqrt(n)), df=n - 1))
