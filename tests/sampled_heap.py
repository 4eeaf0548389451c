"""A simulator of what a sampled allocation tracer reports for one site, for the analyzers' tests.

The tracer samples allocations by a Poisson process over allocated bytes with mean interval R:
a block of ``s`` bytes is sampled with probability p = 1 − exp(−s/R), decided once, when it is
allocated. A site's live bytes are estimated by Horvitz–Thompson, the sum of s/p over its live
sampled blocks (its live blocks, of 1/p). The estimate moves only when a sampled block is born or
freed, so a site is simulated by its sampled blocks alone: blocks of size s are born at rate
λ·w(s) and sampled independently with probability p(s), so the sampled ones are a Poisson process
of rate λ·w(s)·p(s). That keeps a churning site of millions of blocks to a few thousand draws.

A site is one or more ``Population``s of blocks: a birth rate, a size distribution, and a rule
for when each block is freed (kept for ever, a random lifetime, evicted first-in first-out,
flushed with its batch). Everything is numpy and takes a ``Generator``, so a seed fixes a series.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

KIB = 1024
INF = math.inf

Lifetime = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""Death times of blocks born at the given times (``inf``: never freed)."""


def kept() -> Lifetime:
    """Never freed: a leak, or a table loaded once."""
    return lambda born, rng: np.full(len(born), INF)


def exponential(mean_s: float) -> Lifetime:
    """Freed after a random lifetime of mean ``mean_s``: churn (requests, sessions)."""
    return lambda born, rng: born + rng.exponential(mean_s, len(born))


def fixed(lifetime_s: float) -> Lifetime:
    """Freed ``lifetime_s`` after birth: a bounded cache evicting first-in first-out at a steady rate."""
    return lambda born, rng: born + lifetime_s


def flushed(period_s: float) -> Lifetime:
    """Freed at the end of the batch it joined: a buffer flushed every ``period_s``, at a random phase."""
    def deaths(born: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        phase = rng.uniform(0, period_s)
        return (np.floor((born - phase) / period_s) + 1) * period_s + phase
    return deaths


@dataclass(frozen=True)
class Sizes:
    """A discrete block-size distribution: ``sizes`` (bytes) with probabilities ``weights``."""

    sizes: np.ndarray
    weights: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.dot(self.sizes, self.weights))


def uniform_sizes(low: int, high: int, bins: int = 24) -> Sizes:
    """Sizes spread evenly over [low, high] (``bins`` classes stand for the continuum)."""
    sizes = np.unique(np.linspace(low, high, bins).round())
    return Sizes(sizes, np.full(len(sizes), 1 / len(sizes)))


def one_size(size: int) -> Sizes:
    return Sizes(np.array([float(size)]), np.array([1.0]))


@dataclass(frozen=True)
class Population:
    """Blocks born as a Poisson process of ``rate`` blocks per second between ``start_s`` and ``stop_s``."""

    rate: float
    sizes: Sizes
    lifetime: Lifetime
    start_s: float = 0.0
    """Negative to start the run with a warm, stationary live set."""
    stop_s: float = INF
    """Births end here (or at the last snapshot)."""

    @property
    def bytes_per_s(self) -> float:
        return self.rate * self.sizes.mean


def hit_probability(size: np.ndarray | float, interval: float) -> np.ndarray:
    """Probability that a block of ``size`` bytes holds at least one sample point: 1 − exp(−s/R)."""
    return -np.expm1(-np.asarray(size, dtype=float) / interval)


@dataclass(frozen=True)
class Estimate:
    """What the sampled tracer would report for one site at each snapshot."""

    bytes: np.ndarray
    """Horvitz–Thompson estimate of live bytes: Σ s/p over live sampled blocks."""
    blocks: np.ndarray
    """Estimate of live blocks: Σ 1/p."""
    samples: np.ndarray
    """Live sampled blocks."""


