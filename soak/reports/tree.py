"""How a watched tree reads (``soak watch`` of a master and its workers), in every report format:
each process's run in one line, and each finding of the tree judged together."""

from __future__ import annotations

import os

from soak.model.report import ProcessRun, Report, TreeFinding
from soak.reports.presenter import growth, human_bytes


def process_line(process: ProcessRun) -> str:
    """``pid 4242 (run 7): LEAK, 1 finding - completed: watched process exited``."""
    role = "master, " if process.root else ""
    findings = f"{process.findings} finding" + ("" if process.findings == 1 else "s")
    status = process.status + (f": {process.status_reason}" if process.status_reason else "")
    return f"pid {process.pid or '?'} ({role}run {process.run_id}): {process.verdict.upper()}, {findings} - {status}"


def tree_headline(tree: TreeFinding) -> str:
    """``LEAK at app.py:12 in handler, in 2 of 3 processes: +1.2 MiB/hour, +1.1 MiB/hour``."""
    finding = tree.finding
    where = finding.where
    place = f"{os.path.basename(where.file)}:{where.line} in {where.function}" if where else (finding.resource or finding.kind)
    if finding.kind == "site" or finding.growth_bytes_per_hour is not None:
        rates = ", ".join(f"+{human_bytes(rate)}/hour" for rate in tree.growth_bytes_per_hour)
    else:
        rates = growth(finding)
    return f"{tree.verdict.upper()} at {place}, in {tree.processes} of {tree.watched} processes: {rates}"


def tree_lines(report: Report) -> list[str]:
    """The text report's section of a watched tree; none for a run of one process."""
    if not report.processes:
        return []
    out = ["", f"processes ({len(report.processes)}, each judged on its own series):"]
    out += [f"  {process_line(process)}" for process in report.processes]
    if report.tree_findings:
        out += ["", "findings across the processes:"]
        out += [f"  T{number}. {tree_headline(tree)}" for number, tree in enumerate(report.tree_findings, 1)]
    return out
