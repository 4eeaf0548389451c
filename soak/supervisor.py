"""The supervisor of ``soak run``: it never runs user code. It schedules snapshots of its
worker, stores them, analyses the series, and records how the run ended."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from soak import sources
from soak.analysis import refresh
from soak.analyzers import Analysis, Thresholds
from soak.attribution import Attributor
from soak.errors import BadInput, InternalFailure, SoakError
from soak.probes.process import sample_process
from soak.storage import open_database
from soak.storage.writer import RunWriter
from soak.targets import parse_target
from soak.worker_process import WorkerProcess

FAIL_ON = ("leak", "suspect", "never")
TRACERS = ("exact", "off")


@dataclass
class RunOptions:
    """Everything ``soak run`` takes; the CLI's options map one to one onto these fields."""

    target: str
    duration_s: float
    interval_s: float = 30.0
    db_path: str = "soak.db"
    name: str | None = None
    frames: int = 10
    concurrency: int = 1
    tracer: str = "exact"
    fail_on: str = "suspect"
    analyze_every_s: float | None = None
    """How often to refresh the analysis during the run; default every 5 snapshots, at least 5 s."""
    snapshot_timeout_s: float | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)

    def check(self) -> None:
        if self.interval_s <= 0 or self.duration_s <= 0:
            raise BadInput("--interval and --duration must be longer than zero")
        if self.interval_s > self.duration_s:
            raise BadInput("--interval is longer than --duration; no snapshot would be taken twice")
        if not 1 <= self.frames <= 100:
            raise BadInput("--frames must be between 1 and 100")
        if self.concurrency < 1:
            raise BadInput("--concurrency must be at least 1")
        if self.fail_on not in FAIL_ON:
            raise BadInput(f"--fail-on must be one of {', '.join(FAIL_ON)}")
        if self.tracer not in TRACERS:
            raise BadInput(f"--tracer must be one of {', '.join(TRACERS)}")


@dataclass(frozen=True)
class RunResult:
    run_id: int
    db_path: str
    status: str
    """completed | interrupted | failed"""
    reason: str | None
    verdict: str
    exit_code: int


@dataclass(frozen=True)
class Progress:
    """What a progress display needs after each analysis refresh."""

    elapsed_s: float
    duration_s: float
    snapshots: int
    rss: int | None
    traced_bytes: int | None
    analysis: Analysis


def run(options: RunOptions, on_progress: Callable[[Progress], None] | None = None) -> RunResult:
    """Soak ``options.target`` and return how it ended. Raises BadInput for bad input; a worker
    that fails is a result (exit code 3), not an exception, once the run has a row."""
    options.check()
    spec = parse_target(options.target)
    if os.path.exists(options.db_path):
        open_database(options.db_path, create=False).close()  # fail fast on a wrong file
    worker = WorkerProcess(spec.text, frames=options.frames, tracer=options.tracer, concurrency=options.concurrency)
    try:
        hello = worker.wait_ready()
        if hello["type"] == "bad_target":
            worker.stop(grace_s=5)
            raise BadInput(hello["message"])
        supervisor = Supervisor(options, spec.default_name, worker, hello)
    except BaseException:
        worker.kill()
        raise
    return supervisor.run(on_progress)


