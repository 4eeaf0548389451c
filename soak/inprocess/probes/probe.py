"""The probe interface: what any probe measures, in what unit, at what cost.

A probe reads something of the measured process once per snapshot and returns named series
values, each in its unit, with optional evidence and its own pause. Hosts (the worker and the
agent in-process, the supervisor for readings from outside) run their probes through
:func:`run_probes`, which gives the snapshot message's ``probes`` field; storage keeps every
probe's series under the probe's name and the series' name, with no schema change per probe; the
analysis judges each series with the thresholds of its unit, as findings of the probe's kind.

Adding a probe is one module: a class with ``name``, ``kind`` and ``collect()``, listed in the
host's probes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

Unit = Literal["bytes", "objects", "count", "seconds"]
UNITS: tuple[str, ...] = get_args(Unit)

FindingKind = Literal["resource", "type", "process", "async", "native"]
"""What a growing series of a probe is reported as (the JSON report's finding ``kind``)."""

MAX_SERIES_PER_PROBE = 64
"""A probe's series per snapshot are capped (largest first; the rest summed into ``other``), so a
probe keyed by something unbounded (thread names, file paths) cannot flood storage."""


@dataclass(frozen=True)
class Reading:
    """One series' value at this snapshot."""

    series: str
    """The series' name within its probe, e.g. ``socket`` for the fds probe."""
    unit: Unit
    value: float


@dataclass
class ProbeResult:
    readings: list[Reading]
    evidence: dict[str, Any] = field(default_factory=dict)
    """Per series name: what the report can say of where it comes from (a creating function...)."""


class Probe(Protocol):
    name: str
    """Unique among a host's probes; the series are stored under it."""
    kind: FindingKind

    def collect(self) -> ProbeResult: ...


class BadReading(ValueError):
    """A probe returned a reading that is not a finite number in a known unit."""


def run_probes(probes: Sequence[Probe]) -> dict[str, dict[str, Any]]:
    """Every probe's readings as the snapshot message carries them, with each probe's pause.

    ``{name: {"kind", "series": [[series, unit, value], ...], "evidence": {...}, "pause_ms"}}``.
    A probe that raises is reported with its error instead of series (the others still run):
    one broken probe must not cost the snapshot.
    """
    out: dict[str, dict[str, Any]] = {}
    for probe in probes:
        started = time.perf_counter()
        try:
            result = probe.collect()
            series = [[r.series, r.unit, _checked(r)] for r in _capped(result.readings)]
            entry: dict[str, Any] = {"kind": probe.kind, "series": series, "evidence": result.evidence}
        except Exception as exc:  # noqa: BLE001 - reported, see above
            entry = {"kind": probe.kind, "error": f"{type(exc).__name__}: {exc}"}
        entry["pause_ms"] = round((time.perf_counter() - started) * 1000, 3)
        out[probe.name] = entry
    return out


def _checked(reading: Reading) -> float:
    value = float(reading.value)
    if reading.unit not in UNITS or value != value or value in (float("inf"), float("-inf")):
        raise BadReading(f"series {reading.series!r}: {value!r} {reading.unit!r}")
    return value


def _capped(readings: list[Reading]) -> list[Reading]:
    if len(readings) <= MAX_SERIES_PER_PROBE:
        return readings
    ranked = sorted(readings, key=lambda r: -r.value)
    kept, rest = ranked[:MAX_SERIES_PER_PROBE - 1], ranked[MAX_SERIES_PER_PROBE - 1:]
    units = {r.unit for r in rest}
    if len(units) != 1:
        return ranked[:MAX_SERIES_PER_PROBE]
    return [*kept, Reading("other", rest[0].unit, sum(r.value for r in rest))]
