"""The text report: the verdict first, then each finding with its rate, line and traceback."""

from __future__ import annotations

import os

from soak.durations import format_duration
from soak.reports.model import FindingInfo, FrameInfo, Report
from soak.sources import source_line


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError


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


def _frame(frame: FrameInfo) -> str:
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
    lines.append("")
    lines.append(f"verdict: {report.verdict.upper()}" + verdict_note(report))
    for number, finding in enumerate(report.findings, 1):
        lines.append("")
        lines.extend(_finding(number, finding))
    notable = [e for e in report.events if e["kind"] in NOTABLE_EVENTS or (e["kind"] == "worker_exit" and run.status == "failed")]
    if notable:
        lines.append("")
        lines.append("events:")
        lines.extend(f"  at {format_duration(e['t_s'])}: {e['kind']}: {e['message']}" for e in notable)
    return "\n".join(lines) + "\n"


NOTABLE_EVENTS = ("resume", "restart", "signal", "snapshot_timeout")


def verdict_note(report: Report) -> str:
    """What follows the verdict: how many leaks and suspects, or why there are none."""
    if report.verdict == "clean":
        return " - nothing grows significantly"
    if report.verdict == "inconclusive":
        return " - too few snapshots after warm-up to judge; run longer or snapshot more often"
    leaks = sum(f.verdict == "leak" for f in report.findings)
    suspects = len(report.findings) - leaks
    return f" - {leaks} leaking, {suspects} suspect"


def _finding(number: int, finding: FindingInfo) -> list[str]:
    rate = finding.growth_bytes_per_hour
    count_rate = finding.growth_count_per_hour
    head = f"{number}. {finding.verdict.upper()} +{human_bytes(rate)}/hour"
    if count_rate is not None:
        head += f" (+{count_rate:,.0f} objects/hour)"
    if finding.p_value is not None:
        head += f", p={finding.p_value:.1e}"
    if finding.detected_at_s is not None:
        head += f", first detected at {format_duration(finding.detected_at_s)}"
    out = [head]
    if finding.kind == "process":
        out.append(f"   the worker's {finding.resource.upper() if finding.resource else 'memory'} grows "
                   "(no allocation tracer ran, so no line can be named)")
    where = finding.where
    if where:
        out.append(f"   {_frame(where)}" + (f"  [{finding.library}]" if finding.library != "application" else ""))
        text = source_line(where.file, where.line)
        if text:
            out.append(f"       {text}")
    if finding.call_site:
        out.append(f"   called from {_frame(finding.call_site)}")
        text = source_line(finding.call_site.file, finding.call_site.line)
        if text:
            out.append(f"       {text}")
    if len(finding.traceback) > 1:
        out.append("   traceback (allocation first):")
        out.extend(f"     {_frame(frame)}" for frame in finding.traceback)
    reason = why(finding)
    if reason:
        out.append(f"   why: {reason}")
    return out


def why(finding: FindingInfo) -> str | None:
    """The evidence in one sentence: slope and interval, the window after warm-up, the recent trend."""
    evidence = finding.evidence
    if "slope_interval" not in evidence:
        return None
    low, high = evidence["slope_interval"]
    start, end = evidence["window_s"]
    return (
        f"grows {human_bytes(evidence['slope_bytes_per_s'])}/s "
        f"(95% CI {human_bytes(low)}-{human_bytes(high)}/s) from {format_duration(start)} to {format_duration(end)} "
        f"(after warm-up), and still in the last part of it (p={evidence['recent_p_value']:.1e})"
    )
