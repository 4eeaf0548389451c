"""Comparing runs against a baseline: the same target in two databases, finding by finding.

Runs are matched by target (the newest completed run of each target, unless runs are named);
findings by ``finding_id``, which is stable across runs. A rate counts as changed only when
the statistics say so *and* the change matters:

- **increased**: the new Theil–Sen slope's 95% interval lies wholly above the base slope's
  interval (two 95% intervals that do not overlap differ at well below the 5% level), the new
  slope is at least ``min_ratio`` (1.5) times the base slope, and the difference is at least
  the analysis' materiality floor (``Thresholds.min_growth_bytes_per_hour``). Short soaks give
  tight intervals on a steady leak, and a busy machine runs per-call leaks faster or slower
  from one night to the next: the ratio keeps that from failing CI.
- **decreased**: the mirror image.

A finding of the new run that a suppression rule accepted (as stored with the run) is reported
as ``accepted``, with its rule, and never regresses.

A target *regresses* when a finding with verdict ``leak`` is new (its id is not among the base
run's findings), or a finding's rate increased. The whole process's memory (the traced heap,
or RSS when no tracer ran) is compared by the same rule, after the warm-up the analysis always
sets aside (the first 10% of the run), and reported; it does not decide a regression on its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from soak.analyzers import Thresholds
from soak.errors import BadInput
from soak.judging.analysis import latest_segment_trend
from soak.judging.report_builder import build_report
from soak.model.finding import Finding
from soak.model.report import Report
from soak.storage import open_database, queries

MIN_RATIO = 1.5
"""A rate must change by at least this factor (and significantly) to count as changed."""

INCREASED, DECREASED, UNCHANGED = "increased", "decreased", "unchanged"
NEW_LEAK, NEW_SUSPECT, GONE, ACCEPTED = "new_leak", "new_suspect", "gone", "accepted"
REGRESSION, IMPROVEMENT, NO_BASELINE = "regression", "improvement", "no_baseline"


@dataclass(frozen=True)
class Rate:
    """A growth rate in bytes per second with its 95% interval."""

    slope: float
    low: float
    high: float

    @property
    def per_hour(self) -> float:
        return self.slope * 3600

    def as_dict(self) -> dict[str, float | list[float]]:
        return {"bytes_per_hour": self.slope * 3600, "interval_bytes_per_hour": [self.low * 3600, self.high * 3600]}


def _per_hour(change: FindingChange) -> float:
    """The finding's growth in the new run, else in the base run (one that is gone)."""
    rate = change.new or change.base
    return rate.per_hour if rate else 0.0


def rate_change(base: Rate, new: Rate, min_ratio: float = MIN_RATIO,
                min_bytes_per_hour: float = Thresholds().min_growth_bytes_per_hour) -> str:
    """``increased``, ``decreased`` or ``unchanged``, by the rule in the module docstring."""
    floor = min_bytes_per_hour / 3600
    if new.low > base.high and new.slope - base.slope >= floor and new.slope >= min_ratio * max(base.slope, 0.0):
        return INCREASED
    if new.high < base.low and base.slope - new.slope >= floor and base.slope >= min_ratio * max(new.slope, 0.0):
        return DECREASED
    return UNCHANGED


@dataclass(frozen=True)
class RunRef:
    id: int
    name: str
    target: str
    status: str
    verdict: str


@dataclass(frozen=True)
class FindingChange:
    """One finding of either run, and how it changed."""

    finding_id: str
    change: str
    """new_leak | new_suspect | increased | decreased | unchanged | gone | accepted"""
    finding: Finding
    """The new run's finding, or the base run's for one that is gone."""
    base_verdict: str | None
    new_verdict: str | None
    base: Rate | None
    new: Rate | None
    rule: str | None = None
    """For an ``accepted`` finding: the suppression rule that accepted it in the new run."""

    @property
    def ratio(self) -> float | None:
        if self.base is None or self.new is None or self.base.slope <= 0:
            return None
        return self.new.slope / self.base.slope

    @property
    def regression(self) -> bool:
        return self.change in (NEW_LEAK, INCREASED)

    @property
    def improvement(self) -> bool:
        return self.change in (GONE, DECREASED)


@dataclass(frozen=True)
class MemoryChange:
    """The whole process's memory growth, base against new."""

    series: str
    """``traced heap`` or ``RSS``."""
    base: Rate | None
    new: Rate | None
    change: str | None
    """increased | decreased | unchanged, or None when either side has too few snapshots."""


