"""The supervisor's handle on its worker: spawn it, ask it for snapshots, notice when it dies."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypedDict

from soak.inprocess.probes.oom import OomEvidence, OomWatch
from soak.inprocess.protocol import Channel, Message, ProtocolError

HELLO_TIMEOUT_S = 600.0
"""Importing a big application can take a while; a worker that says nothing for this long is stuck."""

WORKER_MAIN = (
    "import sys; cwd = sys.path.pop(0) if sys.path[:1] == [''] else None; from soak.inprocess.worker import main; "
    "cwd is None or sys.path.insert(0, cwd); sys.exit(main())"
)
"""The worker's entry, run with ``python -c`` rather than ``-m soak.inprocess.worker``: under ``-m``, runpy's
two frames and soak.inprocess.worker's module body sit under every call of the workload, and tracemalloc
finds the line of each of them on every traced allocation (issue 10; see soak.inprocess.worker.main).
``-c`` puts the current directory first on ``sys.path``: leaksoak itself is imported without it,
so that a ``soak/`` folder there (a checkout, or a project's own folder of soak tests) cannot
shadow the installed package, and it is put back before the workload is imported."""


@dataclass(frozen=True)
class WorkerExit:
    returncode: int
    cause: str
    """In words: 'exited with code 3', 'killed by SIGKILL (the OOM killer: ...)', 'segmentation fault'."""
    oom: OomEvidence | None = None
    """Set when the process ran out of memory: OOM-killed, or dead of MemoryError."""


def describe_exit(returncode: int, killed: str | None = None) -> str:
    """``killed``: what is known of who sent a SIGKILL (the OOM killer, or not as far as anyone tells)."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    signum = -returncode
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    meaning = {
        "SIGKILL": f" ({killed or 'killed from outside'})",
        "SIGSEGV": " (segmentation fault)",
        "SIGABRT": " (aborted, e.g. os.abort() or a failed C assertion)",
        "SIGBUS": " (bus error)",
        "SIGTERM": " (terminated)",
    }.get(name, "")
    return f"killed by {name}{meaning}"


class SnapshotFailed(Exception):
    """One snapshot could not be taken (the measured process goes on): its one-line reason."""


class SnapshotSkipped(SnapshotFailed):
    """The measured process was still taking a previous snapshot (another client's): none taken."""


class _Replaced(TypedDict):
    message: str
    old_pid: int
    new_pid: int
    gap_s: float
    """Seconds between the old process' end and the new one's discovery."""


class Restart(_Replaced, total=False):
    """A watched process replaced by a new one that matches (``soak watch --match``): a new segment."""

    oom: OomEvidence
    """Set when the old process was OOM-killed."""


class Subject(Protocol):
    """What the supervisor measures: its own worker, or a watched process (soak.supervisor.watch)."""

    pid: int
    noun: str
    """How reports name it: 'worker' or 'watched process'."""
    gone: threading.Event
    failure: Message | None
    exit: WorkerExit | None

    def describe(self) -> str: ...

    def snapshot(self, seq: int, timeout_s: float, holders: list[Message] | None = None) -> Message | None:
        """Snapshot ``seq``; None when the process is gone or does not answer in time.

        ``holders``: subjects whose holder chains to search in this snapshot (soak.inprocess.probes.holders);
        a subject that cannot search them ignores it. Raises SnapshotFailed when it answered that
        this one snapshot failed.
        """

    def pop_restart(self) -> Restart | None: ...

    def stop(self, grace_s: float = 10.0) -> None: ...

    def kill(self) -> None: ...


class WorkerProcess:
    noun = "worker"

    def __init__(self, target: str, *, frames: int, tracer: str, concurrency: int,
                 sample_interval: int | None = None, loop_block_s: float | None = None, native: bool = False,
                 pause_budget: float | None = None, pause_max_every_s: float | None = None) -> None:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        command = [
            sys.executable, "-c", WORKER_MAIN,
            "--target", target,
            "--request-fd", str(request_read),
            "--reply-fd", str(reply_write),
            "--frames", str(frames),
            "--tracer", tracer,
            "--concurrency", str(concurrency),
            *(["--sample-interval", str(sample_interval)] if sample_interval is not None else []),
            *(["--loop-block", repr(loop_block_s)] if loop_block_s is not None else []),
            *(["--native"] if native else []),
            *(["--pause-budget", repr(pause_budget)] if pause_budget is not None else []),
            *(["--pause-max-every", repr(pause_max_every_s)] if pause_max_every_s is not None else []),
        ]
        # Own session: a Ctrl-C at the terminal reaches the supervisor only, which ends the run.
        self.process = subprocess.Popen(command, pass_fds=(request_read, reply_write), start_new_session=True)
        os.close(request_read)
        os.close(reply_write)
        self.pid = self.process.pid
        self.oom_watch = OomWatch(self.pid)
        self.channel = Channel(os.fdopen(reply_read, "rb"), os.fdopen(request_write, "wb"))
        self._startup: queue.Queue[Message] = queue.Queue()
        self._snapshots: queue.Queue[Message] = queue.Queue()
        self.failure: Message | None = None
        self.stopped: Message | None = None
        self.gone = threading.Event()
        self.exit: WorkerExit | None = None
        self._reader = threading.Thread(target=self._read, name="soak-worker-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = self.channel.receive()
            except (ProtocolError, OSError, ValueError) as exc:
                message = None
                self.failure = self.failure or {"phase": "protocol", "error": str(exc)}
            if message is None:
                break
            kind = message["type"]
            if kind == "snapshot":
                self._snapshots.put(message)
            elif kind == "failed":
                self.failure = message
                self._startup.put(message)
            elif kind == "stopped":
                self.stopped = message
            else:
                self._startup.put(message)
        returncode = self.process.wait()
        self.exit = self._exit(returncode)
        self._startup.put({"type": "exit"})
        self._snapshots.put({"type": "exit"})
        self.gone.set()

    def _exit(self, returncode: int) -> WorkerExit:
        """How the worker ended, and whether it ran out of memory (see soak.inprocess.probes.oom)."""
        if returncode == -signal.SIGKILL:
            oom = self.oom_watch.oom_killed()
            note = f"the OOM killer: {oom.summary()}" if oom else self.oom_watch.explain_not()
            return WorkerExit(returncode, describe_exit(returncode, note), oom)
        if self.failure and str(self.failure.get("error", "")).startswith("MemoryError"):
            return WorkerExit(returncode, describe_exit(returncode), self.oom_watch.memory_error())
        return WorkerExit(returncode, describe_exit(returncode))

    def describe(self) -> str:
        return f"worker pid {self.pid} started"

    def pop_restart(self) -> Restart | None:
        return None  # a worker that dies ends the run; only watched processes come back

    def wait_ready(self) -> Message:
        """The worker's first message: ``hello``, ``bad_target``, ``failed`` or ``exit``."""
        try:
            message = self._startup.get(timeout=HELLO_TIMEOUT_S)
            self.oom_watch.refresh_limit()  # the workload's setup may have set its own ulimit -v
            return message
        except queue.Empty:
            self.kill()
            return {"type": "failed", "phase": "import", "error": f"no answer after {HELLO_TIMEOUT_S:.0f}s"}

    def snapshot(self, seq: int, timeout_s: float, holders: list[Message] | None = None) -> Message | None:
        """Ask for snapshot ``seq``; None if the worker is gone or does not answer in time."""
        if self.gone.is_set():
            return None
        try:
            self.channel.send("snapshot", seq=seq, **({"holders": holders} if holders else {}))
        except OSError:
            return None
        while True:
            try:
                message = self._snapshots.get(timeout=timeout_s)
            except queue.Empty:
                return None
            if message["type"] == "exit":
                self._snapshots.put(message)
                return None
            if message.get("seq") == seq:
                return message

    def stop(self, grace_s: float = 10.0) -> None:
        """Ask the worker to finish (teardown runs there); kill it after ``grace_s``."""
        if not self.gone.is_set():
            try:
                self.channel.send("stop")
            except OSError:
                pass
        if not self.gone.wait(grace_s):
            self.kill()
            self.gone.wait(5)

    def kill(self) -> None:
        try:
            self.process.kill()
        except OSError:
            pass


class Descendants(Protocol):
    """The measured process's descendants, each watched as a run of its own and judged with it
    (soak.supervisor.tree)."""

    def start(self, root_run_id: int, elapsed: Callable[[], float]) -> None: ...

    def pop_events(self) -> list[tuple[float, str, str, dict[str, object]]]:
        """Events of the root's run (t_s, kind, message, data) since the last call."""
        ...

    def stop(self) -> None: ...

    def verdict(self, root_verdict: str) -> str:
        """The tree's verdict: the most severe of the root's and the descendants'."""
        ...

    def published(self, root_state: dict[str, object], top: int) -> dict[str, object]:
        """The metrics state of the tree, judged together, from the root's."""
        ...
