"""The report model of a stored run, built from storage: its findings, the decision its
suppression rules made, its snapshots' pauses."""

from __future__ import annotations

import json
from typing import Any, cast

import numpy as np
from sqlite_utils import Database

from soak.judging.tree import judge_tree
from soak.model.finding import Finding
from soak.model.report import (
    AcceptedFinding,
    PauseSummary,
    ProbePauses,
    ProcessRun,
    Report,
    RunInfo,
    RunSummary,
    SuppressionStatus,
    TreeFinding,
)
from soak.model.verdicts import most_severe
from soak.storage import queries
from soak.storage.queries import probe_pauses
from soak.storage.schema import OUTSIDE_PROBE, RuleRow


def build_report(db: Database, selector: str = "latest") -> Report:
    """The report of a run as stored, with the decision its suppression rules made."""
    run = queries.find_run(db, selector)
    status, reason = queries.effective_status(run)
    rules = {rule["rule_id"]: rule for rule in queries.suppression_rules(db, run["id"])}
    findings, accepted = _findings(db, run["id"], rules)
    status_lists = SuppressionStatus(
        [r["rule_id"] for r in rules.values() if r["state"] == "expired"],
        [r["rule_id"] for r in rules.values() if r["state"] == "unused"],
        [r["rule_id"] for r in rules.values() if r["too_broad"]],
    )
    snaps = queries.snapshots(db, run["id"])
    verdict = run["verdict"] or "inconclusive"
    members = queries.tree_runs(db, run["id"])
    processes: list[ProcessRun] = []
    tree_findings: list[TreeFinding] = []
    if members:  # a watched tree: its processes judged together
        own = ProcessRun(run["id"], run.get("pid") or _root_pid(snaps), status, reason, verdict, len(findings), root=True)
        processes, tree_findings = judge_tree(own, findings, [(member, _findings(db, member["id"])[0]) for member in members])
        verdict = most_severe(process.verdict for process in processes)
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
        analysis=cast("RunSummary", json.loads(run["analysis"])) if run.get("analysis") else RunSummary(),
        accepted=accepted,
        suppressions=status_lists,
        suppression_warnings=[w for r in rules.values() for w in (json.loads(r["warnings"]) if r["warnings"] else [])],
        pauses=pause_summary(snaps, run["duration_s"] or (snaps[-1]["t_s"] if snaps else None)),
        processes=processes,
        tree_findings=tree_findings,
    )


def _findings(db: Database, run_id: int, rules: dict[str, RuleRow] | None = None) -> tuple[list[Finding], list[AcceptedFinding]]:
    """A run's findings that count, and those its suppression rules accepted."""
    rows = queries.findings(db, run_id)
    frames = queries.stack_frames(db, [row["stack_id"] for row in rows if row["stack_id"] is not None])
    accepted_rows = queries.accepted_findings(db, run_id)
    if rules is None:
        rules = {rule["rule_id"]: rule for rule in queries.suppression_rules(db, run_id)}
    findings, accepted = [], []
    for row in rows:
        finding = Finding.from_row(row, frames.get(row["stack_id"], []) if row["stack_id"] is not None else [])
        taken = accepted_rows.get(row["finding_id"])
        if taken is None:
            findings.append(finding)
        else:
            rule = rules.get(taken["rule_id"])
            accepted.append(AcceptedFinding(finding, taken["rule_id"], rule["reason"] if rule else None,
                                            rule["source"] if rule else None, taken["max_growth_bytes_per_hour"]))
    return findings, accepted


def _root_pid(snapshots: list[dict[str, Any]]) -> int | None:
    return snapshots[-1].get("worker_pid") if snapshots else None


def pause_summary(snapshots: list[dict[str, Any]], wall_s: float | None) -> PauseSummary | None:
    """The pauses of a run's snapshots over ``wall_s`` seconds; None when none were recorded."""
    pauses = np.array([row["pause_ms"] for row in snapshots if row.get("pause_ms") is not None], dtype=float)
    if len(pauses) == 0 or not wall_s or wall_s <= 0:
        return None
    by_probe: dict[str, list[float]] = {}
    for row in snapshots:
        for probe, ms in probe_pauses(row).items():
            if probe != OUTSIDE_PROBE and ms is not None:
                by_probe.setdefault(probe, []).append(float(ms))
    probes = [ProbePauses(probe, len(ms), round(float(np.median(ms)), 3), round(max(ms), 3), round(sum(ms), 3))
              for probe, ms in by_probe.items()]
    probes.sort(key=lambda p: -p.total_ms)
    return PauseSummary(
        share=float(pauses.sum() / 1000 / wall_s), snapshots=len(pauses),
        p50_ms=round(float(np.percentile(pauses, 50)), 3), p99_ms=round(float(np.percentile(pauses, 99)), 3),
        max_ms=round(float(pauses.max()), 3), probes=probes,
    )
