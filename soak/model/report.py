"""The report model: what a renderer needs about one run (built from storage by soak.judging.report_builder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

from soak.model.finding import Finding
from soak.model.verdicts import LEAK

SCHEMA = "leaksoak.report/1"


@dataclass(frozen=True)
class ProbePauses:
    probe: str
    runs: int
    """Snapshots in which it ran (rationed probes skip some)."""
    median_ms: float
    max_ms: float
    total_ms: float


@dataclass(frozen=True)
class PauseSummary:
    share: float
    """Total pause over the run's wall time."""
    snapshots: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    probes: list[ProbePauses]
    """Costliest first."""


@dataclass(frozen=True)
class SuppressionStatus:
    """Rule ids needing attention; the JSON report's ``suppressions`` object."""

    expired: list[str] = field(default_factory=list)
    """Past their ``expires`` day, or with a date that is not one: they no longer apply."""
    unused: list[str] = field(default_factory=list)
    """Applying, but matched no finding of the run."""
    too_broad: list[str] = field(default_factory=list)
    """Naming no frames, call site or type, or accepting more than half of the run's findings."""

    def as_dict(self) -> dict[str, list[str]]:
        return {"expired": list(self.expired), "unused": list(self.unused), "too_broad": list(self.too_broad)}


@dataclass(frozen=True)
class AcceptedFinding:
    """A finding a suppression rule accepted: shown in its own section, not counted in the verdict."""

    finding: Finding
    rule: str
    """The id of the rule that accepted it."""
    reason: str | None
    """The rule's reason."""
    source: str | None
    """Where the rule was read from (``file:line``)."""
    max_growth_bytes_per_hour: float | None
    """The rule's tolerance; None when it accepts any rate. The growth accepted is the finding's."""


class Projection(TypedDict):
    """When the measured process's memory reaches its limit at its current growth."""

    memory_bytes: float | None
    """RSS, or the cgroup's usage when the limit is the cgroup's."""
    growth_bytes_per_hour: float
    """Of RSS over the latest segment, after its warm-up."""
    limit_bytes: float | None
    limit_source: str | None
    """``--memory-limit`` or ``cgroup``; None without a limit."""
    seconds_until_limit: float | None
    """None when there is no limit or memory is not growing."""


class RunSummary(TypedDict, total=False):
    """The latest analysis refresh's view of the whole run, stored with it (``runs.analysis``);
    a run stored by an older leaksoak may lack a key."""

    points: int
    """Snapshots analysed after the warm-up."""
    tested: int
    """Series whose growth was tested."""
    warmup_until_s: float
    needed_s: float | None
    """For an inconclusive verdict: the run length at which there would be enough points."""
    projection: Projection
    verdict: str
    """The analysis' own verdict, before suppressions."""


class Event(TypedDict):
    """A row of ``events``: something that happened to the run (a worker's start or exit, a signal...)."""

    id: int
    run_id: int
    t_s: float
    """Seconds since the run started."""
    at: str
    """UTC, ISO 8601."""
    kind: str
    message: str
    data: str | None
    """JSON, when the event carries data."""


@dataclass(frozen=True)
class RunInfo:
    id: int
    name: str
    target: str
    status: str
    status_reason: str | None
    started_at: str
    duration_s: float
    snapshots: int
    iterations: int
    interval_s: float | None
    mode: str | None = None
    """``run`` or ``watch`` (``ci`` later)."""
    host: str | None = None
    options: dict[str, Any] | None = None
    """The options the run was started with, as stored."""


@dataclass(frozen=True)
class ProcessRun:
    """A process of a watched tree (``soak watch --pid MASTER``): a run of its own, whose series
    are judged on their own."""

    run_id: int
    pid: int | None
    status: str
    status_reason: str | None
    verdict: str
    findings: int
    """Its findings that count (no suppression rule accepted them)."""
    root: bool = False
    """The process the watch was given (the master), not one of its descendants."""


@dataclass(frozen=True)
class TreeFinding:
    """One finding id across the processes of a watched tree, judged together: a leak in the
    workers' shared code is one finding that says how many show it and at what rate each."""

    finding: Finding
    """As the process where it grows fastest has it."""
    verdict: str
    """The most severe it has in any process."""
    processes: int
    """How many processes show it."""
    watched: int
    """How many processes of the tree were watched."""
    growth_bytes_per_hour: list[float]
    """Each showing process's rate, fastest first."""


def tree_rank(verdict: str, processes: int, growth_bytes_per_hour: float) -> tuple[bool, int, float]:
    """The order of a tree's findings, judged together (the report's and ``/metrics``' alike):
    leaks first, then the most widespread, then the fastest growth summed over its processes."""
    return verdict != LEAK, -processes, -growth_bytes_per_hour


@dataclass(frozen=True)
class Report:
    run: RunInfo
    verdict: str
    findings: list[Finding]
    events: list[Event]
    first_snapshot: dict[str, Any] | None
    """A row of ``snapshots``, as stored."""
    last_snapshot: dict[str, Any] | None
    analysis: RunSummary = field(default_factory=RunSummary)
    accepted: list[AcceptedFinding] = field(default_factory=list)
    """Findings suppression rules accepted; ``findings`` and ``verdict`` leave them out."""
    suppressions: SuppressionStatus = field(default_factory=SuppressionStatus)
    """Rules that expired, matched nothing, or are too broad."""
    suppression_warnings: list[str] = field(default_factory=list)
    """One line each: what needs a look in the rules."""
    pauses: PauseSummary | None = None
    """How long the snapshots paused the measured process (None if no snapshot recorded it)."""
    processes: list[ProcessRun] = field(default_factory=list)
    """A watched tree's processes, its root first (empty for a run of one process); ``verdict``
    is then the most severe of theirs."""
    tree_findings: list[TreeFinding] = field(default_factory=list)
    """The findings of a watched tree's processes, judged together."""

    @property
    def tracer(self) -> str | None:
        """The allocation tracer of the latest snapshot (``sampled``, ``exact``), None if none ran."""
        return self.last_snapshot.get("tracer") if self.last_snapshot else None

    @property
    def sample_interval(self) -> int | None:
        """Mean bytes between samples when the sampled tracer ran: the sites' figures are estimates."""
        if not self.last_snapshot or self.last_snapshot.get("tracer") != "sampled":
            return None
        return self.last_snapshot.get("sample_interval")
