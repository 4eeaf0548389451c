"""The Markdown summary of ``soak ci`` (for ``$GITHUB_STEP_SUMMARY``): a table of the targets,
then the top findings of each failing one. GitHub refuses step summaries over 1 MiB; this one
stops at :data:`MAX_BYTES` with a note."""

from __future__ import annotations

from typing import TYPE_CHECKING

from soak.durations import format_duration
from soak.judging.sources import source_line
from soak.reports.accepted import accepted_by
from soak.reports.brief import place, rate
from soak.reports.comparison import change_text

if TYPE_CHECKING:
    from soak.reports.ci_result import CiResult, TargetResult

MAX_BYTES = 256 * 1024
TOP = 5
"""Findings listed per failing target."""


def _cell(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _vs_baseline(target: TargetResult, baselined: bool) -> str:
    comparison = target.comparison
    if comparison is None:
        return "no baseline" if baselined and target.run_id is not None else "-"
    if comparison.status == "no_baseline":
        return "no baseline"
    if comparison.regressions:
        first = comparison.regressions[0]
        what = "new leak" if first.change == "new_leak" else f"{first.ratio:.2f}x faster" if first.ratio else "faster"
        more = f" (+{len(comparison.regressions) - 1} more)" if len(comparison.regressions) > 1 else ""
        return f"**regression**: {what} at {_code(place(first.finding))}{more}"
    if comparison.improvements:
        return f"improved ({len(comparison.improvements)} finding(s) gone or slower)"
    return "unchanged"


def _row(target: TargetResult, baselined: bool) -> str:
    verdict = target.verdict if target.status == "completed" else f"run {target.status}"
    top = target.report.findings[0] if target.report and target.report.findings else None
    cells = [
        _code(target.target),
        f"**{verdict}** ({target.outcome})" if target.outcome != "pass" else f"{verdict} (pass)",
        _code(place(top)) if top else "-",
        rate(top.growth_bytes_per_hour) if top else "-",
        _vs_baseline(target, baselined),
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _details(target: TargetResult) -> str:
    lines = [f"### {_code(target.target)}: {target.verdict if target.status == 'completed' else 'run ' + target.status}", ""]
    report = target.report
    if report is not None:
        run = report.run
        lines.append(f"Run {run.id} ({run.name}): {format_duration(run.duration_s)}, {run.snapshots} snapshots, {run.iterations:,} calls.")
        lines.append("")
    if target.outcome == "error":
        lines.append(f"The run did not complete: {target.reason or target.status}.")
        lines.append("")
    comparison = target.comparison
    if comparison is not None and comparison.regressions:
        lines.append("Regressions against the baseline:")
        lines.append("")
        lines.extend(f"- {_code(place(c.finding))}: {c.change.replace('_', ' ')}, {change_text(c)}" for c in comparison.regressions)
        lines.append("")
    findings = report.findings if report else []
    for number, finding in enumerate(findings[:TOP], 1):
        where = finding.where
        head = f"{number}. **{finding.verdict}** {rate(finding.growth_bytes_per_hour)} at {_code(place(finding))}"
        if where is not None:
            head += f" in {_code(where.function)}"
        if finding.p_value is not None:
            head += f", p={finding.p_value:.1e}"
        lines.append(head)
        text = source_line(where.file, where.line) if where is not None else None
        if text:
            lines.append(f"   {_code(text.strip())}")
    if len(findings) > TOP:
        lines.append(f"\n...and {len(findings) - TOP} more; `soak report --run {report.run.id if report else ''}` lists them all.")
    return "\n".join(lines) + "\n\n"


def render_summary(result: CiResult, max_bytes: int = MAX_BYTES) -> str:
    failed = [t for t in result.targets if t.outcome != "pass"]
    total = len(result.targets)
    head = (f"## leaksoak: {len(failed)} of {total} target(s) failed" if failed else f"## leaksoak: all {total} target(s) passed")
    baselined = any(t.comparison is not None for t in result.targets)
    blocks = [
        head + f" (fail on {result.fail_on})\n\n",
        "| target | verdict | top finding | growth/h | vs baseline |\n|---|---|---|---|---|\n",
    ]
    blocks.extend(_row(t, baselined) + "\n" for t in result.targets)
    blocks.append("\n")
    if result.bad_input:
        blocks.append(f"**Bad input:** {result.bad_input}\n\n")
    if result.interrupted:
        blocks.append("**Interrupted:** the remaining targets did not run.\n\n")
    if result.unused_suppressions:
        blocks.append(f"**Unused suppressions** (matched no finding in any target's run"
                      f"{'; they fail the job' if result.unused_fail else ''}): "
                      + ", ".join(_code(rule) for rule in result.unused_suppressions) + "\n\n")
    blocks.extend(_details(t) for t in failed)
    blocks.extend(_accepted(t) for t in result.targets if t.report is not None and t.report.accepted)
    return _capped(blocks, max_bytes)


def _accepted(target: TargetResult) -> str:
    """The findings of a target that suppression rules accepted, each with its rule and reason."""
    assert target.report is not None
    lines = [f"### {_code(target.target)}: accepted by suppression rules (not counted)", ""]
    for number, taken in enumerate(target.report.accepted[:TOP], 1):
        finding = taken.finding
        lines.append(f"{number}. {finding.verdict} {rate(finding.growth_bytes_per_hour)} at {_code(place(finding))}, "
                     f"{_cell(accepted_by(taken))}" + (f": {_cell(taken.reason)}" if taken.reason else ""))
    if len(target.report.accepted) > TOP:
        lines.append(f"\n...and {len(target.report.accepted) - TOP} more.")
    return "\n".join(lines) + "\n\n"


def _capped(blocks: list[str], max_bytes: int) -> str:
    """Whole blocks while they fit, then a note saying how many were left out."""
    note = "\n_Summary truncated: {n} more section(s) left out to stay under {size}; the JUnit report and `soak report` have everything._\n"
    out: list[str] = []
    used = 0
    reserve = len(note.encode()) + 32
    for index, block in enumerate(blocks):
        size = len(block.encode("utf-8"))
        if used + size + reserve > max_bytes:
            out.append(note.format(n=len(blocks) - index, size=f"{max_bytes // 1024} KiB"))
            break
        out.append(block)
        used += size
    return "".join(out)
