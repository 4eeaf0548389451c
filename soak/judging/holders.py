"""When to search holder chains, and how they reach the findings: the supervisor's side of
soak.inprocess.probes.holders.

A type or site finding that is suspected (or a leak) is searched once per segment: its subject
goes with the next snapshot request, the worker searches after the snapshot's probes have read
(bounded by ``soak.inprocess.probes.holders.SEARCH_LIMIT_S``, recorded as the snapshot's ``holders``
pause), and storage keeps the latest evidence per subject. Each analysis refresh copies it into
the findings' evidence, so every report format shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlite_utils import Database

from soak.inprocess.probes.holders import MAX_SUBJECTS
from soak.model.finding import Finding
from soak.storage import queries

SEARCHED_KINDS = ("type", "site")


def subject_of(finding: Finding) -> str | None:
    """The finding's holder subject: ``type:<module.qualname>`` or ``site:<stack id>``."""
    if finding.type:
        return f"type:{finding.type}"
    if finding.kind == "site" and finding.stack_id is not None:
        return f"site:{finding.stack_id}"
    return None


def requests_for(db: Database, rows: Sequence[Finding], searched: set[str], sites: bool) -> list[dict[str, Any]]:
    """Holder search requests for the most severe findings not searched yet (``searched`` holds
    subjects already asked for). Sites only when ``sites`` (the worker's tracer is one of
    :data:`soak.inprocess.probes.tracer.SITE_TRACERS`)."""
    candidates = []
    for row in rows:
        subject = subject_of(row)
        if subject is None or subject in searched or (row.kind == "site" and not sites):
            continue
        candidates.append((subject, row))
    # the most severe of each kind first, then by severity: sites rank before types, and a type
    # must not wait for every site's searches (three tries each) to end
    firsts = [next(c for c in candidates if c[1].kind == kind) for kind in SEARCHED_KINDS
              if any(c[1].kind == kind for c in candidates)]
    wanted = (firsts + [c for c in candidates if c not in firsts])[:MAX_SUBJECTS]
    frames = queries.stack_frames(db, [row.stack_id for _, row in wanted if row.kind == "site" and row.stack_id])
    requests: list[dict[str, Any]] = []
    for subject, row in wanted:
        if row.kind == "type":
            requests.append({"key": subject, "type": row.type})
        elif row.stack_id in frames:
            requests.append({"key": subject, "frames": [[f.file, f.line] for f in frames[row.stack_id]]})
    return requests


def with_holders(db: Database, run_id: int, rows: list[Finding]) -> list[Finding]:
    """The rows with the stored holder evidence of their subjects in their evidence, and the site
    findings whose objects one container holds (a dict's keys and its values, say) made one: the
    most severe stays, with the others as its ``member_sites`` and their growth added to its own."""
    found = queries.holders(db, run_id)
    if not found:
        return rows
    out = []
    for row in rows:
        evidence = found.get(subject_of(row) or "")
        if evidence is not None:
            row = replace(row, evidence={**row.evidence, **evidence})
        out.append(row)
    return _one_per_container(out)


def _one_per_container(rows: list[Finding]) -> list[Finding]:
    containers: dict[tuple[Any, Any], list[int]] = {}
    for index, row in enumerate(rows):
        container = row.evidence.get("holder_container")
        if row.kind == "site" and row.evidence.get("held_by") and container is not None:
            containers.setdefault((row.evidence.get("segment"), container), []).append(index)
    merged: dict[int, Finding] = {}
    dropped: set[int] = set()
    for members in containers.values():
        if len(members) < 2:
            continue
        head, rest = rows[members[0]], [rows[i] for i in members[1:]]
        # a site finding's traceback is its stack's
        sites = [{**row.traceback[0].as_dict(), "growth_bytes_per_hour": row.growth_bytes_per_hour}
                 for row in rest if row.stack_id is not None and row.traceback]
        merged[members[0]] = replace(
            head,
            growth_bytes_per_hour=sum(row.growth_bytes_per_hour or 0.0 for row in (head, *rest)),
            growth_count_per_hour=sum(row.growth_count_per_hour or 0.0 for row in (head, *rest)),
            evidence={**head.evidence, "member_sites": sites},
        )
        dropped.update(members[1:])
    return [merged.get(i, row) for i, row in enumerate(rows) if i not in dropped]
