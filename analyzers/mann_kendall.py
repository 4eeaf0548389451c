"""The Mann–Kendall trend test with Hamed and Rao's correction for autocorrelated series.

Heap series are autocorrelated: a value that is high now is high a second later, so the plain
test (which assumes independent points) finds "trends" in a random walk. Hamed & Rao (1998,
J. Hydrology 204) inflate the variance of the statistic S by n/n*, computed from the significant
autocorrelations of the ranks of the detrended series. Here the factor is never below 1, so a
negatively correlated series (a sawtooth's residuals) is not made *more* significant than the
plain test would say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MannKendall:
    s: float
    """Sum of the signs of all later-minus-earlier differences."""
    variance: float
    """Variance of S under no trend, ties and autocorrelation accounted for."""
    correction: float
    """n/n*: how much autocorrelation inflated the variance (1 = none found)."""
    z: float
    p_value: float
    """One-sided: the probability of an S this large under no upward trend."""


def mann_kendall(values: np.ndarray, slope_per_point: float = 0.0, autocorrelation: bool = True) -> MannKendall:
    """Test ``values`` (in time order, evenly spaced) for an upward trend.

    ``slope_per_point`` (Theil–Sen, per index step) detrends the series before its rank
    autocorrelations are estimated, as Hamed and Rao prescribe.
    """
    y = np.asarray(values, dtype=float)
    n = len(y)
    if n < 3 or np.ptp(y) == 0:
        return MannKendall(0.0, 0.0, 1.0, 0.0, 1.0)
    signs = np.sign(y[None, :] - y[:, None])
    s = float(np.triu(signs, 1).sum())
    _, ties = np.unique(y, return_counts=True)
    variance = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18
    correction = _hamed_rao(y - slope_per_point * np.arange(n)) if autocorrelation else 1.0
    variance *= correction
    if variance <= 0:
        return MannKendall(s, 0.0, correction, 0.0, 1.0)
    z = (s - math.copysign(1.0, s)) / math.sqrt(variance) if s != 0 else 0.0
    return MannKendall(s, variance, correction, z, 0.5 * math.erfc(z / math.sqrt(2)))


def _hamed_rao(residuals: np.ndarray) -> float:
    n = len(residuals)
    if n < 4:
        return 1.0
    ranks = _ranks(residuals)
    ranks -= ranks.mean()
    denominator = float(np.dot(ranks, ranks))
    if denominator == 0:
        return 1.0
    full = np.correlate(ranks, ranks, mode="full")[n:]  # lags 1 .. n-1
    rho = full / denominator
    significant = np.abs(rho) > 1.96 / math.sqrt(n)
    k = np.arange(1, n)
    weights = (n - k) * (n - k - 1) * (n - k - 2)
    factor = 1 + 2 / (n * (n - 1) * (n - 2)) * float(np.sum(weights * rho * significant))
    return max(1.0, factor)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as floats."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(1, len(values) + 1)
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    if len(unique) < len(values):
        sums = np.bincount(inverse, weights=ranks)
        ranks = sums[inverse] / counts[inverse]
    return ranks
