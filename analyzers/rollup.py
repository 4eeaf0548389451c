"""Library roll-ups: many small sites inside one library, reached from one application line, are one leak.

A leak inside a dependency often allocates at several lines of it (a dict here, a list there),
each too small to pass the material floor alone. Summed, they are what the user's call into the
library costs; the summed series is tested in place of its members.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from soak.analyzers.growth import Series


@dataclass(frozen=True)
class Group:
    members: tuple[Hashable, ...]
    """Keys of the member series, largest last value first."""


def roll_up(series: Sequence[Series], labels: Mapping[Hashable, Hashable]) -> tuple[list[Series], dict[Hashable, Group]]:
    """Replace series that share a label with their sum, keyed by the label.

    ``labels`` maps a series key to its group's key (a library and the call site it was reached
    from, say); keys without a label stay as they are, and so does a label with a single series.
    Returns the new list of series and the groups by key.
    """
    by_label: dict[Hashable, list[Series]] = defaultdict(list)
    kept: list[Series] = []
    for s in series:
        label = labels.get(s.key)
        if label is None:
            kept.append(s)
        else:
            by_label[label].append(s)
    groups: dict[Hashable, Group] = {}
    for key, members in by_label.items():
        if len(members) == 1:
            kept.extend(members)
            continue
        members.sort(key=lambda m: float(np.asarray(m.bytes)[-1]), reverse=True)
        total = np.sum([np.asarray(m.bytes, dtype=float) for m in members], axis=0)
        counts = None
        if all(m.counts is not None for m in members):
            counts = np.sum([np.asarray(m.counts, dtype=float) for m in members], axis=0)
        samples = None
        if all(m.samples is not None for m in members):
            samples = np.sum([np.asarray(m.samples, dtype=float) for m in members], axis=0)
        kept.append(Series(key, total, counts, samples))
        groups[key] = Group(tuple(m.key for m in members))
    return kept, groups
