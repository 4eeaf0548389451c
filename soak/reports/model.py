"""The report model: what a renderer needs about one run, read from storage."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from soak.storage import queries

SCHEMA = "leaksoak.report/1"


@dataclass(frozen=True)
class FrameInfo:
    file: str
    line: int
    function: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "function": self.function}


@dataclass(frozen=True)
class FindingInfo:
    """One finding as the user reads it."""

    finding_id: str
    """Stable across runs: the same leak in another run has the same id."""
    kind: str
    verdict: str
    traceback: list[FrameInfo]
    """Allocation frame first."""
    library: str | None
    call_site: FrameInfo | None
    """First application frame, when the allocation happens in a library or the stdlib."""
    growth_bytes_per_hour: float | None
    growth_count_per_hour: float | None
    p_value: float | None
    q_value: float | None
    confidence: float | None
    detected_at_s: float | None
    resource: str | None
    evidence: dict[str, Any] = field(default_factory=dict)
    stack_id: int | None = None
    """The allocation site's stack in storage (kind ``site``), for reading its series."""

    @property
    def where(self) -> FrameInfo | None:
        return self.traceback[0] if self.traceback else None


@dataclass(frozen=True)
class RunInfo:
    id: int
    name: str
    target: str
    status: str
    status_reason: str | None
    started_at: str
    duration_s: float
    snapshots: int
    iterations: int
    interval_s: float | None
    mode: str | None = None
    """``run`` or ``watch`` (``ci`` later)."""
    host: str | None = None
    options: dict[str, Any] | None = None
    """The options the run was started with, as stored."""


@dataclass(frozen=True)
class Report:
    run: RunInfo
    verdict: str
    findings: list[FindingInfo]
    events: list[dict[str, Any]]
    first_snapshot: dict[str, Any] | None
    last_snapshot: dict[str, Any] | None
    analysis: dict[str, Any] = field(default_factory=dict)
    """The latest refresh's view of the whole run: ``points``, ``tested``, ``needed_s`` (for an
    inconclusive verdict) and ``projection`` (memory against its limit)."""

    @property
    def tracer(self) -> str | None:
        """The allocation tracer of the latest snapshot (``sampled``, ``exact``), None if none ran."""
        return self.last_snapshot.get("tracer") if self.last_snapshot else None

    @property
    def sample_interval(self) -> int | None:
        """Mean bytes between samples when the sampled tracer ran: the sites' figures are estimates."""
        if not self.last_snapshot or self.last_snapshot.get("tracer") != "sampled":
            return None
        return self.last_snapshot.get("sample_interval")


def build_report(db: Database, selector: str = "latest") -> Report:
    run = queries.find_run(db, selector)
    status, reason = queries.effective_status(run)
    rows = queries.findings(db, run["id"])
    frames = queries.stack_frames(db, [row["stack_id"] for row in rows if row["stack_id"] is not None])
    findings = []
    for row in rows:
        # a native site has no stored stack: its frames come with its probe's evidence
        traceback = [FrameInfo(**f) for f in frames.get(row["stack_id"], row["evidence"].get("traceback", []))]
        call_site = row["evidence"].get("call_site")
        findings.append(
            FindingInfo(
                finding_id=row["finding_id"],
                kind=row["kind"],
                verdict=row["verdict"],
                traceback=traceback,
                library=row["library"],
                call_site=FrameInfo(**call_site) if call_site else None,
                growth_bytes_per_hour=row["growth_bytes_per_hour"],
                growth_count_per_hour=row["growth_count_per_hour"],
                p_value=row["p_value"],
                q_value=row["q_value"],
                confidence=row["confidence"],
                detected_at_s=row["detected_at_s"],
                resource=row["resource"],
                evidence=row["evidence"],
                stack_id=row["stack_id"],
            )
        )
    snaps = queries.snapshots(db, run["id"])
    verdict = run["verdict"] or "inconclusive"
    return Report(
        run=RunInfo(
            id=run["id"],
            name=run["name"],
            target=run["target"],
            status=status,
            status_reason=reason,
            started_at=run["started_at"],
            duration_s=run["duration_s"],
            snapshots=run["snapshots"],
            iterations=run["iterations"],
            interval_s=run["interval_s"],
            mode=run.get("mode"),
            host=run.get("host"),
            options=json.loads(run["options"]) if run.get("options") else None,
        ),
        verdict=verdict,
        findings=findings,
        events=queries.events(db, run["id"]),
        first_snapshot=snaps[0] if snaps else None,
        last_snapshot=snaps[-1] if snaps else None,
        analysis=json.loads(run["analysis"]) if run.get("analysis") else {},
    )
