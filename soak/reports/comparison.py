"""``soak compare`` output: text for people, JSON (schema ``leaksoak.compare/1``) for scripts."""

from __future__ import annotations

import json
from typing import Any

from soak.judging.compare import Comparison, FindingChange, MemoryChange, Rate, TargetComparison
from soak.reports.brief import place, rate

SCHEMA = "leaksoak.compare/1"

LABELS = {
    "new_leak": "NEW LEAK", "new_suspect": "new suspect", "increased": "INCREASED", "decreased": "decreased",
    "unchanged": "unchanged", "gone": "gone", "accepted": "accepted",
}


def change_text(change: FindingChange) -> str:
    """``+190.1 MiB/h -> +380.2 MiB/h (2.00x)``, or the one side there is."""
    if change.base is not None and change.new is not None:
        ratio = change.ratio
        return f"{rate(change.base.per_hour)} -> {rate(change.new.per_hour)}" + (f" ({ratio:.2f}x)" if ratio else "")
    if change.new is not None:
        return f"{rate(change.new.per_hour)}, not in the baseline"
    return f"was {rate(change.base.per_hour) if change.base else '?'}, not found now"


def memory_text(memory: MemoryChange) -> str:
    def one(r: Rate | None) -> str:
        return rate(r.per_hour) if r else "too few snapshots"

    return f"{memory.series} {one(memory.base)} -> {one(memory.new)}" + (f" ({memory.change})" if memory.change else "")


def render_comparison_text(comparison: Comparison) -> str:
    regressed = sum(t.status == "regression" for t in comparison.targets)
    lines = [
        f"leaksoak compare: base {comparison.base_db}, new {comparison.new_db}",
        "",
        (f"REGRESSION - {regressed} of {len(comparison.targets)} target(s) regressed" if regressed
         else f"OK - no regression in {len(comparison.targets)} target(s)"),
    ]
    for target in comparison.targets:
        lines.append("")
        lines.extend(_target_lines(target))
    lines.append("")
    lines.append(f"(a rate changed when the 95% intervals do not overlap and it changed at least {comparison.min_ratio:g}x)")
    return "\n".join(lines) + "\n"


def _target_lines(target: TargetComparison) -> list[str]:
    new = target.new_run
    if target.base_run is None:
        return [f"{target.target}: no baseline (new run {new.id}, {new.verdict})"]
    base = target.base_run
    lines = [
        f"{target.target}: {target.status.replace('_', ' ').upper()}",
        f"  base run {base.id} ({base.verdict}), new run {new.id} ({new.verdict})",
    ]
    if target.memory is not None:
        lines.append(f"  memory: {memory_text(target.memory)}")
    for change in target.findings:
        lines.append(f"  {LABELS[change.change]:<11} {place(change.finding)}  {change_text(change)}"
                     + (f"  (by suppression {change.rule!r})" if change.rule else ""))
    if not target.findings:
        lines.append("  no findings in either run")
    return lines


def _rate(r: Rate | None) -> dict[str, Any] | None:
    return r.as_dict() if r else None


def comparison_dict(comparison: Comparison) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "base_db": comparison.base_db,
        "new_db": comparison.new_db,
        "min_ratio": comparison.min_ratio,
        "regression": comparison.regression,
        "targets": [_target(t) for t in comparison.targets],
    }


def _target(target: TargetComparison) -> dict[str, Any]:
    def run(ref: Any) -> dict[str, Any] | None:
        return None if ref is None else {"id": ref.id, "name": ref.name, "status": ref.status, "verdict": ref.verdict}

    memory = target.memory
    return {
        "target": target.target,
        "status": target.status,
        "base_run": run(target.base_run),
        "new_run": run(target.new_run),
        "memory": None if memory is None else {
            "series": memory.series, "base": _rate(memory.base), "new": _rate(memory.new), "change": memory.change,
        },
        "findings": [
            {
                "id": c.finding_id,
                "change": c.change,
                "regression": c.regression,
                "kind": c.finding.kind,
                "where": c.finding.where.as_dict() if c.finding.where else None,
                "call_site": c.finding.call_site.as_dict() if c.finding.call_site else None,
                "base_verdict": c.base_verdict,
                "new_verdict": c.new_verdict,
                "base": _rate(c.base),
                "new": _rate(c.new),
                "ratio": c.ratio,
                "rule": c.rule,
            }
            for c in target.findings
        ],
    }


def render_comparison(comparison: Comparison, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(comparison_dict(comparison), indent=2) + "\n"
    return render_comparison_text(comparison)
