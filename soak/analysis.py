"""Analysis of a stored run: load its series, run the analyzers, store findings with attribution."""

from __future__ import annotations

import hashlib
import os

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


def analyze_run(db: Database, run_id: int, thresholds: Thresholds) -> Analysis:
    rows = queries.snapshots(db, run_id)
    times = np.array([row["t_s"] for row in rows], dtype=float)
    seqs = np.array([row["seq"] for row in rows], dtype=np.int64)
    sites = queries.site_series(db, run_id, seqs)
    return analyze(times, [Series(s.stack_id, s.bytes, s.counts) for s in sites], thresholds)


def refresh(db: Database, writer: RunWriter, thresholds: Thresholds, attributor: Attributor, t_s: float) -> Analysis:
    """Analyse the run so far and replace its stored findings and verdict."""
    result = analyze_run(db, writer.run_id, thresholds)
    stacks = queries.stack_frames(db, [int(f.key) for f in result.findings])  # type: ignore[call-overload]
    rows = []
    for finding in result.findings:
        frames = stacks[int(finding.key)]  # type: ignore[call-overload]
        library = attributor.library(frames[0]["file"]) if frames else None
        call_site = attributor.call_site(frames)
        rows.append(
            FindingRow(
                finding_id=finding_id("site", frames),
                kind="site",
                verdict=finding.verdict,
                stack_id=int(finding.key),  # type: ignore[call-overload]
                library=library,
                resource=None,
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
    return result
