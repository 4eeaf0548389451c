"""Analysis of a stored run: load its series, run the analyzers, store findings with attribution."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlite_utils import Database

from soak.analyzers import Analysis, Finding, Series, Thresholds, analyze
from soak.analyzers.rollup import Group, roll_up
from soak.analyzers.trend import Trend
from soak.analyzers.unexplained import unexplained_growth
from soak.inprocess.probes.native import NativeProbe
from soak.judging.async_findings import KIND as ASYNC_KIND
from soak.judging.async_findings import analyze_async, is_async, place
from soak.judging.attribution import APPLICATION, Attributor
from soak.judging.holders import with_holders
from soak.judging.judgement import Judgement, judge_rows
from soak.judging.native_attribution import native_attribution
from soak.model.verdicts import CLEAN, INCONCLUSIVE, LEAK, VERDICTS
from soak.storage import queries
from soak.storage.queries import ProbeSeries, probe_pauses
from soak.storage.writer import FindingRow, RunWriter

if TYPE_CHECKING:
    from soak.judging.suppressions import Rule


def finding_id(kind: str, frames: list[dict[str, object]]) -> str:
    """Stable across runs and machines: the kind and each frame's last two path parts and line."""
    parts = [kind]
    for frame in frames:
        path = str(frame["file"]).replace(os.sep, "/").split("/")
        parts.append(f"{'/'.join(path[-2:])}:{frame['line']}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def analyze_run(
    db: Database, run_id: int, thresholds: Thresholds, rows: list[dict[str, Any]] | None = None,
    attributor: Attributor | None = None,
) -> tuple[Analysis, dict[Hashable, Group]]:
    """Analyse the newest segment of the run that has enough snapshots to judge.

    Each segment (a resumed run's new worker) starts from a fresh heap, so segments are not
    joined into one series; until a new segment has enough points, the previous one speaks.
    ``rows`` are the run's snapshots, if the caller has them already. With an ``attributor``,
    library sites reached from one application line are rolled up (the groups are returned).
    """
    rows = queries.snapshots(db, run_id) if rows is None else rows
    segments = sorted({row["segment"] for row in rows}, reverse=True) or [0]
    results = []
    for segment in segments:
        result = _analyze_segment(db, run_id, [row for row in rows if row["segment"] == segment], thresholds, attributor)
        if result[0].verdict != "inconclusive":
            return result
        results.append(result)
    return results[0]


def _analyze_segment(
    db: Database, run_id: int, rows: list[dict[str, Any]], thresholds: Thresholds, attributor: Attributor | None,
) -> tuple[Analysis, dict[Hashable, Group]]:
    """Per-site series when an allocation tracer ran; the worker's RSS when none did.

    Keys are ``("site", stack_id)``, ``("library", library, (file, line))`` or ``("process", "rss")``.
    """
    # one read of the probes' series a refresh, on the segment's grid; subsets index into it
    stored = queries.probe_series(db, run_id, np.array([row["seq"] for row in rows], dtype=np.int64))
    probes = _analyze_probes(stored, rows, thresholds)
    if (loop := analyze_async(stored, rows, thresholds)) is not None:
        probes.append(loop)
    if not any(row["tracer"] for row in rows):
        times = np.array([row["t_s"] for row in rows], dtype=float)
        rss = np.array([row["rss"] or 0 for row in rows], dtype=float)
        return combine(analyze(times, [Series(("process", "rss"), rss)], thresholds, heap_bytes=_median(rss)), *probes), {}
    # Sites are series of the snapshots that read the heap: not of process-level readings taken
    # while a watched service's agent did not answer.
    stored = _on_rows(stored, [bool(row["tracer"]) for row in rows])
    rows = [row for row in rows if row["tracer"]]
    times = np.array([row["t_s"] for row in rows], dtype=float)
    seqs = np.array([row["seq"] for row in rows], dtype=np.int64)
    series = [Series(("site", s.stack_id), s.bytes, s.counts, s.samples) for s in queries.site_series(db, run_id, seqs)]
    groups: dict[Hashable, Group] = {}
    if attributor is not None:
        series, groups = roll_up(series, _library_labels(db, series, attributor))
    heap = _median(np.array([row["traced_bytes"] or 0 for row in rows], dtype=float))
    intervals = {row.get("sample_interval") for row in rows if row["tracer"] == "sampled"}
    # one interval per segment (a worker's tracer is set once); the largest is the cautious reading
    sample_interval = max((i for i in intervals if i), default=None)
    memory = analyze(times, series, thresholds, heap_bytes=heap, sample_interval=sample_interval)
    return combine(memory, *probes, _unexplained(stored, rows, thresholds)), groups


