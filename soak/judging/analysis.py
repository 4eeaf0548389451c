"""Analysis of a stored run: load its series, run the analyzers, store findings with attribution."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlite_utils import Database

from soak.analyzers import Analysis, Series, SeriesFinding, Thresholds, analyze
from soak.analyzers.rollup import Group, roll_up
from soak.analyzers.trend import Trend
from soak.analyzers.unexplained import unexplained_growth
from soak.inprocess.probes.native import NativeProbe
from soak.judging.async_findings import KIND as ASYNC_KIND
from soak.judging.async_findings import analyze_async, named_frames, place
from soak.judging.attribution import APPLICATION, Attributor
from soak.judging.holders import with_holders
from soak.judging.judgement import Judgement, judge
from soak.judging.native_attribution import native_attribution
from soak.model.finding import Evidence, Finding, FindingKey, Frame, LibraryKey, ProbeKey, ProcessKey, SiteKey
from soak.model.report import Projection, RunSummary
from soak.model.verdicts import CLEAN, INCONCLUSIVE, LEAK, most_severe
from soak.storage import queries
from soak.storage.queries import ProbeSeries, probe_pauses
from soak.storage.writer import RunWriter

if TYPE_CHECKING:
    from soak.judging.suppressions import Rule


def finding_id(kind: str, places: Sequence[tuple[str, int]]) -> str:
    """Stable across runs and machines: the kind and each place's (file, line), the file by its
    last two path parts."""
    parts = [kind]
    for file, line in places:
        path = file.replace(os.sep, "/").split("/")
        parts.append(f"{'/'.join(path[-2:])}:{line}")
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

    Keys are a SiteKey, a LibraryKey (sites rolled up) or ``ProcessKey("rss")``, and the probes'
    ProbeKeys.
    """
    # one read of the probes' series a refresh, on the segment's grid; subsets index into it
    stored = queries.probe_series(db, run_id, np.array([row["seq"] for row in rows], dtype=np.int64))
    probes = _analyze_probes(stored, rows, thresholds)
    if (loop := analyze_async(stored, rows, thresholds)) is not None:
        probes.append(loop)
    if not any(row["tracer"] for row in rows):
        times = np.array([row["t_s"] for row in rows], dtype=float)
        rss = np.array([row["rss"] or 0 for row in rows], dtype=float)
        return combine(analyze(times, [Series(ProcessKey("rss"), rss)], thresholds, heap_bytes=_median(rss)), *probes), {}
    # Sites are series of the snapshots that read the heap: not of process-level readings taken
    # while a watched service's agent did not answer.
    stored = _on_rows(stored, [bool(row["tracer"]) for row in rows])
    rows = [row for row in rows if row["tracer"]]
    times = np.array([row["t_s"] for row in rows], dtype=float)
    seqs = np.array([row["seq"] for row in rows], dtype=np.int64)
    series = [Series(SiteKey(s.stack_id), s.bytes, s.counts, s.samples) for s in queries.site_series(db, run_id, seqs)]
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

    Finding keys are ProbeKeys; the evidence names the series and carries what its probe said of
    it (the function that created a thread, say).
    """
    times = np.array([row["t_s"] for row in rows], dtype=float)
    read = _snapshots_read(rows)
    by_unit: dict[tuple[str, str | None], list[Series]] = {}
    described: dict[Hashable, Evidence] = {}
    for probe in stored:
        if probe.kind == "type" and not thresholds.judge_types:
            continue  # stored and shown as growing types; judged only with --type-findings
        if probe.kind == ASYNC_KIND:
            continue  # shares of time, judged against thresholds (soak.judging.async_findings), not trends
        key = ProbeKey(probe.kind, probe.probe, probe.name, probe.unit)
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


def _key(finding: SeriesFinding) -> FindingKey:
    """The key of a series analysis tested (every series it makes has one)."""
    return cast("FindingKey", finding.key)


def _rank(finding: SeriesFinding) -> tuple[bool, int, float]:
    """Leaks first; within a verdict, memory that a line or a library holds, then the process'
    memory (a residual: RSS that those do not explain), then probes' series; fastest first."""
    kind = _key(finding).kind
    order = 0 if kind in MEMORY_KINDS and kind != "process" else 1 if kind == "process" else 2
    return finding.verdict != LEAK, order, -finding.growth_bytes_per_hour


