"""The schedule of one run: snapshot, analyse and thin jobs on one scheduler thread, the
measured process watched, and how the run ends (its final snapshot, analysis and status)."""

from __future__ import annotations

import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from types import FrameType, MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlite_utils import Database

from soak.analyzers import Analysis
from soak.errors import BadInput, InternalFailure, SoakError
from soak.inprocess.probes.oom import OomEvidence, peak_rss_bytes
from soak.inprocess.probes.process import read_from_outside
from soak.inprocess.probes.tracer import SITE_TRACERS
from soak.inprocess.protocol import object_field, typed_field
from soak.judging.analysis import store
from soak.judging.attribution import Attributor
from soak.judging.holders import requests_for
from soak.model.options import SoakOptions
from soak.model.verdicts import fails
from soak.storage.retention import thin
from soak.storage.writer import RunWriter
from soak.supervisor.analysis_process import Analyst, wanted
from soak.supervisor.results import LOST, Progress, RunResult
from soak.supervisor.signals import logging_level, signal_handlers
from soak.supervisor.worker_process import Descendants, SnapshotFailed, SnapshotSkipped, Subject

if TYPE_CHECKING:
    from soak.judging.judgement import Judgement
    from soak.judging.suppressions import Rule

HOLDER_ATTEMPTS = 3
"""Holder searches of one subject per segment, when none finds a holder."""
ANALYSIS_COST_RATIO = 20.0
"""A scheduled analysis refresh is skipped until this many times the last one's cost has passed."""


