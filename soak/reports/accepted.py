"""How accepted findings and the rules that accepted them read, in every report format.

A finding a suppression rule accepted is never dropped: each format shows it in a section of
its own, with the rule's id and the growth it accepted; the verdict leaves it out.
"""

from __future__ import annotations

from soak.judging.suppressions import format_rate
from soak.model.report import AcceptedFinding, Report
from soak.reports.presenter import growth

SECTION = "Accepted by suppression rules"
NOTE = "known growth, not counted in the verdict"


def rule_detail(accepted: AcceptedFinding) -> str:
    """``leaksoak.toml:2, up to 5 MB/h``: where the rule is and the growth it tolerates."""
    parts = [accepted.source] if accepted.source else []
    if accepted.max_growth_bytes_per_hour is not None:
        parts.append(f"up to {format_rate(accepted.max_growth_bytes_per_hour)}")
    return ", ".join(parts)


def accepted_by(accepted: AcceptedFinding) -> str:
    """``accepted by 'session-cache' (leaksoak.toml:2, up to 5 MB/h)``."""
    detail = rule_detail(accepted)
    return f"accepted by {accepted.rule!r}" + (f" ({detail})" if detail else "")


def accepted_headline(accepted: AcceptedFinding) -> str:
    """``LEAK +1.2 MiB/hour, accepted by 'session-cache' (leaksoak.toml:2)``: the growth accepted and the rule."""
    return f"{accepted.finding.verdict.upper()} {growth(accepted.finding)}, {accepted_by(accepted)}"


def accepted_note(report: Report) -> str:
    """``; 2 accepted by suppression rules``, or nothing."""
    return f"; {len(report.accepted)} accepted by suppression rules" if report.accepted else ""


def rule_states(report: Report) -> list[str]:
    """``expired: a, b``, ``unused: c``, ``too broad: d``: the rules that need a look."""
    status = report.suppressions
    pairs = (("expired", status.expired), ("unused", status.unused), ("too broad", status.too_broad))
    return [f"{name}: {', '.join(ids)}" for name, ids in pairs if ids]
