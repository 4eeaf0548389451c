"""Where the current regime of a series begins: warm-up, a cache that filled, a leak that started late.

A regime is a stretch of steady growth rate. On the first differences of a series (growth per
snapshot) Pettitt's rank test (Pettitt 1979, Applied Statistics 28) finds the most likely single
shift of level and says how significant it is. Being rank-based, a one-off jump (a table loaded
once, a dict resized) barely moves it; a change of growth rate does. Applied again to what
follows each significant shift, it walks to the start of the latest regime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Shift:
    index: int
    """First index of the new regime, in the series' own indexing."""
    p_value: float


def pettitt(x: np.ndarray) -> Shift:
    """Most likely single change of level in ``x``: the first index after it, and its p-value."""
    n = len(x)
    if n < 4 or np.ptp(x) == 0:
        return Shift(0, 1.0)
    signs = np.sign(x[:, None] - x[None, :]).sum(axis=1)  # Σ_j sign(x_t − x_j) for each t
    u = np.cumsum(signs)[:-1]  # U_t for splits after t = 0 .. n-2
    t = int(np.argmax(np.abs(u)))
    k = float(abs(u[t]))
    p = min(1.0, 2 * math.exp(-6 * k * k / (n**3 + n**2)))
    return Shift(t + 1, p)


def regime_start(values: np.ndarray, alpha: float, min_points: int) -> tuple[int, int | None]:
    """Index where the latest regime of ``values`` starts, and any later shift too recent to use.

    Growth-rate shifts significant at ``alpha`` move the start forward as long as at least
    ``min_points`` values follow. A significant shift with fewer values after it is returned as
    the second element, so that a finding can say it is too soon to tell.
    """
    y = np.asarray(values, dtype=float)
    start = 0
    while len(y) - start >= 2 * min_points:
        diffs = np.diff(y[start:])
        shift = pettitt(diffs)
        if shift.p_value > alpha:
            return start, None
        new_start = start + shift.index + 1  # diffs[i] is y[i+1] − y[i]
        if len(y) - new_start < min_points:
            return start, new_start
        start = new_start
    return start, None


def lower_envelope(values: np.ndarray, width: int) -> np.ndarray:
    """Trailing minimum over ``width`` values: a sawtooth buffer's floor, a leak's own line."""
    y = np.asarray(values, dtype=float)
    if width <= 1 or len(y) == 0:
        return y
    from numpy.lib.stride_tricks import sliding_window_view

    padded = np.concatenate([np.full(width - 1, y[0]), y])
    floor: np.ndarray = sliding_window_view(padded, width).min(axis=1)
    return floor


def envelope_width(values: np.ndarray, minimum: int, maximum: int) -> int:
    """Trailing-minimum width that spans a sawtooth's period, within [minimum, maximum].

    A tooth ends in a drop far larger than the series' typical step (more than 5 MADs of the
    differences below their median); the width is one more than the longest stretch between two
    such drops, so that every window holds a trough. A series without repeated drops keeps
    ``minimum``.
    """
    d = np.diff(np.asarray(values, dtype=float))
    if len(d) < 3:
        return max(1, minimum)
    median = float(np.median(d))
    mad = float(np.median(np.abs(d - median))) * 1.4826
    drops = np.flatnonzero(d < median - 5 * max(mad, 1e-9 * abs(median) + 1e-12)) if mad > 0 else np.flatnonzero(d < 0)
    if len(drops) < 2:
        return max(1, minimum)
    longest = int(np.max(np.diff(drops))) + 1
    return int(min(max(minimum, longest, 1), max(1, maximum)))