@dataclass(frozen=True)
class TargetComparison:
    target: str
    new_run: RunRef
    base_run: RunRef | None
    findings: list[FindingChange] = field(default_factory=list)
    memory: MemoryChange | None = None

    @property
    def regressions(self) -> list[FindingChange]:
        return [f for f in self.findings if f.regression]

    @property
    def improvements(self) -> list[FindingChange]:
        return [f for f in self.findings if f.improvement]

    @property
    def status(self) -> str:
        if self.base_run is None:
            return NO_BASELINE
        if self.regressions:
            return REGRESSION
        if self.improvements:
            return IMPROVEMENT
        return UNCHANGED


@dataclass(frozen=True)
class Comparison:
    base_db: str
    new_db: str
    min_ratio: float
    targets: list[TargetComparison]

    @property
    def regression(self) -> bool:
        return any(t.status == REGRESSION for t in self.targets)

    @property
    def exit_code(self) -> int:
        return 1 if self.regression else 0


def compare(base_db: str, new_db: str, *, run_base: str | None = None, run_new: str | None = None,
            min_ratio: float = MIN_RATIO) -> Comparison:
    """Compare the runs of ``new_db`` against those of ``base_db`` (see the module docstring).

    Without ``run_base``/``run_new``, every target with a completed run in ``new_db`` is compared
    with the newest completed run of the same target in ``base_db``. With one or both, that run
    (id, name or ``latest``) is compared with the given or matching run on the other side.
    Raises BadInput when nothing can be compared.
    """
    if min_ratio < 1:
        raise BadInput("the minimum ratio must be at least 1")
    base, new = _open(base_db, "base"), _open(new_db, "new")
    same = os.path.samefile(base_db, new_db)
    try:
        if run_base is None and run_new is None:
            new_runs = list(queries.latest_completed_runs(new).values())
            if not new_runs:
                raise BadInput(f"{new_db!r} holds no completed run to compare")
            pairs = _pairs(base, new_runs, same)
            if all(b is None for _, b in pairs):
                names = ", ".join(repr(r["target"]) for r in new_runs[:3])
                raise BadInput(f"no completed run in {base_db!r} has a target of {new_db!r} ({names}); "
                               "pass --run-base and --run-new to compare runs of different targets")
        else:
            new_run = queries.find_run(new, run_new) if run_new is not None else None
            base_run = queries.find_run(base, run_base) if run_base is not None else None
            if new_run is None:
                assert base_run is not None
                new_run = queries.latest_completed_runs(new, [base_run["id"]] if same else None).get(base_run["target"])
                if new_run is None:
                    raise BadInput(f"{new_db!r} holds no completed run of {base_run['target']!r}")
            if base_run is None:
                base_run = queries.latest_completed_runs(base, [new_run["id"]] if same else None).get(new_run["target"])
                if base_run is None:
                    raise BadInput(f"{base_db!r} holds no completed run of {new_run['target']!r}")
            pairs = [(new_run, base_run)]
        targets = [_compare_pair(base, new, new_row, base_row, min_ratio) for new_row, base_row in pairs]
    finally:
        base.close()
        new.close()
    return Comparison(base_db, new_db, min_ratio, targets)


def compare_with_baseline(base_db: str, new_db: str, run_ids: Iterable[int], min_ratio: float = MIN_RATIO) -> dict[int, TargetComparison]:
    """Each of the runs ``run_ids`` of ``new_db`` against the newest completed run of its target in
    ``base_db`` (when that is the same file, the newest before them)."""
    base, new = _open(base_db, "baseline"), _open(new_db, "new")
    same = os.path.samefile(base_db, new_db)
    try:
        new_runs = [queries.find_run(new, str(run_id)) for run_id in run_ids]
        pairs = _pairs(base, new_runs, same)
        return {row["id"]: _compare_pair(base, new, row, base_row, min_ratio) for row, base_row in pairs}
    finally:
        base.close()
        new.close()


def check_database(path: str, role: str) -> None:
    """Raise BadInput unless ``path`` is a leaksoak database that can be read."""
    _open(path, role).close()


def _open(path: str, role: str) -> Database:
    if not os.path.isfile(path):
        raise BadInput(f"no {role} database at {path!r}")
    db = open_database(path, create=False)
    if "runs" not in db.table_names():
        db.close()
        raise BadInput(f"{path!r} ({role}) holds no leaksoak runs")
    return db


