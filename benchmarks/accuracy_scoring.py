"""Scoring for benchmarks/accuracy.py: each reference workload's ground truth, a run's outcome against
it (flagged, pinned, detection time), and the detection bound T* measured from the run's stored series.
"""

from __future__ import annotations

import importlib
import math
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from sqlite_utils import Database

from soak.storage import queries
from soak.workloads import reference

REFERENCE_DIR = Path(reference.__file__).resolve().parent
ALPHA, POWER = 0.01, 0.8
FLAGGED = ("leak", "suspect")


@dataclass
class Truth:
    name: str
    path: Path
    expected: str
    leak_lines: set[int]
    library: str | None
    onset_s: float


@dataclass
class Outcome:
    truth: Truth
    returncode: int
    report: dict[str, Any] | None
    error: str | None = None
    wall_s: float = 0.0
    bound: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.report["verdict"] if self.report else "failed"

    @property
    def flagged(self) -> bool:
        return self.verdict in FLAGGED

    @property
    def first(self) -> dict[str, Any] | None:
        findings = self.report["findings"] if self.report else []
        return findings[0] if findings else None

    @property
    def pinned(self) -> bool:
        first = self.first
        if not self.flagged or first is None or self.truth.expected != "leak":
            return False
        call_site = first.get("call_site") or {}
        if self.truth.library is None:
            where = first.get("where") or {}
            if first.get("kind") == "library":  # stdlib allocations summed, named by the leaking line that reached them
                return _same_file(call_site.get("file"), self.truth.path) and call_site.get("line") in self.truth.leak_lines
            return _same_file(where.get("file"), self.truth.path) and where.get("line") in self.truth.leak_lines
        return (
            first.get("library") == self.truth.library
            and _same_file(call_site.get("file"), self.truth.path)
            and call_site.get("line") in self.truth.leak_lines
        )

    @property
    def detected_at_s(self) -> float | None:
        first = self.first
        return first.get("detected_at_s") if first and self.flagged else None

    @property
    def ratio(self) -> float | None:
        t_star: float | None = self.bound.get("t_star_s")
        detected = self.detected_at_s
        if detected is None or t_star is None or not t_star > 0 or not math.isfinite(t_star):
            return None
        return (detected - self.truth.onset_s) / t_star


def _same_file(file: str | None, path: Path) -> bool:
    return bool(file) and os.path.realpath(str(file)) == os.path.realpath(path)


def leak_lines(path: Path) -> set[int]:
    """Line numbers marked ``# LEAK``."""
    return {n for n, line in enumerate(path.read_text().splitlines(), 1) if line.rstrip().endswith("# LEAK")}


def load_truth(name: str) -> Truth:
    module = importlib.import_module(f"soak.workloads.reference.{name}")
    path = REFERENCE_DIR / f"{name}.py"
    return Truth(
        name=name,
        path=path,
        expected=module.EXPECTED,
        leak_lines=leak_lines(path),
        library=getattr(module, "EXPECTED_LIBRARY", None),
        onset_s=float(getattr(module, "ONSET_S", 0.0)),
    )


# --- the detection bound ------------------------------------------------------------------------


def detection_bound(times: np.ndarray, y: np.ndarray, onset_s: float = 0.0) -> dict[str, Any]:
    """T* and its ingredients for one site's byte series (see benchmarks/accuracy.py's docstring)."""
    keep = times >= onset_s
    t, y = times[keep], np.asarray(y, dtype=float)[keep]
    if len(t) < 4:
        return {}
    delta = float(np.median(np.diff(t)))
    fit = stats.theilslopes(y, t)
    residuals = y - (fit.intercept + fit.slope * t)
    sigma = float(np.std(residuals, ddof=2))
    centred = residuals - residuals.mean()
    denominator = float(np.dot(centred, centred))
    phi = float(np.dot(centred[1:], centred[:-1]) / denominator) if denominator > 0 else 0.0
    phi = min(max(phi, 0.0), 0.95)
    z = stats.norm.ppf(1 - ALPHA) + stats.norm.ppf(POWER)
    rate = float(fit.slope)
    t_star = None
    if rate > 0:
        t_star = float((z * sigma * math.sqrt(12 * delta) * math.sqrt((1 + phi) / (1 - phi)) / rate) ** (2 / 3))
    return {"rate_bytes_per_s": rate, "sigma_bytes": sigma, "phi": phi, "delta_s": delta, "t_star_s": t_star}


def measure_bound(outcome: Outcome, db_path: str) -> None:
    """Fill ``outcome.bound`` from the run's stored series: the first finding's site, or for a
    leak that was not flagged, the ground-truth site that grew most."""
    truth, report = outcome.truth, outcome.report
    if report is None or truth.expected != "leak":
        return
    run_id = report["run"]["id"]
    db = open_for_reading(db_path)
    try:
        rows = queries.snapshots(db, run_id)
        if len(rows) < 4:
            return
        times = np.array([row["t_s"] for row in rows], dtype=float)
        seqs = np.array([row["seq"] for row in rows], dtype=np.int64)
        series = {s.stack_id: s.bytes for s in queries.site_series(db, run_id, seqs)}
        stack_id, source = None, "finding"
        first = outcome.first
        if first is not None and outcome.flagged and first.get("stack_id") is not None:
            stack_id = first["stack_id"]  # a replayed finding names its stack
        elif first is not None and outcome.flagged and first.get("kind") in ("site", "library"):
            for row in queries.findings(db, run_id):
                if row["finding_id"] == first["id"]:
                    stack_id = row["stack_id"]
                    break
        if stack_id is None:
            stack_id, source = _truth_site(db, truth, series), "truth"
        if stack_id is None or stack_id not in series:
            return
        outcome.bound = {**detection_bound(times, series[stack_id], truth.onset_s), "source": source}
    finally:
        db.close()


def open_for_reading(db_path: str) -> Database:
    """The database, read-only. Not through ``open_database``: a benchmark outlives edits to
    leaksoak, and the ``soak run`` it starts may have migrated the file to a schema newer than the
    one this process imported; the tables read here (snapshots, site samples, findings, stacks)
    are the same in every schema."""
    return Database(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True))


def _truth_site(db: Any, truth: Truth, series: dict[int, np.ndarray]) -> int | None:
    """The stack that grew most among those ground truth names (a # LEAK allocation line, or
    for a library leak a library allocation whose first frame in the workload is a # LEAK line)."""
    frames = queries.stack_frames(db, list(series))
    best, best_growth = None, 0.0
    for stack_id, stack in frames.items():
        if not stack:
            continue
        own = [frame for frame in stack if _same_file(frame.file, truth.path)]
        if truth.library is None:
            matches = _same_file(stack[0].file, truth.path) and stack[0].line in truth.leak_lines
        else:
            matches = bool(own) and not _same_file(stack[0].file, truth.path) and own[0].line in truth.leak_lines
        growth = float(series[stack_id][-1] - series[stack_id][0])
        if matches and growth > best_growth:
            best, best_growth = stack_id, growth
    return best
