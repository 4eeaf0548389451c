"""GitHub Actions annotations for ``soak ci``: ``::error file=…,line=…,title=…::message`` on the
application line of each finding (the call into a library when the allocation is inside one).

At most :data:`MAX_ANNOTATIONS`, the most severe first (leaks before suspects, faster growth
first). Findings that fail the job are errors, the others warnings; findings a suppression rule
accepted come after them all, as notices naming the rule. Escaping follows GitHub's
workflow-command rules: ``%``, CR and LF in the message; those and ``:`` and ``,`` in properties.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from soak.model.verdicts import LEAK, fails
from soak.reports.accepted import accepted_by
from soak.reports.brief import application_frame, display_path, place, rate, workspace_root

if TYPE_CHECKING:
    from soak.model.finding import Finding
    from soak.reports.ci_result import CiResult

MAX_ANNOTATIONS = 10


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_annotations(result: CiResult, root: str | None = None, limit: int = MAX_ANNOTATIONS) -> list[str]:
    root = root or workspace_root()
    candidates: list[tuple[bool, bool, float, str, Finding, bool, str | None]] = []
    for target in result.targets:
        if target.report is None:
            continue
        for finding in target.report.findings:
            candidates.append((False, finding.verdict != LEAK, -(finding.growth_bytes_per_hour or 0.0), target.target, finding,
                               fails(finding.verdict, result.fail_on), None))
        for taken in target.report.accepted:
            finding = taken.finding
            candidates.append((True, finding.verdict != LEAK, -(finding.growth_bytes_per_hour or 0.0), target.target, finding,
                               False, accepted_by(taken)))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    lines = []
    for _, _, _, target_name, finding, failing, accepted in candidates[:limit]:
        frame = application_frame(finding)
        properties = []
        if frame is not None:
            path = display_path(frame.file, root)
            if not os.path.isabs(path):  # GitHub can only place a file inside the workspace
                properties += [f"file={escape_property(path)}", f"line={frame.line}"]
        title = f"memory {finding.verdict}{' (accepted)' if accepted else ''}: {rate(finding.growth_bytes_per_hour)}"
        properties.append(f"title={escape_property(title)}")
        message = (f"{finding.verdict} at {place(finding, root)} growing {rate(finding.growth_bytes_per_hour)}"
                   f" in soak of {target_name}" + (f" (p={finding.p_value:.1e})" if finding.p_value is not None else "")
                   + (f"; {accepted}" if accepted else ""))
        command = "notice" if accepted else "error" if failing else "warning"
        lines.append(f"::{command} {','.join(properties)}::{escape_data(message)}")
    return lines
