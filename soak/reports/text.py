"""The text report: the verdict first, then each finding with its rate, line and traceback."""

from __future__ import annotations

import os
from typing import Any

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
    tracing = tracing_note(report)
    if tracing:
        lines.append(f"  {tracing}")
    projection = projection_note(report.analysis.get("projection") or {})
    if projection:
        lines.append(projection)
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


NOTABLE_EVENTS = ("resume", "restart", "signal", "snapshot_timeout", "snapshot_failed")


def verdict_note(report: Report) -> str:
    """What follows the verdict: how many leaks and suspects, or why there are none."""
    if report.verdict == "clean":
        return " - nothing grows significantly"
    if report.verdict == "inconclusive":
        needed = report.analysis.get("needed_s")
        longer = f"run for at least {format_duration(needed)}" if needed else "run longer"
        return f" - too few snapshots after warm-up to judge; {longer} or snapshot more often"
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
    """The evidence in one line: the slope of the series' floor and its interval, where the
    analysed window starts and why, and that growth goes on lately (with the early rate beside it)."""
    evidence, q_value = finding.evidence, finding.q_value
    if "slope_interval" not in evidence:
        return None
    low, high = evidence["slope_interval"]
    start, end = evidence["window_s"]
    since = "a change of growth rate" if evidence.get("regime_shift") else "warm-up"
    text = (f"floor grows {human_bytes(evidence['slope_bytes_per_s'])}/s (95% CI {human_bytes(low)}-{human_bytes(high)}/s"
            + (f", q={q_value:.1e}" if q_value is not None else "")
            + f") from {format_duration(start)} (after {since}) to {format_duration(end)}")
    if "recent_slope_bytes_per_s" in evidence:
        text += (f"; still {human_bytes(evidence['recent_slope_bytes_per_s'])}/s lately"
                 f" (p={evidence['recent_p_value']:.1e}) vs {human_bytes(evidence.get('early_slope_bytes_per_s'))}/s early")
    if evidence.get("sites"):
        text += f"; {evidence['sites']} allocation sites in the library summed"
    if evidence.get("slowing"):
        text += f"; growth slowed at {format_duration(evidence['pending_shift_at_s'])}, too recently to judge"
    return text


def projection_note(projection: dict[str, Any]) -> str:
    """One line: how fast the measured process's memory grows, and when it reaches its limit."""
    growth = projection.get("growth_bytes_per_hour")
    if growth is None or projection.get("memory_bytes") is None:
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