def simulate(times: np.ndarray, populations: list[Population], interval: float,
             rng: np.random.Generator) -> Estimate:
    """The sampled estimate of a site made of ``populations`` at snapshot ``times``, at mean interval R."""
    t = np.asarray(times, dtype=float)
    end = float(t[-1])
    born_all, died_all, size_all = [], [], []
    for pop in populations:
        start, stop = pop.start_s, min(pop.stop_s, end)
        if stop <= start:
            continue
        p = hit_probability(pop.sizes.sizes, interval)
        counts = rng.poisson(pop.rate * pop.sizes.weights * p * (stop - start))
        sizes = np.repeat(pop.sizes.sizes, counts)
        born = rng.uniform(start, stop, len(sizes))
        born_all.append(born)
        died_all.append(pop.lifetime(born, rng))
        size_all.append(sizes)
    if not born_all:
        zero = np.zeros(len(t))
        return Estimate(zero, zero.copy(), zero.copy())
    born, died, size = np.concatenate(born_all), np.concatenate(died_all), np.concatenate(size_all)
    p = hit_probability(size, interval)
    return Estimate(
        _live_sum(t, born, died, size / p),
        _live_sum(t, born, died, 1 / p),
        _live_sum(t, born, died, np.ones(len(size))),
    )


def _live_sum(t: np.ndarray, born: np.ndarray, died: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Σ weight over blocks with born ≤ t < died, at each t."""
    order_b, order_d = np.argsort(born), np.argsort(died)
    cum_b = np.r_[0.0, np.cumsum(weight[order_b])]
    cum_d = np.r_[0.0, np.cumsum(weight[order_d])]
    alive = cum_b[np.searchsorted(born[order_b], t, side="right")] - cum_d[np.searchsorted(died[order_d], t, side="right")]
    rounded: np.ndarray = np.round(alive, 6)
    return rounded  # the sums are exact multiples; keep float noise from looking like change


# --- the sites the tests and the benchmark use ----------------------------------------------------

SMALL = uniform_sizes(50, 500)
"""The reference corpus' leaked blocks: small strings, dicts and list items."""
MIXED = uniform_sizes(10, 4000)
"""A request's objects (``clean_churn``): blobs of 10 B to 4 KB."""


def churn(live_bytes: float, lifetime_s: float, sizes: Sizes = MIXED) -> Population:
    """A stationary live set of about ``live_bytes``, each block living ``lifetime_s`` on average; warm from the start."""
    return Population(live_bytes / lifetime_s / sizes.mean, sizes, exponential(lifetime_s), start_s=-10 * lifetime_s)


def leak(bytes_per_s: float, sizes: Sizes = SMALL, start_s: float = 0.0) -> Population:
    return Population(bytes_per_s / sizes.mean, sizes, kept(), start_s=start_s)


CLEAN_SITES: dict[str, list[Population]] = {
    # (a) churn: a stationary live set with turnover, of several sizes and speeds.
    "churn_requests": [churn(200 * KIB, 0.05)],  # a request's objects: redrawn at every snapshot
    "churn_sessions": [churn(300 * KIB, 10.0, SMALL)],  # live for seconds: the estimate wanders
    "churn_slow": [churn(1024 * KIB, 40.0, SMALL)],  # turns over slower than the run: slow random walk
    "churn_large": [churn(2048 * KIB, 2.0, uniform_sizes(16 * KIB, 256 * KIB))],
    # (b) a bounded cache that fills, then stays full (evicting first-in first-out), or a table loaded once.
    "cache_fifo": [Population(100, uniform_sizes(100, 1000), fixed(20.0))],  # fills ~1 MB over 20 s
    "table_once": [Population(400, SMALL, kept(), stop_s=15.0)],  # 1.6 MB loaded over the first 15 s
    # (c) a sawtooth buffer that fills and flushes.
    "sawtooth_7s": [Population(100_000 / 300, one_size(300), flushed(7.0))],  # 100 kB/s, flushed every 7 s
    "sawtooth_fast": [Population(1000, one_size(300), flushed(0.5))],  # clean_sawtooth: 500 calls a batch
}
