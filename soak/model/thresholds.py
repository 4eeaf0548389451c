"""The thresholds of the analysis: how significant and how material growth must be to count.
Plain data, stored with each run's options, read by the analyzers."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Materiality:
    """How much growth matters, in a series' own unit: a rate, a share of the whole, a total."""

    per_hour: float
    heap_share_per_hour: float = 0.0
    """Share of ``heap_bytes`` per hour (bytes series only: a share of the traced heap or RSS)."""
    total: float = 0.0
    """Growth across the analysed window."""


MATERIALITY_FIELDS = frozenset(f.name for f in fields(Materiality))

COUNT_MATERIALITY = Materiality(per_hour=12.0, total=5.0)
"""Resources (threads, fds, tasks): one more every five minutes, and five in the window. They are
exact counts with no sampling noise, and a service holds a handful; the trend tests and the
still-growing test keep a pool that filled up (a connection pool, a thread pool) from counting."""


OBJECTS_MATERIALITY = Materiality(per_hour=3600.0, total=500.0)
"""Live objects of a type: one more a second, and 500 in the window. A clean heap's types wander
by tens (interned names, caches of the interpreter and of libraries filling up); a leak of one
object per hundred requests passes both within a minute at a hundred requests a second."""


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.05
    """False discovery rate at which growth counts as a leak."""
    suspect_alpha: float = 0.10
    """Weaker evidence that is reported as suspect."""
    recent_alpha: float = 0.01
    """Significance the recent window must show on its own for growth to count as persistent."""
    shift_alpha: float = 0.01
    """Significance of a change of growth rate (Pettitt) that starts a new regime."""
    min_points: int = 8
    """Snapshots needed in a regime before anything is said of it."""
    warmup_fraction: float = 0.1
    """Leading share of the run always set aside (imports, first calls); change points find the rest."""
    recent_fraction: float = 0.4
    """Trailing share of the analysed window that must still grow..."""
    min_recent_points: int = 6
    """...and never fewer snapshots than this, so that the recent trend test has power."""
    slowdown_ratio: float = 0.25
    """Growth whose last ``min_points`` snapshots are, with 99% confidence, below this share of
    the regime's rate, on a plateau longer than any before it, has slowed too recently to call:
    suspect, not leak."""
    envelope_points: int = 16
    """The lower envelope is a trailing minimum over 1/this of the analysed snapshots."""
    min_growth_bytes_per_hour: float = 1024 * 1024
    """Growth slower than this is not material, however significant..."""
    min_growth_heap_share_per_hour: float = 0.001
    """...nor slower than this share of the heap per hour (0.1%: 1 MiB/h of a 1 GiB heap)..."""
    min_growth_bytes: float = 64 * 1024
    """...nor growth of fewer bytes than this across the analysed window: CPython's free lists
    and caches fill up by a few KiB early in a run, which looks like a trend in a short one."""
    min_growth_sampling_z: float = 3.0
    """...nor, in a sampled series, growth within this many standard deviations of what sampling
    alone makes of a live set that is merely redrawn: n₀ and n₁ live samples at the regime's first
    and last snapshots differ by about R·√(n₀+n₁) bytes (R the mean sampling interval) when its
    blocks turn over. The trend tests see that noise as a wander, and judge a handful of samples
    of 16 KiB or more as growth; a leak that starts from nothing needs z² samples (9)."""
    max_points: int = 400
    """Longer series are thinned evenly before fitting (Theil–Sen is quadratic)."""
    count_materiality: Materiality = COUNT_MATERIALITY
    """Materiality of series counted in ``count`` (the three above are for bytes)."""
    objects_materiality: Materiality = OBJECTS_MATERIALITY
    """Materiality of series of live ``objects`` (the type census)."""
    judge_types: bool = False
    """Judge the type census' series as ``type`` findings (``--type-findings``). Off by default
    for now: a leak's objects are then found twice, as its site and as its type, and a
    suppression rule for one does not accept the other."""
    max_blocked_share: float = 0.02
    """An event loop blocked (beyond ``--loop-block``) this share of the time is an ``async`` finding."""
    max_pool_share: float = 0.2
    """Work of one call site waiting in a thread pool this share of the callers' time is one too."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        """The thresholds ``dataclasses.asdict`` made ``data`` of (as a run stores them); a field
        ``data`` does not have keeps its default, one the class does not have is ignored."""
        names = {f.name for f in fields(cls)}
        # materiality per unit is a dataclass of its own, stored as a JSON object
        values: dict[str, Any] = {name: Materiality(**{k: v for k, v in value.items() if k in MATERIALITY_FIELDS})
                  if isinstance(value, dict) else value
                  for name, value in data.items() if name in names}
        return cls(**values)

    def materiality(self, unit: str) -> Materiality:
        if unit == "bytes":
            return Materiality(self.min_growth_bytes_per_hour, self.min_growth_heap_share_per_hour, self.min_growth_bytes)
        if unit == "objects":
            return self.objects_materiality
        return self.count_materiality
