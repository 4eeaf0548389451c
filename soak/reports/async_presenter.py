"""How an ``async`` finding reads (a blocked event loop, a thread pool behind an ``await``):
the presenter's entries for the kind, used by every report format through soak.reports.presenter."""

from __future__ import annotations

from soak.durations import format_duration
from soak.model.finding import Finding


def milliseconds(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _blocked(finding: Finding) -> bool:
    return finding.evidence.get("measure") == "blocked_share"


def growth(finding: Finding) -> str:
    """The headline: ``a call blocked the event loop 85% of the time (lag p99 101 ms)`` or
    ``82% of the callers' time waiting in a thread pool``."""
    evidence = finding.evidence
    share = float(evidence.get("share") or 0.0)
    if _blocked(finding):
        return f"a call blocked the event loop {share:.0%} of the time (lag p99 {milliseconds(evidence.get('lag_p99_s'))})"
    of = evidence.get("share_of") or "the callers' time"
    return f"{share:.0%} of {of} waiting in a thread pool"


def subject(finding: Finding) -> str:
    """What happens, in words, with the blocking call or the submitted function."""
    evidence = finding.evidence
    where = finding.where
    if _blocked(finding):
        text = (f"a call blocks the event loop for more than {milliseconds(evidence.get('block_s'))}:"
                f" {evidence.get('count', 0):,} blocks at this line so far, {milliseconds(evidence.get('max_s'))} the longest")
        if evidence.get("loop_share") is not None:
            text += f"; the loop was blocked {evidence['loop_share']:.0%} of the time in all"
        return text
    function = f"{where.function}()" if where else "a call"
    executor = evidence.get("executor") or "a thread pool"
    return (f"{function} is async outside and a thread pool inside: it ran {evidence.get('submitted', '?')} in "
            f"{executor}, {evidence.get('submits_total', 0):,} times")


def label(finding: Finding) -> str:
    """A short name: ``event loop block rag.py:27 <- rag.py:53`` or ``thread pool: client.py:15 <- app.py:13``."""
    if _blocked(finding):
        return f"event loop {finding.evidence.get('series')}"
    return f"thread pool: {finding.evidence.get('series')}"


def first_frame(finding: Finding) -> str:
    return "blocking" if _blocked(finding) else "submitting"


def why(finding: Finding) -> str | None:
    """The measurement: the share in each half of the window, against its threshold."""
    evidence = finding.evidence
    if "share_halves" not in evidence:
        return None
    first, second = evidence["share_halves"]
    start, end = evidence["window_s"]
    text = (f"{first:.0%} and {second:.0%} in the two halves of {format_duration(start)} to {format_duration(end)}"
            f" (after warm-up), above the {evidence['threshold_share']:.0%} threshold")
    if _blocked(finding):
        text += (f"; lag p50 {milliseconds(evidence.get('lag_p50_s'))}, p99 {milliseconds(evidence.get('lag_p99_s'))},"
                 f" max {milliseconds(evidence.get('lag_max_s'))} (heartbeat every {milliseconds(evidence.get('heartbeat_s'))})")
    elif evidence.get("submits_per_s") is not None:
        text += f"; {evidence['submits_per_s']:,.1f} submissions/s"
    return text

