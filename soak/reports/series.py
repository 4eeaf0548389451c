"""The series the HTML report draws, read from storage and thinned for drawing.

Kept apart from the report model: text, JSON and Markdown need only the model; charts need
every snapshot of the run and the findings' own series, which cost a read each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlite_utils import Database

from soak.analyzers import Thresholds
from soak.model.finding import Finding
from soak.model.report import Report
from soak.storage import queries

MAX_POINTS = 600
"""Points per chart at most; longer series are thinned, keeping each bucket's low and high."""
MAX_CHARTED_FINDINGS = 50
"""Findings beyond the most severe 50 are listed without a chart."""


@dataclass(frozen=True)
class Line:
    """One series to draw: its points split into runs that are drawn unbroken."""

    label: str
    runs: list[list[tuple[float, float]]]

    @property
    def points(self) -> int:
        return sum(len(run) for run in self.runs)


@dataclass(frozen=True)
class Fit:
    """The fitted Theil–Sen line over the analysed window: (t0, y0) to (t1, y1)."""

    t0: float
    y0: float
    t1: float
    y1: float


@dataclass(frozen=True)
class FindingChart:
    line: Line
    fit: Fit | None


@dataclass(frozen=True)
class ChartData:
    end_s: float
    """The time axis ends here: at the last snapshot (the run's duration when there is none)."""
    process: list[Line]
    """RSS, and USS when measured."""
    traced: list[Line]
    """The traced heap, when an allocation tracer ran."""
    warmup_until_s: float | None
    segment_starts: list[float]
    """Times at which a new segment (a resumed or restarted worker) began."""
    findings: list[FindingChart | None]
    """One per finding of the report, in its order; None past the charted ones."""
    types: list[dict[str, Any]] = field(default_factory=list)
    """Types whose live object count grew most: name, first, last, change."""
    loop_lag: list[Line] = field(default_factory=list)
    """An async target's event-loop lag per snapshot (p99 and max, in seconds), when measured."""


