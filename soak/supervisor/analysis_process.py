"""The analysis process: a supervisor's analysis refreshes, run in a child that it recycles.

Why: each refresh runs NumPy and SciPy over every series of the run, and the series get longer
with every snapshot. The allocator keeps memory for each new array length it meets, so a
supervisor that analyses in its own process grows with the number of refreshes, however clean
the workload (3.7 to 12 MB per 1000 snapshots measured: ``benchmarks/supervisor_growth.py``). A child
process that does the refreshes is replaced by a fresh one every ``recycle_every`` refreshes, and
the memory it kept goes with it; the supervisor keeps only the snapshots' small, same-sized work.

The child reads the run's SQLite database itself (its path is all it is given), computes what
:func:`soak.judging.analysis.compute` computes and sends it back as one JSON line (findings, stacks, a
slope); the supervisor judges and stores it (:func:`soak.judging.analysis.store`), so the database has
one writer. No pickle crosses the pipe: JSON lines both ways.

The child never outlives the supervisor: it exits when its stdin (the supervisor's end of the
pipe) closes, and a thread of its own checks every half second that its parent is still the
supervisor, for a supervisor killed while the child is computing. (``PR_SET_PDEATHSIG`` would
fire when the *thread* that started the child ends, and the scheduler's thread ends before the
final refresh.)

A child that crashes, hangs or answers garbage costs nothing of the run: that refresh is done in
the supervisor, an ``analysis_process_failed`` event says why, and the next refresh starts a new
child; after ``MAX_FAILURES`` failures in a row, the run analyses in the supervisor from then on
(an ``analysis_in_process`` event).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, BinaryIO, cast

from soak.analyzers import Analysis, SeriesFinding, Thresholds
from soak.judging.analysis import Computed, compute
from soak.judging.attribution import Attributor
from soak.model.finding import Finding, FindingKey, Frame, key_as_json, key_from_json
from soak.model.options import RECYCLE_EVERY
from soak.model.report import Projection

LONG_RUN_S = 15 * 60.0
"""Runs planned longer than this analyse in an analysis process (unless told otherwise)."""
MAX_FAILURES = 3
"""Failures in a row after which the run analyses in the supervisor."""
START_TIMEOUT_S = 120.0
"""How long a new process may take to import NumPy and SciPy and open the database."""
REPLY_TIMEOUT_S = 600.0
"""How long one refresh may take in the process before it counts as hung."""
PARENT_CHECK_S = 0.5

RecordEvent = Callable[[str, str, dict[str, Any]], None]
"""``(kind, message, data)``: records an event of the run."""


def wanted(option: bool | None, planned_duration_s: float) -> bool:
    """Whether a run analyses in an analysis process: as ``option`` says, else when it is planned
    longer than :data:`LONG_RUN_S` (a short run's growth is not worth a process)."""
    return option if option is not None else planned_duration_s > LONG_RUN_S


class AnalysisFailed(Exception):
    """The analysis process crashed, hung, or answered something else than a result."""


class AnalysisProcess:
    """One child process that computes refreshes of one run on request."""

    def __init__(self, db_path: str, run_id: int, thresholds: Thresholds, application_roots: tuple[str, ...],
                 memory_limit_bytes: int | None) -> None:
        self.refreshes = 0
        self._ready = False
        self._buffer = b""
        self._started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from soak.supervisor.analysis_process import main; main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True,
        )
        config = {"db_path": os.path.abspath(db_path), "run_id": run_id, "thresholds": asdict(thresholds),
                  "application_roots": list(application_roots), "memory_limit_bytes": memory_limit_bytes,
                  "parent": os.getpid()}
        self._send(config)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ready(self) -> bool:
        """Whether the process has said it is ready (without waiting); raises AnalysisFailed if it
        died or took longer than :data:`START_TIMEOUT_S`."""
        if not self._ready:
            line = self._read_line(0.0)
            if line is None:
                if time.monotonic() - self._started > START_TIMEOUT_S:
                    raise AnalysisFailed(f"the analysis process did not start within {START_TIMEOUT_S:.0f}s")
                return False
            self._expect_ready(line)
        return True

    def compute(self) -> Computed:
        """One refresh's computation, in the process; raises AnalysisFailed."""
        if not self._ready:
            line = self._read_line(max(0.0, START_TIMEOUT_S - (time.monotonic() - self._started)))
            if line is None:
                raise AnalysisFailed(f"the analysis process did not start within {START_TIMEOUT_S:.0f}s")
            self._expect_ready(line)
        self._send({"type": "refresh", "n": self.refreshes})
        line = self._read_line(REPLY_TIMEOUT_S)
        if line is None:
            raise AnalysisFailed(f"the analysis process did not answer within {REPLY_TIMEOUT_S:.0f}s")
        reply = _decode(line)
        if reply.get("type") == "error":
            raise AnalysisFailed(f"the analysis process failed: {reply.get('message')}")
        if reply.get("type") != "computed":
            raise AnalysisFailed(f"the analysis process answered {str(reply.get('type'))[:40]!r}")
        try:
            computed = computed_from_json(cast("dict[str, Any]", reply["computed"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AnalysisFailed(f"the analysis process answered a malformed result: {exc!r}") from exc
        self.refreshes += 1
        return computed

    def stop(self, grace_s: float = 5.0) -> None:
        """Close its pipe (it exits), then kill it if it has not within ``grace_s``."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _expect_ready(self, line: bytes) -> None:
        hello = _decode(line)
        if hello.get("type") != "ready":
            raise AnalysisFailed(f"the analysis process could not start: {hello.get('message', hello.get('type'))}")
        self._ready = True

    def _send(self, message: dict[str, Any]) -> None:
        stdin = cast("BinaryIO", self.proc.stdin)
        try:
            stdin.write(json.dumps(message).encode() + b"\n")
            stdin.flush()
        except (OSError, ValueError) as exc:  # ValueError: the pipe was closed
            raise AnalysisFailed(f"the analysis process is gone ({self._exit()})") from exc

    def _read_line(self, timeout_s: float) -> bytes | None:
        """The next line the process wrote, waiting up to ``timeout_s``; None if there is none
        yet; AnalysisFailed if the process closed its end (it exited)."""
        stdout = cast("BinaryIO", self.proc.stdout)
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(stdout.fileno(), 1 << 16)
            if not chunk:
                raise AnalysisFailed(f"the analysis process is gone ({self._exit()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _exit(self) -> str:
        try:
            code = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


class Analyst:
    """Where a supervisor's refreshes are computed: in an analysis process, recycled every
    ``recycle_every`` refreshes, or in the supervisor (``use_process`` False, or after
    :data:`MAX_FAILURES` failures in a row). Called by one thread at a time."""

    def __init__(self, db_path: str, run_id: int, thresholds: Thresholds, attributor: Attributor,
                 memory_limit_bytes: int | None, *, use_process: bool, recycle_every: int = RECYCLE_EVERY,
                 record_event: RecordEvent | None = None) -> None:
        self.db_path, self.run_id, self.thresholds = db_path, run_id, thresholds
        self.attributor = attributor
        self.memory_limit_bytes = memory_limit_bytes
        self.use_process = use_process
        self.recycle_every = recycle_every
        self.record_event = record_event or (lambda kind, message, data: None)
        self.failures = 0
        self.process: AnalysisProcess | None = None
        self.started = 0
        """Analysis processes started so far."""
        if use_process:
            self._start()

    def ready(self) -> bool:
        """False while a new analysis process is still importing (a refresh now would wait for it)."""
        if self.process is None:
            return True
        try:
            return self.process.ready()
        except AnalysisFailed as failed:
            self._failed(failed)
            return True  # the next refresh is computed here

    def compute(self, db: Any) -> Computed:
        """The refresh's computation: in the analysis process if there is one, else (or if it
        fails) here, on ``db``."""
        if self.process is not None:
            try:
                computed = self.process.compute()
            except AnalysisFailed as failed:
                self._failed(failed)
            else:
                self.failures = 0
                if self.process.refreshes >= self.recycle_every:
                    self._stop()
                    self._start()  # it imports while the supervisor snapshots
                return computed
        return compute(db, self.run_id, self.thresholds, self.attributor, self.memory_limit_bytes)

    def close(self) -> None:
        self._stop()

    def _start(self) -> None:
        self.process = AnalysisProcess(self.db_path, self.run_id, self.thresholds, self.attributor.application_roots,
                                       self.memory_limit_bytes)
        self.started += 1
        self.record_event("analysis_process", f"analysis process {self.started} started (pid {self.process.pid})",
                          {"pid": self.process.pid, "generation": self.started})

    def _stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def _failed(self, failed: AnalysisFailed) -> None:
        assert self.process is not None
        pid = self.process.pid
        self.process.proc.kill()  # hung, or already gone
        self._stop()
        self.failures += 1
        self.record_event("analysis_process_failed", f"{failed}; this refresh is computed in the supervisor",
                          {"pid": pid, "failures": self.failures})
        if self.failures >= MAX_FAILURES:
            self.use_process = False
            self.record_event("analysis_in_process",
                              f"the analysis process failed {self.failures} times in a row; the supervisor analyses from now on",
                              {"failures": self.failures})
        else:
            self._start()  # it imports while the supervisor snapshots


# --- what crosses the pipe ----------------------------------------------------------------------

def computed_to_json(computed: Computed) -> dict[str, Any]:
    analysis = computed.analysis
    return {
        "analysis": {"verdict": analysis.verdict, "warmup_until_s": analysis.warmup_until_s, "points": analysis.points,
                     "tested": analysis.tested, "needed_s": analysis.needed_s,
                     "findings": [{"key": key_as_json(cast("FindingKey", f.key)), "verdict": f.verdict,
                                   "growth_bytes_per_hour": f.growth_bytes_per_hour,
                                   "growth_count_per_hour": f.growth_count_per_hour, "p_value": f.p_value,
                                   "q_value": f.q_value, "evidence": f.evidence} for f in analysis.findings]},
        "findings": [{"row": finding.row(), "traceback": [frame.as_dict() for frame in finding.traceback]}
                     for finding in computed.findings],
        "rss_slope": computed.rss_slope,
        "projection": computed.projection,
    }


def computed_from_json(data: dict[str, Any]) -> Computed:
    analysis = data["analysis"]
    findings = [SeriesFinding(key_from_json(f["key"]), f["verdict"], float(f["growth_bytes_per_hour"]),
                              f["growth_count_per_hour"], f["p_value"], f["q_value"], dict(f["evidence"]))
                for f in analysis["findings"]]
    return Computed(
        Analysis(analysis["verdict"], findings, float(analysis["warmup_until_s"]), int(analysis["points"]),
                 int(analysis["tested"]), analysis["needed_s"]),
        [Finding.from_row(f["row"], [Frame.of(frame) for frame in f["traceback"]]) for f in data["findings"]],
        float(data["rss_slope"]),
        cast("Projection", data["projection"]),
    )


def _plain(value: Any) -> Any:
    """NumPy scalars as the Python numbers they hold (json's ``default``)."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise AnalysisFailed(f"the analysis process wrote a line that is not JSON: {line[:80]!r}") from exc
    if not isinstance(message, dict):
        raise AnalysisFailed(f"the analysis process wrote {type(message).__name__}, not an object")
    return cast("dict[str, Any]", message)


# --- the child ----------------------------------------------------------------------------------

def _exit_with(parent: int) -> None:
    """Exit at once when ``parent`` is no longer this process's parent (it died)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="soak-parent-watch", daemon=True).start()


def main() -> None:
    """The analysis process: a config line, then one result line per request, until stdin closes."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # only results go to the supervisor: anything else printed goes to stderr

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message, default=_plain) + "\n")
        out.flush()

    config = json.loads(sys.stdin.readline() or "{}")
    _exit_with(int(config.get("parent") or os.getppid()))
    try:
        import scipy.stats  # noqa: F401  (the first refresh would otherwise import it)

        from soak.storage import open_database

        db = open_database(config["db_path"], create=False)
        thresholds = Thresholds.from_dict(config["thresholds"])
        attributor = Attributor(config["application_roots"])
        run_id, limit = int(config["run_id"]), config.get("memory_limit_bytes")
    except Exception as exc:  # reported to the supervisor, which analyses itself
        send({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        return
    send({"type": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            computed = compute(db, run_id, thresholds, attributor, limit)
            send({"type": "computed", "computed": computed_to_json(computed)})
        except Exception as exc:
            send({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
