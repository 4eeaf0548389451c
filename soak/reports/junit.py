"""JUnit XML for ``soak ci``: one test case per target, a failure naming the top findings.

    <testsuite name="leaksoak" tests="2" failures="1" errors="0" time="20.1">
      <testcase classname="leaksoak" name="app.py:handle" time="10.0">
        <failure message="leak at app.py:16 +380.2 MiB/h; ..." type="leak">the text report</failure>
      </testcase>
    </testsuite>
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from soak.reports.brief import brief, place
from soak.reports.ci_result import ERROR, FAIL, CiResult, TargetResult
from soak.reports.comparison import change_text
from soak.reports.text import render_text
from soak.verdicts import fails

TOP = 3
"""Findings named in a failure's message."""


def failure_message(result: TargetResult) -> str:
    """``leak at app.py:16 +380.2 MiB/h; ...``, led by regressions against the baseline."""
    parts: list[str] = []
    if result.comparison is not None:
        parts.extend(f"regression vs baseline at {place(c.finding)}: {change_text(c)}" for c in result.comparison.regressions[:TOP])
    if result.report is not None:
        parts.extend(brief(f) for f in result.report.findings[:TOP])
    return "; ".join(parts) or f"verdict {result.verdict}"


def render_junit(result: CiResult) -> str:
    suite = ET.Element("testsuite", {
        "name": "leaksoak",
        "tests": str(len(result.targets)),
        "failures": str(sum(t.outcome == FAIL for t in result.targets)),
        "errors": str(sum(t.outcome == ERROR for t in result.targets)),
        "time": f"{sum(t.report.run.duration_s for t in result.targets if t.report):.3f}",
    })
    for target in result.targets:
        case = ET.SubElement(suite, "testcase", {
            "classname": "leaksoak",
            "name": target.target,
            "time": f"{target.report.run.duration_s:.3f}" if target.report else "0",
        })
        text = render_text(target.report) if target.report else ""
        if target.outcome == FAIL:
            kind = "regression" if target.regressed and not fails(target.verdict, result.fail_on) else target.verdict
            ET.SubElement(case, "failure", {"message": failure_message(target), "type": kind}).text = text
        elif target.outcome == ERROR:
            message = f"run {target.status}: {target.reason}" if target.reason else f"run {target.status}"
            ET.SubElement(case, "error", {"message": message, "type": target.status}).text = text or message
        elif text:
            ET.SubElement(case, "system-out").text = text
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
