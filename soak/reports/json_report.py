"""``--format json``: the ``leaksoak.report/1`` schema, which scripts and CI rely on."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from soak.model.finding import Finding
from soak.model.report import SCHEMA, Report


def report_dict(report: Report) -> dict[str, Any]:
    run = report.run
    return {
        "schema": SCHEMA,
        "run": {
            "id": run.id,
            "name": run.name,
            "target": run.target,
            "status": run.status,
            "status_reason": run.status_reason,
            "started_at": run.started_at,
            "duration_s": round(run.duration_s, 3),
            "snapshots": run.snapshots,
            "iterations": run.iterations,
            "tracer": report.tracer,
            "sample_interval": report.sample_interval,
        },
        "verdict": report.verdict,
        "analysis": report.analysis,
        "pauses": asdict(report.pauses) if report.pauses else None,
        "findings": [finding_dict(f) for f in report.findings],
        "accepted": [{**finding_dict(a.finding), "rule": a.rule, "reason": a.reason,
                      "max_growth_bytes_per_hour": a.max_growth_bytes_per_hour} for a in report.accepted],
        "suppressions": {**report.suppressions.as_dict(), "warnings": list(report.suppression_warnings)},
        # a watched tree (soak watch of a master and its workers): each process's run, and the
        # findings of all of them judged together; empty for a run of one process
        "processes": [asdict(process) for process in report.processes],
        "tree_findings": [{**finding_dict(t.finding), "verdict": t.verdict, "processes": t.processes, "watched": t.watched,
                           "growth_bytes_per_hour_each": t.growth_bytes_per_hour} for t in report.tree_findings],
    }


def finding_dict(finding: Finding) -> dict[str, Any]:
    """A finding as the JSON report gives it."""
    where = finding.where
    data: dict[str, Any] = {
        "id": finding.finding_id,
        "kind": finding.kind,
        "verdict": finding.verdict,
        "where": where.as_dict() if where else None,
        "traceback": [frame.as_dict() for frame in finding.traceback],
        "library": finding.library,
        "call_site": finding.call_site.as_dict() if finding.call_site else None,
        "growth_bytes_per_hour": finding.growth_bytes_per_hour,
        "growth_count_per_hour": finding.growth_count_per_hour,
        "p_value": finding.p_value,
        "q_value": finding.q_value,
        "confidence": finding.confidence,
        "detected_at_s": finding.detected_at_s,
        "evidence": finding.evidence,
    }
    if finding.resource is not None:
        data["resource"] = finding.resource
    return data


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"
