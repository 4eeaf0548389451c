"""The text report: the verdict first, then each finding with its rate, line and traceback."""

from __future__ import annotations

import os

from soak.durations import format_duration
from soak.judging.sources import source_line
from soak.model.finding import Finding, Frame
from soak.model.report import Projection, Report
from soak.reports.accepted import NOTE, SECTION, accepted_headline, accepted_note
from soak.reports.pauses import pause_note
from soak.reports.presenter import first_frame, growth, human_bytes, subject, why
from soak.reports.tree import tree_lines


def tracing_note(report: Report) -> str | None:
    """Says that heap figures are estimates, and at which interval, when the tracer sampled."""
    interval = report.sample_interval
    if interval is None:
        return None
    return (f"heap figures are estimates from allocations sampled every {human_bytes(interval)} on average "
            "(--tracer exact traces every one, at many times the cost)")


def format_confidence(confidence: float | None) -> str:
    """1 − q as a percentage, e.g. ``99.87%``; ``>99.99%`` rather than a rounded 100%."""
    if confidence is None:
        return "?"
    percent = confidence * 100
    return ">99.99%" if percent > 99.99 else f"{percent:.2f}%"


def display_path(file: str) -> str:
    """Relative to the working directory when under it, else as stored."""
    rel = os.path.relpath(file) if os.path.isabs(file) else file
    return file if rel.startswith("..") else rel


def _frame(frame: Frame) -> str:
    return f"{display_path(frame.file)}:{frame.line} in {frame.function}"


def render_text(report: Report) -> str:
    run = report.run
    lines = [
        f"leaksoak run {run.id} '{run.name}' ({run.target})",
        f"  status: {run.status}" + (f" - {run.status_reason}" if run.status_reason else ""),
        f"  {format_duration(run.duration_s)}, {run.snapshots} snapshots, {run.iterations:,} calls",
    ]
    first, last = report.first_snapshot, report.last_snapshot
    if first and last:
        memory = f"  worker RSS {human_bytes(first['rss'])} -> {human_bytes(last['rss'])}"
        if last["traced_bytes"] is not None:
            memory += f", traced heap {human_bytes(first['traced_bytes'])} -> {human_bytes(last['traced_bytes'])}"
        lines.append(memory)
    tracing = tracing_note(report)
    if tracing:
        lines.append(f"  {tracing}")
    pauses = pause_note(report.pauses)
    if pauses:
        lines.append(f"  {pauses}")
    projection = projection_note(report.analysis.get("projection"))
    if projection:
        lines.append(projection)
    lines.append("")
    lines.append(f"verdict: {report.verdict.upper()}" + verdict_note(report))
    lines.extend(tree_lines(report))
    for number, finding in enumerate(report.findings, 1):
        lines.append("")
        lines.extend(_finding(number, finding))
    lines.extend(_accepted(report))
    notable = [e for e in report.events
               if e["kind"] in NOTABLE_EVENTS or (e["kind"] == "worker_exit" and run.status in ("failed", "oom-killed"))]
    if notable:
        lines.append("")
        lines.append("events:")
        lines.extend(f"  at {format_duration(e['t_s'])}: {e['kind']}: {e['message']}" for e in notable)
    return "\n".join(lines) + "\n"


NOTABLE_EVENTS = ("resume", "restart", "signal", "snapshot_timeout", "snapshot_failed", "snapshot_skipped", "oom_kill")


def verdict_note(report: Report) -> str:
    """What follows the verdict: how many leaks and suspects, or why there are none, and how
    many findings suppression rules accepted."""
    if report.verdict == "clean":
        return (" - nothing else grows significantly" if report.accepted else " - nothing grows significantly") + accepted_note(report)
    if report.verdict == "inconclusive":
        needed = report.analysis.get("needed_s")
        longer = f"run for at least {format_duration(needed)}" if needed else "run longer"
        return f" - too few snapshots after warm-up to judge; {longer} or snapshot more often"
    if report.processes:  # a watched tree: its findings judged together
        leaks = sum(t.verdict == "leak" for t in report.tree_findings)
        suspects = len(report.tree_findings) - leaks
        return f" - {leaks} leaking, {suspects} suspect, across {len(report.processes)} processes" + accepted_note(report)
    leaks = sum(f.verdict == "leak" for f in report.findings)
    suspects = len(report.findings) - leaks
    return f" - {leaks} leaking, {suspects} suspect" + accepted_note(report)