def combine(memory: Analysis, *others: Analysis) -> Analysis:
    """One analysis of a run from its memory analysis and its probes': memory findings first
    (within a verdict), the most severe verdict, every series tested counted."""
    if not others:
        return memory
    # a probe read on fewer snapshots than the heap (soak.inprocess.probes.types) may have too few yet
    parts = [memory, *(part for part in others if part.verdict != INCONCLUSIVE)]
    verdict = most_severe(part.verdict for part in parts)
    if verdict == INCONCLUSIVE or (verdict == CLEAN and memory.verdict == INCONCLUSIVE):
        return memory  # probes share the memory series' grid: too few points for one is for all
    findings = sorted((f for part in parts for f in part.findings), key=_rank)
    return replace(memory, verdict=verdict, findings=findings, tested=sum(part.tested for part in parts))


NATIVE_PROBE = NativeProbe.name
MEMORY_KINDS = ("site", "library", "process", "native")


def _library_labels(db: Database, series: list[Series], attributor: Attributor) -> dict[Hashable, Hashable]:
    """The group of each growing site allocated outside the application: its library and the
    application line that called into it."""
    growing = [s.key.stack_id for s in series if isinstance(s.key, SiteKey) and len(s.bytes) and s.bytes[-1] > s.bytes[0]]
    labels: dict[Hashable, Hashable] = {}
    for stack_id, frames in queries.stack_frames(db, growing).items():
        if not frames:
            continue
        library = attributor.library(frames[0].file)
        call_site = attributor.call_site(frames)
        if library != APPLICATION and call_site is not None:
            labels[SiteKey(stack_id)] = LibraryKey(library, call_site)
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
    findings: list[Finding]
    """The findings that count, most severe first (every one is stored; see ``judgement``)."""
    rss_slope: float
    """Bytes per second of RSS over the latest segment, after warm-up."""
    projection: Projection
    judgement: Judgement | None = None
    """What the run's suppression rules decided of its findings."""


def placed_findings(db: Database, result: Analysis, groups: dict[Hashable, Group], attributor: Attributor) -> list[Finding]:
    """The analysis' findings placed in the code (traceback, library, call site), with their stable ids."""
    keys = [_key(tested) for tested in result.findings]
    shown = [_shown_stack(key, groups) for key in keys]
    stacks = queries.stack_frames(db, [stack_id for stack_id in shown if stack_id is not None])
    findings = []
    for tested, key, stack_id in zip(result.findings, keys, shown, strict=True):
        evidence = {**tested.evidence, "tested": result.tested}
        placed = _place(key, evidence, stacks.get(stack_id, []) if stack_id is not None else [], groups, attributor)
        # a probe's rate is in its own unit: a count per hour is not bytes
        counted = isinstance(key, ProbeKey) and key.kind not in MEMORY_KINDS and key.unit != "bytes"
        findings.append(Finding(
            finding_id=finding_id(key.kind, placed.identity),
            kind=key.kind,
            verdict=tested.verdict,
            traceback=placed.traceback,
            library=placed.library,
            call_site=placed.call_site,
            growth_bytes_per_hour=0.0 if counted else tested.growth_bytes_per_hour,
            growth_count_per_hour=tested.growth_bytes_per_hour if counted else tested.growth_count_per_hour,
            p_value=tested.p_value,
            q_value=tested.q_value,
            confidence=None if cast("float | None", tested.q_value) is None else tested.confidence,  # None in a loop-health finding
            detected_at_s=None,
            resource=placed.resource,
            evidence={**evidence, **placed.evidence},
            stack_id=stack_id,
        ))
    return findings


@dataclass(frozen=True)
class _Place:
    """Where a finding is in the code, and what its stable id is made of."""

    traceback: list[Frame]
    library: str | None
    call_site: Frame | None
    identity: list[tuple[str, int]]
    """(file, line) pairs that, with its kind, make the finding's id."""
    resource: str | None = None
    evidence: Evidence = field(default_factory=dict)
    """What the place adds to the evidence."""