class Supervisor:
    def __init__(self, options: RunOptions, default_name: str, worker: WorkerProcess, hello: dict[str, Any]) -> None:
        self.options = options
        self.worker = worker
        self.started = time.time()
        self.t0 = time.monotonic()
        # One connection, used by the scheduler's single job thread and, after it stops, the main thread.
        self.db = open_database(options.db_path)
        self.writer = RunWriter.create_run(
            self.db,
            name=options.name or default_name,
            target=options.target,
            mode="run",
            planned_duration_s=options.duration_s,
            interval_s=options.interval_s,
            options={k: v for k, v in asdict(options).items() if k not in ("thresholds",)}
            | {"thresholds": asdict(options.thresholds)},
            function_name=sources.function_name,
            started_ts=self.started,
        )
        self.attributor = Attributor([hello["application_root"]] if hello.get("application_root") else [])
        self.hello = hello
        self.seq = 0
        self.done = threading.Event()
        self.end_status = "completed"
        self.end_reason: str | None = None
        self.job_error: BaseException | None = None
        self.last_analysis: Analysis | None = None
        self.last_snapshot: dict[str, Any] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _end(self, status: str, reason: str | None) -> None:
        if not self.done.is_set():
            self.end_status, self.end_reason = status, reason
            self.done.set()

    def run(self, on_progress: Callable[[Progress], None] | None) -> RunResult:
        options = self.options
        if self.hello["type"] != "hello":  # import or setup raised: recorded as a failed run
            return self._failed_before_start()
        self.writer.record_event(0.0, "worker_start", f"worker pid {self.worker.pid} started", {"pid": self.worker.pid})
        self.on_progress = on_progress
        analyze_every = options.analyze_every_s or max(5 * options.interval_s, 5.0)
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},  # jobs share the DB connection: one at a time
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        start = datetime.now().astimezone()
        scheduler.add_job(self._guard(self._snapshot), "interval", seconds=options.interval_s, next_run_time=start)
        scheduler.add_job(self._guard(self._analyze), "interval", seconds=analyze_every,
                          next_run_time=start + timedelta(seconds=analyze_every))
        scheduler.add_job(self._end, "date", run_date=start + timedelta(seconds=options.duration_s),
                          args=["completed", None])
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        watcher = threading.Thread(target=self._watch_worker, name="soak-worker-watch", daemon=True)
        watcher.start()
        scheduler.start()
        try:
            self.done.wait()
        finally:
            scheduler.shutdown(wait=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._finish()

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
        self.worker.gone.wait()
        if not self.done.is_set():
            self._end("failed", self._loss_reason())

    def _loss_reason(self) -> str:
        failure = self.worker.failure
        if failure and failure.get("phase") in ("call", "import", "setup", "teardown"):
            where = failure.get("where")
            at = f" at {where['file']}:{where['line']}" if where else ""
            return f"the workload raised {failure['error']}{at} ({failure['phase']})"
        exit_ = self.worker.exit
        return f"worker {exit_.cause}" if exit_ else "worker lost"

    def _snapshot(self) -> None:
        timeout = self.options.snapshot_timeout_s or max(60.0, 2 * self.options.interval_s)
        t_s = self.elapsed()
        body = self.worker.snapshot(self.seq, timeout)
        if body is None:
            if not self.worker.gone.is_set():
                self.writer.record_event(t_s, "snapshot_timeout", f"worker did not answer snapshot {self.seq} within {timeout:.0f}s")
            return
        process = asdict(sample_process(self.worker.pid))
        self.writer.record_snapshot(self.seq, t_s, process, body)
        self.last_snapshot = {"rss": process["rss"], "traced_bytes": body.get("traced_bytes")}
        self.seq += 1

    def _analyze(self) -> None:
        self.last_analysis = refresh(self.db, self.writer, self.options.thresholds, self.attributor, self.elapsed())
        if self.on_progress is not None:
            self.on_progress(
                Progress(self.elapsed(), self.options.duration_s, self.seq, self.last_snapshot.get("rss"),
                         self.last_snapshot.get("traced_bytes"), self.last_analysis)
            )

    def _finish(self) -> RunResult:
        status, reason = self.end_status, self.end_reason
        if status == "interrupted":
            self.writer.record_event(self.elapsed(), "signal", reason or "interrupted")
        if not self.worker.gone.is_set():
            self._snapshot()  # the final snapshot
            self.worker.stop()
        if self.worker.failure and status != "failed":  # e.g. teardown raised while stopping
            status, reason = "failed", self._loss_reason()
        exit_ = self.worker.exit
        self.writer.record_event(
            self.elapsed(), "worker_exit",
            f"worker {exit_.cause if exit_ else 'state unknown'}" + (f": {reason}" if status == "failed" else ""),
            {"returncode": exit_.returncode if exit_ else None, "failure": self.worker.failure},
        )
        analysis = refresh(self.db, self.writer, self.options.thresholds, self.attributor, self.elapsed())
        self.writer.finish(status, reason, self.elapsed())
        self.db.conn.close()
        if isinstance(self.job_error, SoakError):
            raise self.job_error
        if self.job_error is not None:
            raise InternalFailure(f"internal error during the run: {self.job_error}") from self.job_error
        if status == "failed":
            exit_code = 3
        elif analysis.verdict == "leak" and self.options.fail_on != "never":
            exit_code = 1
        elif analysis.verdict == "suspect" and self.options.fail_on == "suspect":
            exit_code = 1
        else:
            exit_code = 0
        return RunResult(self.writer.run_id, self.options.db_path, status, reason, analysis.verdict, exit_code)

    def _failed_before_start(self) -> RunResult:
        self.worker.gone.wait(10)
        reason = self._loss_reason()
        self.writer.record_event(0.0, "worker_exit", f"worker failed before the soak started: {reason}",
                                 {"failure": self.worker.failure})
        self.writer.set_verdict("inconclusive")
        self.writer.finish("failed", reason, 0.0)
        self.db.conn.close()
        return RunResult(self.writer.run_id, self.options.db_path, "failed", reason, "inconclusive", 3)

