"""The options of a soak: one typed object for ``soak run``, ``soak watch``, ``soak ci`` and the
pytest plugin, stored with each run as JSON and read back one way.

A shared core (:class:`SoakOptions`: the schedule, the database, the judgement, the metrics), what
a worker adds (:class:`WorkerOptions`: how it measures, for ``soak run`` and ``soak ci``), and what
each mode adds (:class:`RunOptions`, :class:`WatchOptions`, :class:`CiOptions`). Plain data: what
needs the machine to check (a tracer, a target) is checked by the supervisor
(:mod:`soak.supervisor.checks`), and which options a resume may change is decided there too
(:mod:`soak.supervisor.resume`).
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from soak.model.thresholds import Thresholds

DEFAULT_DURATION_S = 600.0
"""How long a soak lasts when no duration is given (10 minutes)."""
DEFAULT_TRACER = "sampled"
"""``soak run``'s tracer; the worker's own default (soak.inprocess.probes.tracer) is the same."""
DEFAULT_PAUSE_BUDGET = 0.02
"""``soak run``'s pause budget; the worker's own default (soak.inprocess.probes.budget) is the same."""
DEFAULT_LOOP_BLOCK_S = 0.05
"""``soak run``'s ``--loop-block``; the loop-lag probe's own default (soak.inprocess.probes.loop_lag) is the same."""
RECYCLE_EVERY = 50
"""Refreshes one analysis process computes before a fresh one replaces it (soak.supervisor.analysis_process)."""


def default_interval(duration_s: float) -> float:
    """The default time between snapshots: about 60 snapshots in ``duration_s``, between one every
    0.25 s and one every 30 s (``soak run``, ``soak watch``, ``soak ci``)."""
    return min(30.0, max(0.25, duration_s / 60))


Options = TypeVar("Options", bound="SoakOptions")


@dataclass(kw_only=True)
class SoakOptions:
    """What every soak shares, whatever it measures: how long and how often, where the series are
    stored, how they are judged, and how they are published while the run lasts."""

    MODES: ClassVar[tuple[str, ...]] = ("run", "ci", "watch")
    """The modes a class of options may say."""

    mode: str
    """Recorded in the run's row and its stored options: ``run``, ``ci`` (a target of ``soak ci``) or ``watch``."""
    duration_s: float | None = None
    """Default 10 minutes; when resuming, what remains of the run's planned duration."""
    interval_s: float | None = None
    """Default: :func:`default_interval` of the duration (about 60 snapshots)."""
    db_path: str = "soak.db"
    fail_on: str = "suspect"
    """``--fail-on``: leak, suspect (a leak or a suspect), never (soak.model.verdicts)."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    suppressions: str | None = None
    """A suppression rules file; None: ``leaksoak.toml`` and ``pyproject.toml`` of the current
    directory, when they hold rules (see :mod:`soak.judging.suppressions`)."""
    keep_full_s: float = 6 * 3600.0
    """Snapshots older than this are thinned..."""
    thin_every: int = 10
    """...to every k-th one (1 keeps everything)."""
    metrics_port: int | None = None
    """Serve Prometheus /metrics on this port while the run lasts."""
    metrics_host: str = "127.0.0.1"
    metrics_top: int = 10
    """Findings exported one by one on /metrics, most severe first (the rest are counted)."""
    memory_limit_bytes: int | None = None
    """Project the time until memory reaches this (default: the cgroup's limit, if any)."""
    analyze_every_s: float | None = None
    """How often to refresh the analysis during the run. Default: every 2 snapshots (at least 1 s),
    skipped while less than 20 times the previous refresh's cost has passed, so analysis takes at
    most about 5% of the scheduler's time however many sites a long run has."""
    snapshot_timeout_s: float | None = None
    """How long a snapshot may take before it counts as timed out (default: twice the interval, at least 60 s)."""
    analysis_process: bool | None = None
    """Compute analysis refreshes in a child process that is recycled (soak.supervisor.analysis_process), so
    that the supervisor does not grow with them. None: for runs planned longer than 15 minutes."""
    analysis_recycle_every: int = RECYCLE_EVERY
    """Refreshes one analysis process computes before a fresh one replaces it."""

    @property
    def interval(self) -> float:
        """The time between snapshots, as given or by default."""
        if self.interval_s is not None:
            return self.interval_s
        return default_interval(DEFAULT_DURATION_S if self.duration_s is None else self.duration_s)

    def given(self) -> set[str]:
        """The options set to something else than their default: what a caller of the Python API
        gave, as far as the values tell (the CLI knows better: it says what was typed)."""
        given = set()
        for option in fields(self):
            if option.default_factory is not MISSING:
                default = option.default_factory()
            elif option.default is not MISSING:
                default = option.default
            else:  # no default (a target): given unless None
                default = None
            if getattr(self, option.name) != default:
                given.add(option.name)
        return given

    def to_stored(self) -> dict[str, Any]:
        """The options as recorded with the run, every field (read back by :meth:`from_stored`);
        strict JSON, so that SQLite's JSON functions read it: an unlimited pause budget is ``"inf"``."""
        return {name: "inf" if isinstance(value, float) and math.isinf(value) else value
                for name, value in asdict(self).items()}

    @classmethod
    def from_stored(cls: type[Options], data: dict[str, Any]) -> Options:
        """The options :meth:`to_stored` recorded; a field an older version did not record keeps its
        default, one this version does not know is left out."""
        values: dict[str, Any] = {}
        for option in fields(cls):
            if option.name not in data:
                continue
            value = data[option.name]
            if value == "inf" and str(option.type).startswith("float"):
                value = math.inf
            values[option.name] = value
        return cls(**values | {"thresholds": Thresholds.from_dict(values.get("thresholds") or {})})


@dataclass(kw_only=True)
class WorkerOptions(SoakOptions):
    """What a worker that leaksoak starts adds: how it calls the workload and how it measures it
    (``soak run``, and each target of ``soak ci``)."""

    frames: int = 10
    """Traceback depth of each allocation site."""
    concurrency: int = 1
    """Concurrent callers of an ``async def`` target."""
    loop_block_s: float = DEFAULT_LOOP_BLOCK_S
    """An async target's event loop counts as blocked when a heartbeat is later than this."""
    tracer: str = DEFAULT_TRACER
    sample_interval: int | None = None
    """The sampled tracer's mean bytes between samples (None: its default)."""
    native: bool = False
    """Track native allocations (C extensions, the C allocator) with memray: ``--native``."""
    pause_budget: float = DEFAULT_PAUSE_BUDGET
    """The share of wall time snapshots may pause the workload (``--pause-budget``; inf: no
    rationing of the full collection, the census and the holder searches; soak.inprocess.probes.budget)."""


@dataclass
class RunOptions(WorkerOptions):
    """Everything ``soak run`` takes; the CLI's options map one to one onto these fields (and
    ``soak ci`` runs each of its targets with one, in mode ``ci``)."""

    MODES: ClassVar[tuple[str, ...]] = ("run", "ci")

    target: str | None
    """None when resuming: the stored run's target is used."""
    _: KW_ONLY
    mode: str = "run"
    name: str | None = None
    """Label for the run (default: file:func)."""
    resume: str | None = None
    """A killed or interrupted run (id or name) to continue in a new segment."""
    accept_findings: list[str] | None = None
    """Finding ids accepted as they are, by one more rule (``soak ci --accept-baseline``: the
    findings of the baseline run)..."""
    accept_source: str = "the baseline"
    """...and where they come from, as that rule says."""


@dataclass(kw_only=True)
class WatchOptions(SoakOptions):
    """Everything ``soak watch`` takes: which process to watch, and how to reach its agent."""

    MODES: ClassVar[tuple[str, ...]] = ("watch",)

    mode: str = "watch"
    pid: int | None = None
    match: str | None = None
    """Watch the process whose command line matches this regular expression, across restarts."""
    socket_path: str | None = None
    """The agent's socket (default: from the process's environment, else the per-user default)."""
    agent: bool = True
    """Ask the agent for heap snapshots when one listens (False: process-level series only)."""
    attach: bool = False
    """Start the agent inside the running process first, and take it out when the watch ends
    (soak.supervisor.attach)."""
    attach_tracer: str = DEFAULT_TRACER
    """The tracer of an attached agent (``sampled`` or ``exact``)."""
    tree: bool = True
    """Follow the process's descendants that run an agent (with ``attach``: every Python
    descendant, attached), each a run of its own, judged together (soak.supervisor.tree)."""
    name: str | None = None
    """Label for the run (default: the process name, or the pattern)."""

    @property
    def target(self) -> str:
        """The run's target as stored: ``pid:PID``, or ``match:PATTERN``."""
        return f"pid:{self.pid}" if self.match is None else f"match:{self.match}"


@dataclass
class CiOptions(WorkerOptions):
    """Everything ``soak ci`` takes, after the command line and ``[tool.leaksoak]`` are merged:
    each target is soaked with these options as a run in mode ``ci``, ``duration_s`` (required)
    the budget of each target, not of all of them."""

    MODES: ClassVar[tuple[str, ...]] = ("ci",)

    targets: list[str]
    _: KW_ONLY
    mode: str = "ci"
    junit_path: str | None = None
    summary_path: str | None = None
    """Appended to, as GitHub's ``$GITHUB_STEP_SUMMARY`` expects."""
    baseline_path: str | None = None
    fail_on_unused_suppressions: bool = False
    """Fail (exit 1) when a rule matched no finding in any target's run."""
    accept_baseline: bool = False
    """Accept every finding of each target's baseline run (in ``baseline_path``) as it is."""