def thin(values: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices to keep: all of them when few enough, else each bucket's lowest and highest point.

    Keeping both extremes (in time order) keeps spikes and sawtooth peaks that plain decimation
    would drop. The first and last points are always kept.
    """
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = np.array_split(np.arange(n), max(1, (max_points - 2) // 2))
    keep = {0, n - 1}
    for bucket in buckets:
        chunk = values[bucket]
        keep.add(int(bucket[int(np.argmin(chunk))]))
        keep.add(int(bucket[int(np.argmax(chunk))]))
    return np.array(sorted(keep))


def make_line(label: str, times: np.ndarray, values: Sequence[float | None], segments: np.ndarray,
              max_points: int = MAX_POINTS) -> Line | None:
    """A drawable line from a series with gaps (None); broken at gaps and at segment changes."""
    y = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    present = np.flatnonzero(~np.isnan(y))
    if len(present) == 0:
        return None
    kept = present[thin(y[present], max_points)]
    runs: list[list[tuple[float, float]]] = []
    previous = None
    for index in kept:
        if previous is None or segments[index] != segments[previous] or np.isnan(y[previous + 1:index]).any():
            runs.append([])
        runs[-1].append((float(times[index]), float(y[index])))
        previous = index
    return Line(label, runs)


def fit_line(times: np.ndarray, values: np.ndarray, segments: np.ndarray, evidence: dict[str, Any]) -> Fit | None:
    """The finding's slope drawn through its analysed window.

    The slope is the stored one; the intercept is not stored, so it is recomputed as Theil–Sen
    does (median of y minus slope times the median of t) over the window's snapshots.
    """
    if "slope_bytes_per_s" not in evidence or "window_s" not in evidence or len(times) == 0:
        return None
    start, end = evidence["window_s"]
    slope = float(evidence["slope_bytes_per_s"])
    last = int(np.searchsorted(times, end + 1e-9, side="right")) - 1
    if last < 0:
        return None
    inside = (times >= start - 1e-9) & (times <= end + 1e-9) & (segments == segments[last])
    if not inside.any():
        return None
    intercept = float(np.median(values[inside]) - slope * np.median(times[inside]))
    return Fit(start, intercept + slope * start, end, intercept + slope * end)


def load_chart_data(db: Database, report: Report) -> ChartData:
    """Everything the HTML report draws for ``report``'s run."""
    run_id = report.run.id
    rows = queries.snapshots(db, run_id)
    times = np.array([row["t_s"] for row in rows], dtype=float)
    segments = np.array([row.get("segment") or 0 for row in rows], dtype=np.int64)
    budget_process = MAX_POINTS // 2
    process = [
        line
        for label, key in (("RSS", "rss"), ("USS", "uss"))
        if (line := make_line(label, times, [row[key] for row in rows], segments, budget_process)) is not None
    ]
    traced_line = make_line("traced heap", times, [row["traced_bytes"] for row in rows], segments)
    starts = [float(times[i]) for i in range(1, len(rows)) if segments[i] != segments[i - 1]]
    findings: list[FindingChart | None] = []
    for number, finding in enumerate(report.findings):
        findings.append(_finding_chart(db, run_id, finding, rows, times, segments) if number < MAX_CHARTED_FINDINGS else None)
    return ChartData(
        end_s=float(times[-1]) if len(times) else report.run.duration_s,
        process=process,
        traced=[traced_line] if traced_line else [],
        warmup_until_s=_warmup(report, times, segments),
        segment_starts=starts,
        findings=findings,
        types=queries.type_growth(db, run_id),
        loop_lag=_loop_lag(db, run_id, rows, times, segments),
    )


LAG_LINES = (("lag_p99", "lag p99"), ("lag_max", "lag max"))


def _loop_lag(db: Database, run_id: int, rows: list[dict[str, Any]], times: np.ndarray, segments: np.ndarray) -> list[Line]:
    from soak.inprocess.probes.loop_lag import LoopLagProbe

    seqs = np.array([row["seq"] for row in rows], dtype=np.int64)
    series = {s.name: s.values for s in queries.probe_series(db, run_id, seqs)
              if s.probe == LoopLagProbe.name and s.unit == "seconds"}
    lines = [make_line(label, times, list(series[name]), segments, MAX_POINTS // 2)
             for name, label in LAG_LINES if name in series]
    return [line for line in lines if line is not None]


def _finding_chart(db: Database, run_id: int, finding: Finding, rows: list[dict[str, Any]],
                   times: np.ndarray, segments: np.ndarray) -> FindingChart | None:
    if finding.kind == "site" and finding.stack_id is not None:
        _, values, _ = queries.site_series_of(db, run_id, finding.stack_id)
        label = "live bytes at this site"
    elif finding.resource in ("rss", "uss"):
        values = np.array([row[finding.resource] or 0 for row in rows], dtype=float)
        label = f"worker {finding.resource.upper()}"
    else:
        return None
    values = np.asarray(values, dtype=float)
    line = make_line(label, times, list(values), segments)
    if line is None:
        return None
    return FindingChart(line, fit_line(times, values, segments, finding.evidence))


def _warmup(report: Report, times: np.ndarray, segments: np.ndarray) -> float | None:
    """Where the analysis set the warm-up aside: as the run's analysis stored it, else as the
    findings did (each finding's window may start later, at its own change of regime), else by rule."""
    if report.analysis.get("warmup_until_s") is not None:
        return float(report.analysis["warmup_until_s"])
    for finding in report.findings:
        if "warmup_until_s" in finding.evidence:
            return float(finding.evidence["warmup_until_s"])
    if len(times) < 2:
        return None
    latest = times[segments == segments[-1]]
    fraction = ((report.run.options or {}).get("thresholds") or {}).get("warmup_fraction", Thresholds().warmup_fraction)
    return float(latest[0] + (latest[-1] - latest[0]) * fraction)