def _on_rows(stored: list[ProbeSeries], keep: list[bool]) -> list[ProbeSeries]:
    """The probes' series on the rows that ``keep`` marks (a value holds until the next, so the
    full grid's values at those rows are the subset grid's own)."""
    mask = np.array(keep, dtype=bool)
    return stored if mask.all() else [replace(series, values=series.values[mask]) for series in stored]


def _unexplained(stored: list[ProbeSeries], rows: list[dict[str, Any]], thresholds: Thresholds) -> Analysis:
    """RSS growth that the traced heap (and native sites, with ``--native``) does not explain.
    ``stored``: the probes' series on ``rows``."""
    native = [p.values for p in _on_rows(stored, [row["rss"] is not None for row in rows]) if p.probe == NATIVE_PROBE]
    rows = [row for row in rows if row["rss"] is not None]
    times = np.array([row["t_s"] for row in rows], dtype=float)
    explained = np.array([(row["traced_bytes"] or 0) + (row["tracer_overhead_bytes"] or 0) for row in rows], dtype=float)
    if native:
        explained = explained + np.sum(native, axis=0)
    rss = np.array([row["rss"] for row in rows], dtype=float)
    # tracked: the native probe read (even if it saw nothing live), not merely "has series"
    tracked = bool(native) or any(NATIVE_PROBE in probe_pauses(row) for row in rows)
    return unexplained_growth(times, rss, explained, thresholds, native_tracked=tracked)


def _analyze_probes(stored: list[ProbeSeries], rows: list[dict[str, Any]], thresholds: Thresholds) -> list[Analysis]:
    """Every probe series of the segment (``stored``, on ``rows``), judged per unit (each unit its own family of tests).

    Finding keys are ``(kind, probe, series name, unit)``; the evidence names the series and
    carries what its probe said of it (the function that created a thread, say).
    """
    times = np.array([row["t_s"] for row in rows], dtype=float)
    read = _snapshots_read(rows)
    by_unit: dict[tuple[str, str | None], list[Series]] = {}
    described: dict[Hashable, dict[str, Any]] = {}
    for probe in stored:
        if probe.kind == "type" and not thresholds.judge_types:
            continue  # stored and shown as growing types; judged only with --type-findings
        if probe.kind == ASYNC_KIND:
            continue  # shares of time, judged against thresholds (soak.judging.async_findings), not trends
        key = (probe.kind, probe.probe, probe.name, probe.unit)
        own_grid = probe.probe if probe.probe in read else None
        values = probe.values if own_grid is None else probe.values[read[probe.probe]]
        by_unit.setdefault((probe.unit, own_grid), []).append(Series(key, values))
        described[key] = {"series": probe.name, "unit": probe.unit, **probe.evidence}
    analyses = []
    for (unit, own_grid), series in by_unit.items():
        grid = times if own_grid is None else times[read[own_grid]]
        result = analyze(grid, series, thresholds, unit=unit)
        findings = [replace(f, evidence={**f.evidence, **described[f.key]}) for f in result.findings]
        analyses.append(replace(result, findings=findings))
    return analyses


