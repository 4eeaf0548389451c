"""How a finding reads, one presenter per kind, used by every report format.

A finding's growth is in its series' unit: bytes for ``site``, ``library`` and ``process``
findings, a count for ``resource`` findings (open fds of a kind, threads running a function,
asyncio tasks of a coroutine), live objects for ``type`` findings; ``async`` findings are shares of
time, not growth, and read as soak.reports.async_presenter says. Text, Markdown and HTML all take their headline rate, the line
saying what grows, and the evidence line from here.
"""

from __future__ import annotations

import os

from soak.durations import format_duration
from soak.model.finding import Finding
from soak.reports import async_presenter

RESOURCE_NOUNS = {"fds": "open file descriptors", "threads": "threads", "asyncio_tasks": "asyncio tasks"}
"""What the first resource probes count; a later probe names it in its series' evidence (``noun``)."""


def resource_noun(finding: Finding) -> str:
    """What a resource finding counts: its probe's ``noun``, else its probe's name."""
    noun = finding.evidence.get("noun") or RESOURCE_NOUNS.get(finding.resource or "")
    return str(noun or finding.resource or "resources")


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError


def unit_of(finding: Finding) -> str:
    """The unit of the finding's series: ``bytes``, or a probe series' own (``count``...)."""
    return str(finding.evidence.get("unit") or "bytes")


def amount(value: float | None, unit: str) -> str:
    """``1.2 MiB`` for bytes, ``3.5`` for a count."""
    if unit == "bytes":
        return human_bytes(value)
    if value is None:
        return "?"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2g}"


def growth(finding: Finding) -> str:
    """The headline rate: ``+1.2 MiB/hour (+41 objects/hour)``, ``+7,200 threads/hour``, or
    ``+41,000 `Request` objects/hour``."""
    if finding.kind == "async":
        return async_presenter.growth(finding)
    if finding.kind == "type":
        return f"+{amount(finding.growth_count_per_hour, 'objects')} `{short_type(finding)}` objects/hour"
    if unit_of(finding) != "bytes":
        noun = resource_noun(finding)
        return f"+{amount(finding.growth_count_per_hour, 'count')} {noun}/hour"
    text = f"+{human_bytes(finding.growth_bytes_per_hour)}/hour"
    if finding.growth_count_per_hour is not None:
        text += f" (+{finding.growth_count_per_hour:,.0f} objects/hour)"
    return text


UNEXPLAINED = "unexplained"
"""The ``resource`` of a process finding for memory the traced heap does not explain."""


def short_type(finding: Finding) -> str:
    """A type finding's type without its module: ``Request`` for ``app.models.Request``."""
    return str(finding.evidence.get("series") or "?").rpartition(".")[2]


def held_by(finding: Finding) -> str | None:
    """What keeps the finding's objects alive, from its holder search: ``held by
    `app.cache._RESPONSES` (dict)``; None when none was searched or found."""
    holder = finding.evidence.get("held_by")
    if not holder:
        return None
    text = f"held by `{holder}` ({finding.evidence.get('holder_type', '?')})"
    root, held, searched = (finding.evidence.get(k) for k in ("holder_root", "holder_samples", "holder_searched"))
    if root and held and searched:
        text += f", a {root}: {held} of {searched} sampled objects"
    members = finding.evidence.get("member_sites") or []
    if members:
        where = ", ".join(f"{os.path.basename(site['file'])}:{site['line']}" for site in members)
        text += f"; one leak with the {len(members)} other site(s) whose objects it holds: {where}"
    return text


def subject(finding: Finding) -> str | None:
    """What grows, for a finding with no allocation line (a process's memory, a resource, a
    type), and what holds it where a holder search found out."""
    what = _what_grows(finding)
    holder = held_by(finding)
    if what and holder:
        return f"{what}; {holder}"
    return what or holder


def _what_grows(finding: Finding) -> str | None:
    if finding.kind == "type":
        return f"live `{finding.evidence.get('series')}` objects pile up"
    if finding.kind == "async":
        return async_presenter.subject(finding)
    if finding.kind == "process" and finding.resource == UNEXPLAINED:
        if finding.evidence.get("native_tracked"):
            return ("the worker's RSS grows beyond the traced heap and the native sites: memory no hook saw"
                    " (e.g. an allocator called through a function pointer, such as one ctypes built from an address,"
                    " which memray's hooks cannot intercept)")
        return ("the worker's RSS grows beyond what the traced heap holds: memory allocated by C extensions or"
                " the C allocator; run with --native to see which native code allocates it and from which line")
    if finding.kind == "native":
        frame = finding.where
        what = f"{frame.function} in {finding.library}" if frame else finding.library
        return f"native memory allocated by {what} (no Python tracer sees it)"
    if finding.kind == "process":
        return (f"the worker's {finding.resource.upper() if finding.resource else 'memory'} grows "
                "(no allocation tracer ran, so no line can be named)")
    if finding.kind == "resource":
        series = finding.evidence.get("series")
        if finding.resource == "fds":
            return f"open file descriptors of kind {series} pile up"
        created = finding.evidence.get("created_by")
        return f"{resource_noun(finding)} pile up" + (f", created by {created}" if created else f": {series}" if series else "")
    return None


def label(finding: Finding) -> str | None:
    """A short name for a finding with no allocation line: ``worker RSS``, ``fds: socket``."""
    if finding.kind == "async":
        return async_presenter.label(finding)
    if finding.kind == "process" and finding.resource == UNEXPLAINED:
        return "worker RSS not in the traced heap"
    if finding.kind == "process":
        return f"worker {finding.resource.upper() if finding.resource else 'memory'}"
    if finding.kind == "resource":
        series = finding.evidence.get("series")
        return f"{finding.resource}: {series}" if series else finding.resource
    if finding.kind == "type":
        return f"type {finding.evidence.get('series')}"
    return None


def first_frame(finding: Finding) -> str:
    """What a finding's first frame is: ``allocation``, or for an async finding the
    ``blocking`` call or the ``submitting`` one (into a pool)."""
    if finding.kind == "async":
        return async_presenter.first_frame(finding)
    return "allocation"


def why(finding: Finding) -> str | None:
    """The evidence in one line: the slope of the series' floor and its interval, where the
    analysed window starts and why, and that growth goes on lately (with the early rate beside it)."""
    if finding.kind == "async":
        return async_presenter.why(finding)
    evidence, q_value = finding.evidence, finding.q_value
    if "slope_interval" not in evidence:
        return None
    unit = unit_of(finding)

    def per_s(value: float | None) -> str:
        return f"{amount(value, unit)}/s"

    low, high = evidence["slope_interval"]
    start, end = evidence["window_s"]
    since = "a change of growth rate" if evidence.get("regime_shift") else "warm-up"
    text = (f"floor grows {per_s(evidence['slope_bytes_per_s'])} (95% CI {amount(low, unit)}-{per_s(high)}"
            + (f", q={q_value:.1e}" if q_value is not None else "")
            + f") from {format_duration(start)} (after {since}) to {format_duration(end)}")
    if "recent_slope_bytes_per_s" in evidence:
        text += (f"; still {per_s(evidence['recent_slope_bytes_per_s'])} lately"
                 f" (p={evidence['recent_p_value']:.1e}) vs {per_s(evidence.get('early_slope_bytes_per_s'))} early")
    if evidence.get("sites"):
        text += f"; {evidence['sites']} allocation sites in the library summed"
    if evidence.get("slowing"):
        text += f"; growth slowed at {format_duration(evidence['pending_shift_at_s'])}, too recently to judge"
    return text
