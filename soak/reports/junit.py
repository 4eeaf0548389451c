"""JUnit XML for ``soak ci``: one test case per target, a failure naming the top findings; a
passing test case per finding a suppression rule accepted, naming the rule.

    <testsuite name="leaksoak" tests="3" failures="1" errors="0" time="20.1">
      <testcase classname="leaksoak" name="app.py:handle" time="10.0">
        <failure message="leak at app.py:16 +380.2 MiB/h; ..." type="leak">the text report</failure>
      </testcase>
      <testcase classname="leaksoak.accepted" name="app.py:handle: leak at app.py:30 +2.0 MiB/h" time="0">
        <system-out>accepted by 'session-cache' (leaksoak.toml:2): reason ...</system-out>
      </testcase>
    </testsuite>
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from soak.model.verdicts import fails
from soak.reports.accepted import accepted_by
from soak.reports.brief import brief, place
from soak.reports.ci_result import ERROR, FAIL, CiResult, TargetResult
from soak.reports.comparison import change_text
from soak.reports.text import render_text

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
    accepted = [(t, a) for t in result.targets if t.report is not None for a in t.report.accepted]
    unused_case = result.fail_on_unused_suppressions
    suite = ET.Element("testsuite", {
        "name": "leaksoak",
        "tests": str(len(result.targets) + len(accepted) + unused_case),
        "failures": str(sum(t.outcome == FAIL for t in result.targets) + result.unused_fail),
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
    for target, taken in accepted:
        case = ET.SubElement(suite, "testcase", {"classname": "leaksoak.accepted", "name": f"{target.target}: {brief(taken.finding)}",
                                                 "time": "0"})
        ET.SubElement(case, "system-out").text = (f"{accepted_by(taken)}: {taken.reason or ''}\n"
                                                  f"finding {taken.finding.finding_id}: {brief(taken.finding)}\n")
    if unused_case:
        case = ET.SubElement(suite, "testcase", {"classname": "leaksoak", "name": "unused suppressions", "time": "0"})
        if result.unused_fail:
            message = f"suppression rule(s) matched no finding in any target's run: {', '.join(result.unused_suppressions)}"
            ET.SubElement(case, "failure", {"message": message, "type": "unused_suppressions"}).text = message
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