def _pairs(base: Database, new_runs: list[dict[str, Any]], same_file: bool) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each new run with the newest completed run of its target in ``base`` (not one of the new runs)."""
    latest = queries.latest_completed_runs(base, [row["id"] for row in new_runs] if same_file else None)
    return [(row, latest.get(row["target"])) for row in new_runs]


def _ref(report: Report) -> RunRef:
    run = report.run
    return RunRef(run.id, run.name, run.target, run.status, report.verdict)


def _compare_pair(base: Database, new: Database, new_row: dict[str, Any], base_row: dict[str, Any] | None,
                  min_ratio: float) -> TargetComparison:
    new_report = build_report(new, str(new_row["id"]))
    if base_row is None:
        return TargetComparison(new_row["target"], _ref(new_report), None)
    base_report = build_report(base, str(base_row["id"]))
    # a finding a rule accepted in the baseline was there all the same: it is not new now
    base_findings = {f.finding_id: f for f in [*base_report.findings, *(a.finding for a in base_report.accepted)]}
    changes = []
    for taken in new_report.accepted:
        before = base_findings.pop(taken.finding.finding_id, None)
        changes.append(FindingChange(taken.finding.finding_id, ACCEPTED, taken.finding, before.verdict if before else None,
                                     taken.finding.verdict, finding_rate(before) if before else None,
                                     finding_rate(taken.finding), taken.rule))
    for finding in new_report.findings:
        before = base_findings.pop(finding.finding_id, None)
        rate = finding_rate(finding)
        if before is None:
            change = NEW_LEAK if finding.verdict == "leak" else NEW_SUSPECT
            changes.append(FindingChange(finding.finding_id, change, finding, None, finding.verdict, None, rate))
            continue
        base_rate = finding_rate(before)
        change = rate_change(base_rate, rate, min_ratio) if base_rate and rate else UNCHANGED
        changes.append(FindingChange(finding.finding_id, change, finding, before.verdict, finding.verdict, base_rate, rate))
    for gone in base_findings.values():
        changes.append(FindingChange(gone.finding_id, GONE, gone, gone.verdict, None, finding_rate(gone), None))
    order = {NEW_LEAK: 0, INCREASED: 1, NEW_SUSPECT: 2, UNCHANGED: 3, DECREASED: 4, GONE: 5, ACCEPTED: 6}
    changes.sort(key=lambda c: (order[c.change], -_per_hour(c)))
    return TargetComparison(new_row["target"], _ref(new_report), _ref(base_report), changes,
                            _memory_change(base, new, base_row["id"], new_row["id"], min_ratio))


def finding_rate(finding: Finding) -> Rate | None:
    """The finding's slope and 95% interval in bytes per second, as the analysis stored them."""
    evidence = finding.evidence
    if "slope_bytes_per_s" in evidence and "slope_interval" in evidence:
        low, high = evidence["slope_interval"]
        return Rate(float(evidence["slope_bytes_per_s"]), float(low), float(high))
    if finding.growth_bytes_per_hour is not None:
        slope = finding.growth_bytes_per_hour / 3600
        return Rate(slope, slope, slope)
    return None


def memory_trend(rows: list[dict[str, Any]], warmup_fraction: float = Thresholds().warmup_fraction,
                 rss: bool = False) -> tuple[str, Rate | None]:
    """Theil–Sen slope of the latest segment's traced heap (RSS without a tracer, or with
    ``rss``), after warm-up."""
    if not rows:
        return ("RSS" if rss else "traced heap"), None
    segment = [row for row in rows if row["segment"] == rows[-1]["segment"]]
    traced = not rss and all(row["traced_bytes"] is not None for row in segment)
    column, label = ("traced_bytes", "traced heap") if traced else ("rss", "RSS")
    trend = latest_segment_trend(rows, column, warmup_fraction)
    return label, None if trend is None else Rate(trend.slope, trend.slope_low, trend.slope_high)


def _memory_change(base: Database, new: Database, base_id: int, new_id: int, min_ratio: float) -> MemoryChange:
    base_rows, new_rows = queries.snapshots(base, base_id), queries.snapshots(new, new_id)
    base_label, base_rate = memory_trend(base_rows)
    new_label, new_rate = memory_trend(new_rows)
    if base_label != new_label:  # one run traced, the other did not: RSS is what both have
        base_rate = memory_trend(base_rows, rss=True)[1]
        new_rate = memory_trend(new_rows, rss=True)[1]
        new_label = "RSS"
    change = rate_change(base_rate, new_rate, min_ratio) if base_rate and new_rate else None
    return MemoryChange(new_label, base_rate, new_rate, change)
