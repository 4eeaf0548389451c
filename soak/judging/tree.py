"""A watched process tree judged together (``soak watch`` of a master and its workers): each
process's run is judged on its own series, and a finding that several processes show (a leak in
the workers' shared code) is one finding that says how many show it and at what rate each."""

from __future__ import annotations

from typing import Any

from soak.model.finding import Finding
from soak.model.report import ProcessRun, TreeFinding, tree_rank
from soak.model.verdicts import most_severe
from soak.storage.queries import effective_status


def judge_tree(root: ProcessRun, root_findings: list[Finding],
               members: list[tuple[dict[str, Any], list[Finding]]]) -> tuple[list[ProcessRun], list[TreeFinding]]:
    """The tree's processes (the root first, then each descendant's run as stored, with the
    findings that count in it) and its findings judged together, most widespread first."""
    processes = [root]
    by_id: dict[str, list[Finding]] = {finding.finding_id: [finding] for finding in root_findings}
    for run, findings in members:
        status, reason = effective_status(run)
        processes.append(ProcessRun(run["id"], run.get("pid"), status, reason, run["verdict"] or "inconclusive", len(findings)))
        for finding in findings:
            by_id.setdefault(finding.finding_id, []).append(finding)
    judged = []
    for found in by_id.values():
        found.sort(key=lambda f: -(f.growth_bytes_per_hour or 0.0))
        judged.append(TreeFinding(found[0], most_severe(f.verdict for f in found), len(found), len(processes),
                                  [f.growth_bytes_per_hour or 0.0 for f in found]))
    judged.sort(key=lambda t: tree_rank(t.verdict, t.processes, sum(t.growth_bytes_per_hour)))
    return processes, judged
