"""The report model: what a renderer needs about one run, read from storage."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from soak.reports.pauses import PauseSummary, pause_summary
from soak.storage import queries
from soak.suppressions import SuppressionStatus

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
class AcceptedFinding:
    """A finding a suppression rule accepted: shown in its own section, not counted in the verdict."""

    finding: FindingInfo
    rule: str
    """The id of the rule that accepted it."""
    reason: str | None
    """The rule's reason."""
    source: str | None
    """Where the rule was read from (``file:line``)."""
    max_growth_bytes_per_hour: float | None
    """The rule's tolerance; None when it accepts any rate. The growth accepted is the finding's."""


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
    inconclusive verdict), ``projection`` (memory against its limit) and ``verdict`` (the
    analysis' own, before suppressions)."""
    accepted: list[AcceptedFinding] = field(default_factory=list)
    """Findings suppression rules accepted; ``findings`` and ``verdict`` leave them out."""
    suppressions: SuppressionStatus = field(default_factory=SuppressionStatus)
    """Rules that expired, matched nothing, or are too broad."""
    suppression_warnings: list[str] = field(default_factory=list)
    """One line each: what needs a look in the rules."""
    pauses: PauseSummary | None = None
    """How long the snapshots paused the measured process (None if no snapshot recorded it)."""

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


def finding_info(row: dict[str, Any], frames: list[dict[str, Any]]) -> FindingInfo:
    """A finding as stored (a ``findings`` row, or a FindingRow as a dict) with its stack's frames."""
    call_site = row["evidence"].get("call_site")
    # a probe's finding with a stack of its own (a blocked loop's, say) carries it in its evidence
    # (a native site's, native frames then Python's, under "traceback")
    traceback = frames or row["evidence"].get("frames") or row["evidence"].get("traceback") or []
    return FindingInfo(
        finding_id=row["finding_id"],
        kind=row["kind"],
        verdict=row["verdict"],
        traceback=[FrameInfo(**f) for f in traceback],
        library=row["library"],
        call_site=FrameInfo(**call_site) if call_site else None,
        growth_bytes_per_hour=row["growth_bytes_per_hour"],
        growth_count_per_hour=row["growth_count_per_hour"],
        p_value=row["p_value"],
        q_value=row["q_value"],
        confidence=row["confidence"],
        detected_at_s=row.get("detected_at_s"),
        resource=row["resource"],
        evidence=row["evidence"],
        stack_id=row["stack_id"],
    )


def build_report(db: Database, selector: str = "latest") -> Report:
    """The report of a run as stored, with the decision its suppression rules made."""
    run = queries.find_run(db, selector)
    status, reason = queries.effective_status(run)
    rows = queries.findings(db, run["id"])
    frames = queries.stack_frames(db, [row["stack_id"] for row in rows if row["stack_id"] is not None])
    accepted_rows = queries.accepted_findings(db, run["id"])
    rules = {rule["rule_id"]: rule for rule in queries.suppression_rules(db, run["id"])}
    findings, accepted = [], []
    for row in rows:
        info = finding_info(row, frames.get(row["stack_id"], []))
        taken = accepted_rows.get(row["finding_id"])
        if taken is None:
            findings.append(info)
        else:
            rule = rules.get(taken["rule_id"], {})
            accepted.append(AcceptedFinding(info, taken["rule_id"], rule.get("reason"), rule.get("source"),
                                            taken["max_growth_bytes_per_hour"]))
    status_lists = SuppressionStatus(
        [r["rule_id"] for r in rules.values() if r["state"] == "expired"],
        [r["rule_id"] for r in rules.values() if r["state"] == "unused"],
        [r["rule_id"] for r in rules.values() if r["too_broad"]],
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
        accepted=accepted,
        suppressions=status_lists,
        suppression_warnings=[w for r in rules.values() for w in r["warnings"]],
        pauses=pause_summary(snaps, run["duration_s"] or (snaps[-1]["t_s"] if snaps else None)),
    )
