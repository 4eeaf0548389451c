"""``--format markdown``: the report for a pull request comment or a CI step summary.

GitHub caps a step summary at 1 MiB, so the output is bounded whatever the run holds: the
20 most severe findings, 30 frames each, lines cut at 200 characters, and a note of what was
left out.
"""

from __future__ import annotations

import re

from soak.durations import format_duration
from soak.judging.sources import source_line
from soak.model.finding import Finding, Frame
from soak.model.report import Report
from soak.reports.accepted import NOTE, SECTION, accepted_by
from soak.reports.pauses import pause_note
from soak.reports.presenter import first_frame, growth, human_bytes, label, subject, unit_of, why
from soak.reports.text import NOTABLE_EVENTS, display_path, format_confidence, projection_note, tracing_note, verdict_note
from soak.reports.tree import process_line, tree_headline

MAX_FINDINGS = 20
MAX_FRAMES = 30
MAX_EVENTS = 20
MAX_LINE = 200

_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&])")


def text(value: str) -> str:
    """Plain text in Markdown: on one line, with Markdown and HTML specials escaped."""
    return _SPECIAL.sub(r"\\\1", _cut(value))


def code(value: str, *, cell: bool = False) -> str:
    """An inline code span that shows ``value`` as is, whatever backticks it holds.

    In a table ``cell``, ``|`` is escaped as GitHub requires (the escape does not show).
    """
    value = _cut(value)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    span = f"{fence}{pad}{value}{pad}{fence}"
    return span.replace("|", "\\|") if cell else span