class Supervisor:
    """Runs the schedule for one run. ``subject`` is what is measured: the worker process that
    ``soak run`` started, or the process that ``soak watch`` watches (soak.supervisor.watch)."""

    def __init__(self, options: SoakOptions, target: str, subject: Subject, hello: dict[str, Any],
                 db: Database, writer: RunWriter, started_ts: float, rules: Sequence[Rule] = (),
                 changed: Mapping[str, Any] = MappingProxyType({}), *, tree: Descendants | None = None,
                 ends_with_process: bool = False) -> None:
        """``tree``: the subject's descendants, followed and judged with it (soak.supervisor.tree);
        ``ends_with_process``: the run of one of those descendants, completed when it exits."""
        assert options.duration_s is not None
        self.tree = tree
        self.ends_with_process = ends_with_process
        self.options = options
        self.target = target
        self.rules = tuple(rules)
        self.changed = dict(changed)
        """The options a resumed run goes on with unlike those it started with (its resume event says which)."""
        self.judgement: Judgement | None = None
        self.duration_s = options.duration_s
        self.subject = subject
        self.db = db
        self.writer = writer
        # Seconds since the run started, on a monotonic clock; a resumed run's clock includes its gap.
        self.t0 = time.monotonic() - (time.time() - started_ts)
        self.segment_start_s = self.elapsed()
        application_root = typed_field(hello, "application_root", str)
        self.attributor = Attributor([application_root] if application_root else [])
        self.hello = hello
        self.requests = 0
        self.snapshots_taken = 0
        self.done = threading.Event()
        self.end_status = "completed"
        self.end_reason: str | None = None
        self.job_error: BaseException | None = None
        self.on_progress: Callable[[Progress], None] | None = None
        self.analysis = Analysis("inconclusive", [], 0.0, 0, 0)
        self._last_refresh_at = float("-inf")
        self._last_refresh_cost = 0.0
        self._warm_up: threading.Thread | None = None
        self._holder_requests: list[dict[str, Any]] = []
        """Holder searches for the next snapshot (soak.judging.holders): suspected findings not searched yet."""
        self._searched: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._skipped: list[float] = []
        """When snapshots were due while the previous one was still in progress (the scheduler's
        thread appends; the next snapshot job records them as one ``snapshot_skipped`` event)."""
        self._skipped_lock = threading.Lock()
        self.analyst = Analyst(options.db_path, writer.run_id, options.thresholds, self.attributor,
                               options.memory_limit_bytes, use_process=wanted(options.analysis_process, self.duration_s),
                               recycle_every=options.analysis_recycle_every, record_event=self._record_analyst_event)
        self._state: dict[str, Any] = {"run_name": writer.name, "run_id": writer.run_id, "target": target,
                                       "verdict": "inconclusive", "findings": [], "snapshots": 0}

    def _record_analyst_event(self, kind: str, message: str, data: dict[str, Any]) -> None:
        self.writer.record_event(self.elapsed(), kind, message, data)

    def state(self) -> dict[str, Any]:
        """The latest verdict, findings and process memory, for metrics (read from another thread)."""
        return self._state

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def end(self, status: str, reason: str | None) -> None:
        """End the run now, with ``status`` (its final snapshot and analysis follow)."""
        self._end(status, reason)

    def _end(self, status: str, reason: str | None) -> None:
        if not self.done.is_set():
            self.end_status, self.end_reason = status, reason
            self.done.set()

    def run(self, on_progress: Callable[[Progress], None] | None) -> RunResult:
        try:
            with logging_level("apscheduler", logging.ERROR):  # it would warn of each snapshot a slow one held back
                return self._run(on_progress)
        finally:
            self.analyst.close()

    def _run(self, on_progress: Callable[[Progress], None] | None) -> RunResult:
        options = self.options
        if self.hello["type"] != "hello":  # import or setup raised: recorded as a failed run
            return self._failed_before_start()
        if self.writer.segment > 0:
            gap_s = self._gap_s()
            changed = f", with {', '.join(self.changed)} changed" if self.changed else ""
            self.writer.record_event(
                self.segment_start_s, "resume", f"resumed as segment {self.writer.segment} after a gap of {gap_s:.1f}s{changed}",
                {"segment": self.writer.segment, "gap_s": gap_s} | ({"changed": self.changed} if self.changed else {}),
            )
        self.writer.record_event(self.elapsed(), "worker_start", self.subject.describe(), {"pid": self.subject.pid})
        if self.tree is not None:
            self.tree.start(self.writer.run_id, self.elapsed)
        self.on_progress = on_progress
        # scipy.stats takes a second or more to import: do it beside the first snapshots rather
        # than in the first analysis refresh, which shares the scheduler's one thread with them.
        # (An analysis process imports it itself: the supervisor then never does.)
        if self.analyst.process is None:
            self._warm_up = threading.Thread(target=importlib.import_module, args=("scipy.stats",), name="soak-warm-up", daemon=True)
            self._warm_up.start()
        analyze_every = options.analyze_every_s or max(2 * options.interval, 1.0)
        thin_every_s = max(60.0, 10 * options.interval, options.keep_full_s / 10)
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},  # jobs share the DB connection: one at a time
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        start = datetime.now().astimezone()
        # One snapshot at a time: one due while the previous is still in progress is skipped
        # (max_instances), and recorded as skipped.
        snapshots = scheduler.add_job(self._guard(self._snapshot), "interval", seconds=options.interval, next_run_time=start)
        scheduler.add_listener(lambda event: self._on_skipped(event, snapshots.id), EVENT_JOB_MAX_INSTANCES)
        scheduler.add_job(self._guard(self._analyze), "interval", seconds=analyze_every,
                          next_run_time=start + timedelta(seconds=analyze_every))
        scheduler.add_job(self._guard(self._thin), "interval", seconds=thin_every_s)
        scheduler.add_job(self._end, "date", run_date=start + timedelta(seconds=self.duration_s),
                          args=["completed", None])
        metrics = self._serve_metrics()
        with signal_handlers({signal.SIGINT: self._on_signal, signal.SIGTERM: self._on_signal}):
            watcher = threading.Thread(target=self._watch_worker, name="soak-worker-watch", daemon=True)
            watcher.start()
            scheduler.start()
            try:
                self.done.wait()
            finally:
                scheduler.shutdown(wait=True)
                self.on_progress = None  # the display stops with the schedule, before the final snapshot
        try:
            return self._finish()
        finally:
            if metrics is not None:
                metrics.shutdown()
                metrics.server_close()

    def _serve_metrics(self) -> Any:
        if self.options.metrics_port is None:
            return None
        from soak.supervisor.metrics import serve_metrics

        try:
            return serve_metrics(self.state_of_tree, self.options.metrics_port, self.options.metrics_host,
                                 self.options.metrics_top)
        except OSError as exc:
            self.subject.stop()
            raise BadInput(f"cannot serve metrics on {self.options.metrics_host}:{self.options.metrics_port}: {exc.strerror}") from exc

    def _guard(self, job: Callable[[], None]) -> Callable[[], None]:
        def guarded() -> None:
            if self.done.is_set():
                return
            try:
                job()
            except BaseException as exc:  # a job error ends the run; _finish reports it
                self.job_error = exc
                self._end("failed", str(exc))

        return guarded

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self._end("interrupted", f"{name} received")

    def _watch_worker(self) -> None:
        self.subject.gone.wait()
        if not self.done.is_set():
            exit_ = self.subject.exit
            if self.ends_with_process and not (exit_ and exit_.oom):  # a worker that exits, or is replaced
                self._end("completed", f"{self.subject.noun} {exit_.cause if exit_ else 'exited'}")
            else:
                self._end(*self._loss())

    def _loss(self) -> tuple[str, str]:
        """The status and reason of a run whose measured process is gone: ``oom-killed`` when it
        ran out of memory (soak.inprocess.probes.oom tells), else ``failed``."""
        oom = self.subject.exit.oom if self.subject.exit else None
        if oom is None:
            return "failed", self._loss_reason()
        if self.subject.failure:  # MemoryError
            return "oom-killed", f"{self._loss_reason()}: out of memory, {oom.summary()}"
        return "oom-killed", f"{self.subject.noun} killed by the OOM killer: {oom.summary()}"

    def _record_oom(self, oom: OomEvidence, what: str) -> None:
        """The oom_kill event: when, the limit and where it comes from, the cgroup's counters."""
        t_s = self.elapsed() - max(0.0, time.time() - oom.at_ts)
        self.writer.record_event(t_s, "oom_kill", f"{what} ran out of memory: {oom.summary()}", oom.as_data())

    def _loss_reason(self) -> str:
        failure = self.subject.failure
        if failure and failure.get("phase") in ("call", "import", "setup", "teardown"):
            where = object_field(failure, "where")
            at = f" at {where.get('file')}:{where.get('line')}" if where else ""
            return f"the workload raised {failure.get('error')}{at} ({failure.get('phase')})"
        exit_ = self.subject.exit
        return f"{self.subject.noun} {exit_.cause}" if exit_ else f"{self.subject.noun} lost"

    def _gap_s(self) -> float:
        last = self.db.execute(
            "SELECT max(t_s) FROM snapshots WHERE run_id = ? AND segment < ?", [self.writer.run_id, self.writer.segment]
        ).fetchone()[0]
        return self.segment_start_s - (last or 0.0)

    def _on_skipped(self, event: JobSubmissionEvent, snapshot_job: str) -> None:
        if event.job_id == snapshot_job:
            with self._skipped_lock:
                self._skipped.append(self.elapsed())

    def _record_skipped(self) -> None:
        with self._skipped_lock:
            skipped, self._skipped = self._skipped, []
        if skipped:
            what = "a snapshot was" if len(skipped) == 1 else f"{len(skipped)} snapshots were"
            self.writer.record_event(skipped[0], "snapshot_skipped",
                                     f"{what} due while the previous one was still in progress: skipped",
                                     {"skipped": len(skipped), "last_t_s": skipped[-1]})

    def _record_tree_events(self) -> None:
        if self.tree is not None:
            for t_s, kind, message, data in self.tree.pop_events():
                self.writer.record_event(t_s, kind, message, data)

    def _snapshot(self) -> None:
        timeout = self.options.snapshot_timeout_s or max(60.0, 2 * self.options.interval)
        self._record_skipped()
        self._record_tree_events()
        t_s = self.elapsed()
        restart = self.subject.pop_restart()
        if restart is not None:  # a watched process came back under a new pid: a new segment
            self.writer.start_segment()
            self._searched.clear()  # a new process: its objects are new
            self._attempts.clear()
            if restart.get("oom"):  # the segment ended in an OOM kill
                self._record_oom(restart.pop("oom"), f"pid {restart['old_pid']}")
            self.writer.record_event(t_s, "restart", restart["message"], restart)
        self.requests += 1
        holders, self._holder_requests = self._holder_requests, []
        try:
            body = self.subject.snapshot(self.requests, timeout, holders=holders or None)
        except SnapshotSkipped as skipped:
            self.writer.record_event(t_s, "snapshot_skipped", str(skipped))
            return
        except SnapshotFailed as failed:
            self.writer.record_event(t_s, "snapshot_failed", str(failed))
            return
        if body is None:
            if not self.subject.gone.is_set():
                self.writer.record_event(t_s, "snapshot_timeout", f"worker did not answer a snapshot request within {timeout:.0f}s")
            return
        # Read from outside, for any measured process (a watched one without the agent too).
        process, outside = read_from_outside(self.subject.pid)
        body = {**body, "probes": {**(object_field(body, "probes") or {}), **outside}}
        self.writer.record_snapshot(t_s, process, body)
        holders_found = cast("dict[str, dict[str, Any]]", body.get("holders") or {})
        for subject, found in holders_found.items():  # a search out of time is tried again, twice
            self._attempts[subject] = self._attempts.get(subject, 0) + 1
            if found.get("held_by") or self._attempts[subject] >= HOLDER_ATTEMPTS:
                self._searched.add(subject)
        self.snapshots_taken += 1
        self._state = {
            **self._state,
            "snapshots": self.snapshots_taken,
            "pause_ms": body.get("pause_total_ms"),
            "process": {**process, "traced_bytes": body.get("traced_bytes")},
        }
        self._report_progress(refreshed=False)

    def _thin(self) -> None:
        thin(self.db, self.writer.run_id, older_than_s=self.elapsed() - self.options.keep_full_s,
             keep_every=self.options.thin_every)

    def _analyze(self) -> None:
        started = time.monotonic()
        if self._warm_up is not None and self._warm_up.is_alive():
            # scipy is still importing (seconds, or half a minute on an overloaded machine): a
            # refresh would wait for it in the scheduler's one thread, and snapshots with it.
            return
        if not self.analyst.ready():  # a new analysis process is still importing: the same
            return
        if self.options.analyze_every_s is None and started - self._last_refresh_at < ANALYSIS_COST_RATIO * self._last_refresh_cost:
            return
        first = self._last_refresh_at == float("-inf")
        self.analysis = self._refresh()
        # The first refresh's one-time set-up is not charged: it would hold the next ones back.
        self._last_refresh_cost = 0.0 if first else time.monotonic() - started
        self._last_refresh_at = started
        self._report_progress(refreshed=True)

    def _report_progress(self, refreshed: bool) -> None:
        if self.on_progress is not None:
            state = self.state_of_tree()  # a tree's processes judged together, as its report will
            process = state.get("process", {})
            analysis = self.analysis if self.tree is None else replace(self.analysis, verdict=state["verdict"])
            self.on_progress(
                Progress(self.elapsed() - self.segment_start_s, self.duration_s, self.snapshots_taken,
                         process.get("rss"), process.get("traced_bytes"), analysis,
                         tuple(state["findings"][:5]), refreshed)
            )

    def _refresh(self) -> Analysis:
        """Analyse, store the findings, and publish them with the memory projection for metrics."""
        from soak.supervisor.metrics import published_findings, seconds_until

        computed = self.analyst.compute(self.db)
        refreshed = store(self.writer, computed, self.elapsed(), self.rules, self.target)
        self.judgement = refreshed.judgement
        # the progress display shows the top 5, whatever --metrics-top says
        if self.hello.get("tracer") not in (None, "off"):
            # Without a tracer the worker's RSS is what is judged, and a search's own memory
            # (a megabyte or two, kept by the allocator) would show in it as a step and a plateau.
            self._holder_requests = requests_for(self.db, refreshed.findings, self._searched,
                                                 sites=self.hello.get("tracer") in SITE_TRACERS)
        published = published_findings(refreshed, max(self.options.metrics_top, 5))
        process = self._state.get("process", {})
        limit = self.options.memory_limit_bytes or process.get("cgroup_limit")
        current = process.get("cgroup_bytes") if limit and not self.options.memory_limit_bytes else process.get("rss")
        self._state = {**self._state, "verdict": refreshed.analysis.verdict, **published,
                       "seconds_until_limit": seconds_until(limit, current, refreshed.rss_slope)}
        return refreshed.analysis

    def state_of_tree(self) -> dict[str, Any]:
        """The metrics state: this run's, or with a tree, the tree's processes judged together."""
        if self.tree is None:
            return self._state
        return self.tree.published(self._state, max(self.options.metrics_top, 5))

    def _finish(self) -> RunResult:
        try:
            status, reason, analysis = self._wind_down()
        except SoakError:
            # Storage failed (a full disk, say): what was committed stays committed; stop the
            # worker and report the one-line cause.
            self.subject.stop()
            raise
        finally:
            self.db.close()
        if isinstance(self.job_error, SoakError):
            raise self.job_error
        if self.job_error is not None:
            raise InternalFailure(f"internal error during the run: {self.job_error}") from self.job_error
        verdict = analysis.verdict if self.tree is None else self.tree.verdict(analysis.verdict)
        if status in LOST:
            exit_code = 3
        elif fails(verdict, self.options.fail_on):
            exit_code = 1
        else:
            exit_code = 0
        return RunResult(self.writer.run_id, self.options.db_path, status, reason, verdict, exit_code, self.judgement)

    def _wind_down(self) -> tuple[str, str | None, Analysis]:
        """Final snapshot, stop the worker, record how it ended, final analysis."""
        status, reason = self.end_status, self.end_reason
        if isinstance(self.job_error, SoakError):
            raise self.job_error
        if status == "interrupted":
            self.writer.record_event(self.elapsed(), "signal", reason or "interrupted")
        if self.tree is not None:  # the descendants' runs end first, each with its final snapshot
            self.tree.stop()
            self._record_tree_events()
        if not self.subject.gone.is_set():
            self._snapshot()  # the final snapshot
            self.subject.stop()
        exit_ = self.subject.exit
        if status not in LOST and (self.subject.failure or (exit_ and exit_.oom)):  # e.g. teardown raised while stopping
            status, reason = self._loss()
        if exit_ is not None and exit_.oom is not None:
            self._record_oom(exit_.oom, self.subject.noun)
        self.writer.record_event(
            self.elapsed(), "worker_exit",
            (f"{self.subject.noun} {exit_.cause}" if exit_ else f"{self.subject.noun} left running")
            + (f": {reason}" if status in LOST else ""),
            {"returncode": exit_.returncode if exit_ else None, "failure": self.subject.failure,
             "supervisor_peak_rss": peak_rss_bytes()},
        )
        analysis = self._refresh()
        self.writer.finish(status, reason, self.elapsed())
        return status, reason, analysis

    def _failed_before_start(self) -> RunResult:
        self.subject.gone.wait(10)
        reason = self._loss_reason()
        self.writer.record_event(self.elapsed(), "worker_exit", f"worker failed before the soak started: {reason}",
                                 {"failure": self.subject.failure})
        self.writer.set_verdict("inconclusive")
        self.writer.finish("failed", reason, self.elapsed())
        self.db.close()
        return RunResult(self.writer.run_id, self.options.db_path, "failed", reason, "inconclusive", 3)