STRETCHED_PROBES = ("types",)
"""Probes that skip snapshots to keep their cost down (soak.inprocess.probes.types): their series are
judged on the snapshots they read, not on values carried forward between them."""


def _snapshots_read(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per stretched probe, which of ``rows`` it read (its pause is in the snapshot's ``probe_ms``)."""
    pauses = [probe_pauses(row) for row in rows]
    return {probe: np.array([probe in p for p in pauses], dtype=bool) for probe in STRETCHED_PROBES}


def _rank(finding: Finding) -> tuple[bool, int, float]:
    """Leaks first; within a verdict, memory that a line or a library holds, then the process'
    memory (a residual: RSS that those do not explain), then probes' series; fastest first."""
    kind = cast("tuple[str, ...]", finding.key)[0]
    order = 0 if kind in MEMORY_KINDS and kind != "process" else 1 if kind == "process" else 2
    return finding.verdict != LEAK, order, -finding.growth_bytes_per_hour


def combine(memory: Analysis, *others: Analysis) -> Analysis:
    """One analysis of a run from its memory analysis and its probes': memory findings first
    (within a verdict), the most severe verdict, every series tested counted."""
    if not others:
        return memory
    # a probe read on fewer snapshots than the heap (soak.inprocess.probes.types) may have too few yet
    parts = [memory, *(part for part in others if part.verdict != INCONCLUSIVE)]
    verdict = min((part.verdict for part in parts), key=VERDICTS.index)  # most severe first
    if verdict == INCONCLUSIVE or (verdict == CLEAN and memory.verdict == INCONCLUSIVE):
        return memory  # probes share the memory series' grid: too few points for one is for all
    findings = sorted((f for part in parts for f in part.findings), key=_rank)
    return replace(memory, verdict=verdict, findings=findings, tested=sum(part.tested for part in parts))


NATIVE_PROBE = NativeProbe.name
MEMORY_KINDS = ("site", "library", "process", "native")


def _library_labels(db: Database, series: list[Series], attributor: Attributor) -> dict[Hashable, tuple[str, Hashable]]:
    """(library, call site) of each growing site allocated outside the application."""
    growing = [s.key[1] for s in series if len(s.bytes) and s.bytes[-1] > s.bytes[0]]  # type: ignore[index]
    labels: dict[Hashable, tuple[str, Hashable]] = {}
    for stack_id, frames in queries.stack_frames(db, growing).items():
        if not frames:
            continue
        library = attributor.library(frames[0]["file"])
        call_site = attributor.call_site(frames)
        if library != APPLICATION and call_site is not None:
            labels[("site", stack_id)] = (library, (call_site["file"], call_site["line"], call_site["function"]))
    return labels


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else 0.0


def latest_segment_trend(rows: list[dict[str, Any]], column: str, warmup_fraction: float) -> Trend | None:
    """Theil–Sen trend of ``column`` over the run's latest segment, after its first
    ``warmup_fraction`` of time; None with fewer than 3 values there."""
    from soak.analyzers.trend import fit_trend

    if not rows:
        return None
    latest = [row for row in rows if row["segment"] == rows[-1]["segment"] and row[column] is not None]
    if len(latest) < 3:
        return None
    t = np.array([row["t_s"] for row in latest], dtype=float)
    keep = t >= t[0] + (t[-1] - t[0]) * warmup_fraction
    if keep.sum() < 3:
        return None
    return fit_trend(t[keep], np.array([row[column] for row in latest], dtype=float)[keep])


def memory_slope(rows: list[dict[str, Any]]) -> float:
    """Bytes per second of the measured process's RSS over its latest segment, after its first 20%."""
    trend = latest_segment_trend(rows, "rss", 0.2)
    return trend.slope if trend is not None else 0.0


@dataclass(frozen=True)
class Refreshed:
    """One analysis refresh: what was stored, and what metrics show of it."""

    analysis: Analysis
    """With the verdict and the findings that count once suppression rules have judged them."""
    findings: list[FindingRow]
    """The findings that count, most severe first (every one is stored; see ``judgement``)."""
    frames: dict[int, list[dict[str, Any]]]
    """Frames of the findings' stacks, allocation frame first."""
    rss_slope: float
    """Bytes per second of RSS over the latest segment, after warm-up."""
    projection: dict[str, Any]
    """See :func:`projection`."""
    judgement: Judgement | None = None
    """What the run's suppression rules decided of its findings."""


def finding_rows(
    db: Database, result: Analysis, groups: dict[Hashable, Group], attributor: Attributor,
) -> tuple[list[FindingRow], dict[int, list[dict[str, Any]]]]:
    """The analysis' findings as stored rows (ids, attribution, evidence), and their stacks' frames."""
    shown = [_shown_stack(f.key, groups) for f in result.findings]
    stacks = queries.stack_frames(db, [stack_id for stack_id in shown if stack_id is not None])
    rows = []
    for finding, stack_id in zip(result.findings, shown, strict=True):
        kind = finding.key[0]  # type: ignore[index]
        frames = stacks.get(stack_id, []) if stack_id is not None else []
        evidence = {**finding.evidence, "tested": result.tested}
        if kind == "library":
            group = groups[finding.key]
            file, line, function = cast("tuple[str, int, str]", group.call_site)
            group_call_site = {"file": file, "line": line, "function": function}
            call_site: dict[str, Any] | None = group_call_site
            library: str | None = group.library
            evidence["sites"] = len(group.members)
            ident = finding_id(kind, [{"file": group.library, "line": 0}, group_call_site])
        elif is_async(finding.key):
            library, call_site = place(finding.evidence.get("frames") or [], attributor)
            ident = finding_id(kind, [{"file": "/".join(finding.key[1:3]), "line": 0}, *finding.evidence.get("frames", [])[:1]])  # type: ignore[index]
        elif kind == "native":  # a native site: the probe's evidence names its frames
            library, call_site, evidence["traceback"] = native_attribution(finding.evidence, attributor)
            ident = finding_id(kind, [{"file": library, "line": 0}, *(evidence["traceback"][:1]),
                                      *([call_site] if call_site else [])])
        elif kind not in MEMORY_KINDS:  # a probe's series: (kind, probe, series name, unit)
            _, probe, name, _unit = cast("tuple[str, str, str, str]", finding.key)
            call_site, library = None, None
            ident = finding_id(kind, [{"file": f"{probe}/{name}", "line": 0}])
        else:
            library = attributor.library(frames[0]["file"]) if frames else None
            call_site = attributor.call_site(frames)
            ident = finding_id(kind, frames or [{"file": finding.key[1], "line": 0}])  # type: ignore[index]
        counted = kind not in MEMORY_KINDS and finding.evidence.get("unit") != "bytes"
        rows.append(
            FindingRow(
                finding_id=ident,
                kind=kind,
                verdict=finding.verdict,
                stack_id=stack_id,
                library=library,
                resource=None if kind in ("site", "library", "native") else finding.key[1],  # type: ignore[index]
                # a probe's rate is in its own unit: a count per hour is not bytes
                growth_bytes_per_hour=0.0 if counted else finding.growth_bytes_per_hour,
                growth_count_per_hour=finding.growth_bytes_per_hour if counted else finding.growth_count_per_hour,
                p_value=finding.p_value,
                q_value=finding.q_value,
                confidence=None if cast("float | None", finding.q_value) is None else finding.confidence,  # None in a loop-health finding
                evidence={**evidence, "call_site": call_site},
            )
        )
    return rows, stacks


@dataclass(frozen=True)
class Computed:
    """The analysis part of a refresh: read from the database, stored nowhere yet. It is what an
    analysis process (soak.supervisor.analysis_process) sends back, so every field is plain data."""

    analysis: Analysis
    """Before suppressions."""
    rows: list[FindingRow]
    stacks: dict[int, list[dict[str, Any]]]
    rss_slope: float
    projection: dict[str, Any]


def compute(
    db: Database, run_id: int, thresholds: Thresholds, attributor: Attributor, memory_limit_bytes: int | None = None,
) -> Computed:
    """Analyse run ``run_id`` so far, reading the database only (see :func:`refresh`)."""
    snapshots = queries.snapshots(db, run_id)
    result, groups = analyze_run(db, run_id, thresholds, snapshots, attributor)
    rows, stacks = finding_rows(db, result, groups, attributor)
    rows = with_holders(db, run_id, rows)
    slope = memory_slope(snapshots)
    return Computed(result, rows, stacks, slope, projection(snapshots, slope, memory_limit_bytes))


def store(writer: RunWriter, computed: Computed, t_s: float, rules: Sequence[Rule] = (),
          target: str | None = None) -> Refreshed:
    """Judge ``computed`` against the suppression ``rules`` and replace the run's stored findings,
    verdict and projection with it (see :func:`refresh`)."""
    result, rows, stacks = computed.analysis, computed.rows, computed.stacks
    judged = judge_rows(rows, stacks, result.verdict, rules, target=target)
    writer.replace_findings(rows, t_s)
    writer.replace_decision(judged.stored_rules(), judged.stored_accepted())
    summary: dict[str, Any] = {
        "points": result.points, "tested": result.tested, "warmup_until_s": result.warmup_until_s,
        "needed_s": result.needed_s, "projection": computed.projection,
        "verdict": result.verdict,  # before suppressions; the run's verdict is the judged one
    }
    writer.set_verdict(judged.verdict, summary)
    counted = replace(result, verdict=judged.verdict, findings=[result.findings[i] for i in judged.counted])
    return Refreshed(counted, [rows[i] for i in judged.counted], stacks, computed.rss_slope, computed.projection, judged)


def refresh(
    db: Database, writer: RunWriter, thresholds: Thresholds, attributor: Attributor, t_s: float,
    memory_limit_bytes: int | None = None, rules: Sequence[Rule] = (), target: str | None = None,
) -> Refreshed:
    """Analyse the run so far and replace its stored findings, verdict and projection, and what
    the suppression ``rules`` decided of the findings (for a run of ``target``).

    The projection is of the measured process's memory against ``memory_limit_bytes`` or, without
    one, the cgroup's limit (compared with the cgroup's usage) when the snapshots have one.
    """
    return store(writer, compute(db, writer.run_id, thresholds, attributor, memory_limit_bytes), t_s, rules, target)


def projection(rows: list[dict[str, Any]], slope_per_s: float, memory_limit_bytes: int | None) -> dict[str, Any]:
    """When memory reaches its limit at the current growth (``seconds_until_limit`` is None when
    there is no limit or memory is not growing)."""
    last = rows[-1] if rows else {}
    if memory_limit_bytes:
        limit, source, current = memory_limit_bytes, "--memory-limit", last.get("rss")
    elif last.get("cgroup_limit"):
        limit, source, current = last["cgroup_limit"], "cgroup", last.get("cgroup_bytes") or last.get("rss")
    else:
        limit, source, current = None, None, last.get("rss")
    seconds: float | None = None
    if limit is not None and current is not None and slope_per_s > 0:
        seconds = max(0.0, (limit - current) / slope_per_s)
    return {"memory_bytes": current, "growth_bytes_per_hour": slope_per_s * 3600, "limit_bytes": limit,
            "limit_source": source, "seconds_until_limit": seconds}


def _shown_stack(key: Hashable, groups: dict[Hashable, Group]) -> int | None:
    """The stack a finding shows: its own site's, or a library group's largest member's."""
    kind = key[0]  # type: ignore[index]
    if kind == "site":
        return int(key[1])  # type: ignore[index]
    if kind == "library":
        return int(groups[key].members[0][1])  # type: ignore[index]
    return None