def _cut(value: str, *, keep_spaces: bool = False) -> str:
    """One line of at most MAX_LINE characters."""
    value = str(value).replace("\r", " ").replace("\n", " ") if keep_spaces else " ".join(str(value).split())
    return value if len(value) <= MAX_LINE else value[: MAX_LINE - 1] + "…"


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown: the verdict, a findings table, then tracebacks."""
    run = report.run
    out = [
        f"## leaksoak: {report.verdict.upper()} — run {run.id} {code(run.name)}",
        "",
        f"**Verdict: {report.verdict.upper()}** — {text(verdict_note(report).lstrip(' -'))}",
        "",
        "| run | |",
        "|---|---|",
        f"| target | {code(run.target, cell=True)} |",
        f"| status | {text(run.status)}" + (f" — {text(run.status_reason)}" if run.status_reason else "") + " |",
        f"| length | {format_duration(run.duration_s)}, {run.snapshots:,} snapshots, {run.iterations:,} calls |",
    ]
    first, last = report.first_snapshot, report.last_snapshot
    if first and last:
        memory = f"RSS {human_bytes(first['rss'])} → {human_bytes(last['rss'])}"
        if last.get("traced_bytes") is not None:
            memory += f", traced heap {human_bytes(first['traced_bytes'])} → {human_bytes(last['traced_bytes'])}"
        out.append(f"| memory | {memory} |")
    tracing = tracing_note(report)
    if tracing:
        out.append(f"| tracer | {text(tracing)} |")
    pauses = pause_note(report.pauses)
    if pauses:
        out.append(f"| pauses | {text(pauses)} |")
    projection = projection_note(report.analysis.get("projection")).strip()
    if projection:
        out.append(f"| projection | {text(projection)} |")
    if report.processes:
        out += ["", "### Processes", "", *(f"- {text(process_line(process))}" for process in report.processes)]
    if report.tree_findings:
        out += ["", "### Findings across the processes", "",
                *(f"{number}. {text(tree_headline(tree))}" for number, tree in enumerate(report.tree_findings[:MAX_FINDINGS], 1))]
    shown = report.findings[:MAX_FINDINGS]
    if shown:
        out += ["", "### Findings", "",
                "| # | verdict | where | library | growth | objects | confidence | detected at |",
                "|---|---|---|---|---:|---:|---:|---:|"]
        out += [_row(number, finding) for number, finding in enumerate(shown, 1)]
        left_out = len(report.findings) - len(shown)
        if left_out:
            out += ["", f"*{left_out:,} more findings not shown: the {len(shown)} most severe are listed; "
                        "`soak report --format json` has them all.*"]
        for number, finding in enumerate(shown, 1):
            out += ["", *_details(number, finding)]
    out += _accepted(report)
    notable = [e for e in report.events
               if e["kind"] in NOTABLE_EVENTS or (e["kind"] == "worker_exit" and run.status in ("failed", "oom-killed"))]
    if notable:
        out += ["", "### Events", ""]
        out += [f"- at {format_duration(e['t_s'])}: {text(e['kind'])}: {text(e['message'])}" for e in notable[:MAX_EVENTS]]
        if len(notable) > MAX_EVENTS:
            out.append(f"- *{len(notable) - MAX_EVENTS:,} more not shown*")
    return "\n".join(out) + "\n"


def _accepted(report: Report) -> list[str]:
    """A table of the accepted findings with the rule of each, and the warnings about the rules."""
    out = []
    shown = report.accepted[:MAX_FINDINGS]
    if shown:
        out += ["", f"### {SECTION}", "", f"*{NOTE}*", "",
                "| # | verdict | where | library | growth | rule | reason |", "|---|---|---|---|---:|---|---|"]
        for number, accepted in enumerate(shown, 1):
            finding = accepted.finding
            cells = [f"A{number}", finding.verdict.upper(), _where(finding, cell=True), text(finding.library or finding.kind),
                     text(growth(finding)), text(accepted_by(accepted)), text(accepted.reason or "")]
            out.append("| " + " | ".join(cells) + " |")
        if len(report.accepted) > len(shown):
            out += ["", f"*{len(report.accepted) - len(shown):,} more accepted findings not shown.*"]
    if report.suppression_warnings:
        out += ["", "**Suppression rules:**", ""]
        out += [f"- warning: {text(warning)}" for warning in report.suppression_warnings]
    return out


def _where(finding: Finding, *, cell: bool = False) -> str:
    where = finding.where
    if where:
        return f"{code(f'{display_path(where.file)}:{where.line}', cell=cell)} in {code(where.function, cell=cell)}"
    return text(label(finding) or finding.kind)


def _row(number: int, finding: Finding) -> str:
    counted = unit_of(finding) != "bytes"
    objects = f"+{finding.growth_count_per_hour:,.0f}/hour" if finding.growth_count_per_hour is not None else "–"
    detected = format_duration(finding.detected_at_s) if finding.detected_at_s is not None else "–"
    cells = [
        str(number),
        finding.verdict.upper(),
        _where(finding, cell=True),
        text(finding.library or finding.kind),
        "–" if counted else f"+{human_bytes(finding.growth_bytes_per_hour)}/hour",
        text(growth(finding)) if counted else objects,
        text(format_confidence(finding.confidence)),
        detected,
    ]
    return "| " + " | ".join(cells) + " |"


def _details(number: int, finding: Finding) -> list[str]:
    out = [f"#### {number}. {finding.verdict.upper()} {_where(finding)}"]
    what = subject(finding)
    if what:
        out += ["", text(what)]
    reason = why(finding)
    if reason:
        out += ["", f"why: {text(reason)}"]
    if finding.call_site:
        out += ["", f"called from {code(_frame(finding.call_site))}"]
    if finding.traceback:
        lines = [f"Traceback ({first_frame(finding)} frame first):"]
        for frame in finding.traceback[:MAX_FRAMES]:
            lines.append(f"  {_frame(frame)}")
            source = source_line(frame.file, frame.line)
            if source:
                lines.append(f"    {_cut(source, keep_spaces=True)}")
        if len(finding.traceback) > MAX_FRAMES:
            lines.append(f"  ... {len(finding.traceback) - MAX_FRAMES} more frames")
        block = "\n".join(lines)
        fence = "`" * max(3, max((len(run) + 1 for run in re.findall(r"`{3,}", block)), default=3))
        out += ["", fence, block, fence]
    return out


def _frame(frame: Frame) -> str:
    return _cut(f"{display_path(frame.file)}:{frame.line} in {frame.function}")
