"""Robust trend of one series: Theil–Sen slope with its interval, and a one-sided trend test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Trend:
    slope: float
    """Theil–Sen slope, units per second."""
    slope_low: float
    slope_high: float
    """95% confidence interval of the slope."""
    p_value: float
    """One-sided Kendall tau test of 'increasing over time'; 1.0 for a constant series."""


def fit_trend(times: np.ndarray, values: np.ndarray) -> Trend:
    """Theil–Sen slope and a Kendall test on (times, values); needs at least 3 points."""
    from scipy import stats  # imported here: scipy.stats costs ~1 s, which `soak report` never needs

    if np.ptp(values) == 0:
        return Trend(0.0, 0.0, 0.0, 1.0)
    slope, _, low, high = stats.theilslopes(values, times, alpha=0.95)
    tau = stats.kendalltau(times, values, alternative="greater")
    p_value = float(tau.pvalue) if np.isfinite(tau.pvalue) else 1.0
    return Trend(float(slope), float(low), float(high), p_value)