def _place(key: FindingKey, evidence: Evidence, frames: list[Frame], groups: dict[Hashable, Group],
           attributor: Attributor) -> _Place:
    """The place of the finding of ``key``: ``frames`` are the stack it shows (see :func:`_shown_stack`)."""
    match key:
        case SiteKey():
            library = attributor.library(frames[0].file) if frames else None
            return _Place(frames, library, attributor.call_site(frames), _spots(frames) or [(str(key.stack_id), 0)])
        case LibraryKey():
            return _Place(frames, key.library, key.call_site, [(key.library, 0), *_spots([key.call_site])],
                          evidence={"sites": len(groups[key].members)})
        case ProcessKey():
            return _Place([], None, None, [(key.resource, 0)], key.resource)
        case ProbeKey(kind="native"):  # a native site: the probe's evidence names its frames
            library, call_site, traceback = native_attribution(evidence, attributor)
            return _Place(traceback, library, call_site, [(library, 0), *_spots([*traceback[:1], *([call_site] if call_site else [])])],
                          evidence={"traceback": [frame.as_dict() for frame in traceback]})
        case ProbeKey() if key.kind == ASYNC_KIND:
            traceback = named_frames([Frame.of(frame) for frame in evidence.get("frames") or []])
            ran, answered = evidence.get("submitted_at"), evidence.get("answered_at")
            library_of, caller, library_at = place(traceback, attributor, Frame.of(ran) if isinstance(ran, dict) else None,
                                                   Frame.of(answered) if isinstance(answered, dict) else None)
            # the stack is stored in the evidence (an async finding has no tracer stack): named, as shown
            named = {"frames": [frame.as_dict() for frame in traceback]}
            return _Place(traceback, library_of, caller, [(f"{key.probe}/{key.series}", 0), *_spots(traceback[:1])], key.probe,
                          evidence=named | ({"library_at": library_at.as_dict()} if library_at else {}))
        case ProbeKey():  # a probe's count series, a type's objects
            return _Place([], None, None, [(f"{key.probe}/{key.series}", 0)], key.probe)


def _spots(frames: list[Frame]) -> list[tuple[str, int]]:
    return [(frame.file, frame.line) for frame in frames]


@dataclass(frozen=True)
class Computed:
    """The analysis part of a refresh: read from the database, stored nowhere yet. It is what an
    analysis process (soak.supervisor.analysis_process) sends back, so every field is plain data."""

    analysis: Analysis
    """Before suppressions."""
    findings: list[Finding]
    rss_slope: float
    projection: Projection


def compute(
    db: Database, run_id: int, thresholds: Thresholds, attributor: Attributor, memory_limit_bytes: int | None = None,
) -> Computed:
    """Analyse run ``run_id`` so far, reading the database only (see :func:`refresh`)."""
    snapshots = queries.snapshots(db, run_id)
    result, groups = analyze_run(db, run_id, thresholds, snapshots, attributor)
    findings = with_holders(db, run_id, placed_findings(db, result, groups, attributor))
    slope = memory_slope(snapshots)
    return Computed(result, findings, slope, projection(snapshots, slope, memory_limit_bytes))


def store(writer: RunWriter, computed: Computed, t_s: float, rules: Sequence[Rule] = (),
          target: str | None = None) -> Refreshed:
    """Judge ``computed`` against the suppression ``rules`` and replace the run's stored findings,
    verdict and projection with it (see :func:`refresh`)."""
    result, findings = computed.analysis, computed.findings
    judged = judge(findings, result.verdict, rules, target=target)
    writer.replace_findings(findings, t_s)
    writer.replace_decision(judged.stored_rules(), judged.stored_accepted())
    summary = RunSummary(
        points=result.points, tested=result.tested, warmup_until_s=result.warmup_until_s,
        needed_s=result.needed_s, projection=computed.projection,
        verdict=result.verdict,  # before suppressions; the run's verdict is the judged one
    )
    writer.set_verdict(judged.verdict, summary)
    counted = replace(result, verdict=judged.verdict, findings=[result.findings[i] for i in judged.counted])
    return Refreshed(counted, [findings[i] for i in judged.counted], computed.rss_slope, computed.projection, judged)


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


def projection(rows: list[dict[str, Any]], slope_per_s: float, memory_limit_bytes: int | None) -> Projection:
    """When memory reaches its limit at the current growth."""
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
    return Projection(memory_bytes=current, growth_bytes_per_hour=slope_per_s * 3600, limit_bytes=limit,
                      limit_source=source, seconds_until_limit=seconds)


def _shown_stack(key: FindingKey, groups: dict[Hashable, Group]) -> int | None:
    """The stack a finding shows: its own site's, or a library group's largest member's."""
    if isinstance(key, SiteKey):
        return key.stack_id
    if isinstance(key, LibraryKey):
        return cast("SiteKey", groups[key].members[0]).stack_id
    return None