def _accepted(report: Report) -> list[str]:
    """The accepted findings, each with its rule, and the warnings about the rules."""
    out = []
    if report.accepted:
        out += ["", f"{SECTION.lower()} ({NOTE}):"]
        for number, accepted in enumerate(report.accepted, 1):
            finding = accepted.finding
            out.append(f"  A{number}. {accepted_headline(accepted)}")
            what = subject(finding)
            if what:
                out.append(f"       {what}")
            if finding.where:
                out.append(f"       {_frame(finding.where)}" + (f"  [{finding.library}]" if finding.library != "application" else ""))
            if finding.call_site:
                out.append(f"       called from {_frame(finding.call_site)}")
            if accepted.reason:
                out.append(f"       reason: {accepted.reason}")
    if report.suppression_warnings:
        out += ["", "suppression rules:"]
        out.extend(f"  warning: {warning}" for warning in report.suppression_warnings)
    return out


def _finding(number: int, finding: Finding) -> list[str]:
    head = f"{number}. {finding.verdict.upper()} {growth(finding)}"
    if finding.p_value is not None:
        head += f", p={finding.p_value:.1e}"
    if finding.detected_at_s is not None:
        head += f", first detected at {format_duration(finding.detected_at_s)}"
    out = [head]
    what = subject(finding)
    if what:
        out.append(f"   {what}")
    where = finding.where
    if where:
        out.append(f"   {_frame(where)}" + (f"  [{finding.library}]" if finding.library != "application" else ""))
        text = source_line(where.file, where.line)
        if text:
            out.append(f"       {text}")
    library_at = finding.evidence.get("library_at")
    if isinstance(library_at, dict):  # the library that blocked, below the stdlib line it blocked in
        frame = Frame.of(library_at)
        out.append(f"   in {finding.library} at {_frame(frame)}")
        text = source_line(frame.file, frame.line)
        if text:
            out.append(f"       {text}")
    if finding.call_site:
        out.append(f"   called from {_frame(finding.call_site)}")
        text = source_line(finding.call_site.file, finding.call_site.line)
        if text:
            out.append(f"       {text}")
    if len(finding.traceback) > 1:
        out.append(f"   traceback ({first_frame(finding)} first):")
        out.extend(f"     {_frame(frame)}" for frame in finding.traceback)
    reason = why(finding)
    if reason:
        out.append(f"   why: {reason}")
    return out


def projection_note(projection: Projection | None) -> str:
    """One line: how fast the measured process's memory grows, and when it reaches its limit."""
    if projection is None:
        return ""
    growth = projection["growth_bytes_per_hour"]
    if projection.get("memory_bytes") is None:
        return ""
    what = "cgroup memory" if projection.get("limit_source") == "cgroup" else "RSS"
    limit = projection.get("limit_bytes")
    if growth <= 0:
        text = f"  {what} is not growing"
        return text + (f" ({human_bytes(projection['memory_bytes'])} of the {human_bytes(limit)} limit)" if limit else "")
    text = f"  {what} grows {human_bytes(growth)}/hour"
    seconds = projection.get("seconds_until_limit")
    if limit and seconds is not None:
        text += (f": {human_bytes(projection['memory_bytes'])} now; at this rate the {human_bytes(limit)} limit"
                 f" ({projection['limit_source']}) is reached in about {format_duration(seconds)}")
    else:
        text += " (give --memory-limit for a projection)"
    return text
