"""Analysis of a stored run: load its series, run the analyzers, store findings with attribution."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlite_utils import Database

from soak.analyzers import Analysis, Series, Thresholds, analyze
from soak.attribution import Attributor
from soak.storage import queries
from soak.storage.writer import FindingRow, RunWriter


def finding_id(kind: str, frames: list[dict[str, object]]) -> str:
    """Stable across runs and machines: the kind and each frame's last two path parts and line."""
    parts = [kind]
    for frame in frames:
        path = str(frame["file"]).replace(os.sep, "/").split("/")
        parts.append(f"{'/'.join(path[-2:])}:{frame['line']}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def analyze_run(db: Database, run_id: int, thresholds: Thresholds, rows: list[dict[str, Any]] | None = None) -> Analysis:
    """Analyse the newest segment of the run that has enough snapshots to judge.

    Each segment (a resumed run's new worker) starts from a fresh heap, so segments are not
    joined into one series; until a new segment has enough points, the previous one speaks.
    ``rows`` are the run's snapshots, if the caller has them already.
    """
    rows = queries.snapshots(db, run_id) if rows is None else rows
    segments = sorted({row["segment"] for row in rows}, reverse=True) or [0]
    results = []
    for segment in segments:
        result = _analyze_segment(db, run_id, [row for row in rows if row["segment"] == segment], thresholds)
        if result.verdict != "inconclusive":
            return result
        results.append(result)
    return results[0]


def _analyze_segment(db: Database, run_id: int, rows: list[dict[str, object]], thresholds: Thresholds) -> Analysis:
    """Per-site series when an allocation tracer ran; the worker's RSS when none did.

    Keys are ``("site", stack_id)`` or ``("process", "rss")``.
    """
    times = np.array([row["t_s"] for row in rows], dtype=float)
    seqs = np.array([row["seq"] for row in rows], dtype=np.int64)
    series = [Series(("site", s.stack_id), s.bytes, s.counts) for s in queries.site_series(db, run_id, seqs)]
    if not any(row["tracer"] for row in rows):
        rss = np.array([row["rss"] or 0 for row in rows], dtype=float)
        series = [Series(("process", "rss"), rss)]
    return analyze(times, series, thresholds)


def memory_slope(rows: list[dict[str, Any]]) -> float:
    """Bytes per second of the measured process's RSS over its latest segment, after warm-up."""
    from soak.analyzers.trend import fit_trend

    if not rows:
        return 0.0
    latest = [row for row in rows if row["segment"] == rows[-1]["segment"] and row["rss"] is not None]
    latest = latest[len(latest) // 5:]
    if len(latest) < 3:
        return 0.0
    return fit_trend(np.array([r["t_s"] for r in latest], dtype=float), np.array([r["rss"] for r in latest], dtype=float)).slope


@dataclass(frozen=True)
class Refreshed:
    """One analysis refresh: what was stored, and what metrics show of it."""

    analysis: Analysis
    findings: list[FindingRow]
    """As stored, most severe first."""
    frames: dict[int, list[dict[str, Any]]]
    """Frames of the findings' stacks, allocation frame first."""
    rss_slope: float
    """Bytes per second of RSS over the latest segment, after warm-up."""


def refresh(db: Database, writer: RunWriter, thresholds: Thresholds, attributor: Attributor, t_s: float) -> Refreshed:
    """Analyse the run so far and replace its stored findings and verdict."""
    snapshots = queries.snapshots(db, writer.run_id)
    result = analyze_run(db, writer.run_id, thresholds, snapshots)
    stacks = queries.stack_frames(db, [key[1] for key in (f.key for f in result.findings) if key[0] == "site"])
    rows = []
    for finding in result.findings:
        kind, ident = finding.key  # type: ignore[misc]
        frames = stacks.get(ident, []) if kind == "site" else []
        library = attributor.library(frames[0]["file"]) if frames else None
        call_site = attributor.call_site(frames)
        rows.append(
            FindingRow(
                finding_id=finding_id(kind, frames or [{"file": ident, "line": 0}]),
                kind=kind,
                verdict=finding.verdict,
                stack_id=ident if kind == "site" else None,
                library=library,
                resource=None if kind == "site" else ident,
                growth_bytes_per_hour=finding.growth_bytes_per_hour,
                growth_count_per_hour=finding.growth_count_per_hour,
                p_value=finding.p_value,
                q_value=finding.q_value,
                confidence=finding.confidence,
                evidence={**finding.evidence, "call_site": call_site, "tested": result.tested},
            )
        )
    writer.replace_findings(rows, t_s)
    writer.set_verdict(result.verdict)
    return Refreshed(result, rows, stacks, memory_slope(snapshots))
