"""A process someone else started, watched from outside (the subject of ``soak watch``), and the
connection to its agent.

Any process gets process-level series (RSS, USS, PSS, fds, threads, its cgroup's memory); a
Python process that runs the agent (soak.agent) also answers heap snapshots over its socket.
With ``--match``, a watched service that restarts under a new pid continues the same run as a
new segment. The watched process is never stopped or signalled by leaksoak.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import psutil

from soak.errors import BadInput
from soak.inprocess.agent.embedding import AgentOptions
from soak.inprocess.agent.server import SOCKET_ENV, default_socket_path
from soak.inprocess.probes.oom import OomWatch
from soak.inprocess.protocol import Channel, Message, ProtocolError
from soak.supervisor.attach import attach as attach_agent
from soak.supervisor.attach import detach as detach_agent
from soak.supervisor.worker_process import Restart, SnapshotFailed, SnapshotSkipped, WorkerExit

if TYPE_CHECKING:
    pass

POLL_S = 0.2


class _AgentLost(Exception):
    """The agent's connection broke during a request (why, in one line)."""


def connect_unix(sock: socket.socket, path: str, timeout_s: float) -> None:
    """Connect ``sock`` to the Unix socket at ``path``. A listener whose backlog is full refuses at
    once (EAGAIN), even with a timeout set: try again until ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


class AgentClient:
    """One connection to an agent's socket."""

    def __init__(self, path: str, timeout_s: float = 10.0) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        connect_unix(self.sock, path, timeout_s)
        self.channel = Channel(self.sock.makefile("rb"), self.sock.makefile("wb"))
        self.channel.send("hello")
        reply = self.channel.receive()
        if reply is None or reply["type"] != "hello":
            self.close()
            raise OSError(f"the agent at {path} refused: {(reply or {}).get('message', 'no answer')}")
        self.hello = reply

    def snapshot(self, seq: int, timeout_s: float) -> Message | None:
        self.sock.settimeout(timeout_s)
        self.channel.send("snapshot", seq=seq)
        reply = self.channel.receive()
        if reply is not None and reply["type"] == "error" and reply.get("skipped") is True:
            raise SnapshotSkipped(f"the agent skipped snapshot {seq}: {reply.get('message')}")
        if reply is not None and reply["type"] == "error":
            raise SnapshotFailed(f"the agent could not take snapshot {seq}: {reply.get('message')}")
        if reply is None or reply["type"] != "snapshot":
            return None
        return reply

    def close(self) -> None:
        self.channel.close()
        self.sock.close()


def agent_socket_for(pid: int, explicit: str | None, beside: str | None = None) -> str | None:
    """The agent socket of ``pid``: the one given, the one in its environment, or the default.

    A process of a tree listens at ``agent-<pid>.sock`` beside its root's socket (``beside``) and
    beside the socket its environment names, which it inherited."""
    candidates = [explicit] if explicit else []
    own = f"agent-{pid}.sock"
    if beside:
        candidates.append(os.path.join(os.path.dirname(beside), own))
    try:
        proc = psutil.Process(pid)
        env_path = proc.environ().get(SOCKET_ENV)
        if env_path:
            candidates += [os.path.join(os.path.dirname(env_path), own), env_path]
        candidates.append(default_socket_path(pid, proc.uids().real))
    except (psutil.Error, OSError):
        candidates.append(default_socket_path(pid))
    for path in candidates:
        if path and os.path.exists(path):
            return path
    return None


def find_matching(pattern: re.Pattern[str], exclude: set[int]) -> list[psutil.Process]:
    """Processes whose command line matches ``pattern``, oldest first, leaksoak's own excluded."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        if proc.info["pid"] in exclude:
            continue
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline and pattern.search(cmdline):
            found.append(proc)
    return sorted(found, key=lambda p: p.info["create_time"])


def roots(found: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``found`` whose parent is not among them, in order: a pre-fork server's
    workers have its master's command line, and the master is the one to watch (its tree)."""
    pids = {proc.pid for proc in found}
    top = []
    for proc in found:
        try:
            if proc.ppid() not in pids:
                top.append(proc)
        except psutil.Error:
            continue
    return top


def own_family() -> set[int]:
    me = psutil.Process()
    family = {me.pid, *(p.pid for p in me.parents()), *(p.pid for p in me.children(recursive=True))}
    return family


class WatchedProcess:
    """A process watched from outside; the Subject the supervisor measures in ``soak watch``."""

    noun = "watched process"

    def __init__(self, pid: int, *, match: re.Pattern[str] | None, socket_path: str | None, use_agent: bool,
                 attach: AgentOptions | None = None) -> None:
        """``attach``: start the agent inside the process (and any process that replaces it, with
        ``match``) with these options, and take it out at :meth:`stop`; a refusal of the first
        attach raises BadInput, the process untouched."""
        self.pid = pid
        self.match = match
        self.socket_path = socket_path
        self.use_agent = use_agent or attach is not None
        self.attach_options = attach
        self.attached: str | None = None
        """The socket of the agent this watch started inside the process, to take out at the end."""
        if attach is not None:
            self.attached = attach_agent(pid, attach, socket_path)
            self.socket_path = self.attached
        self.gone = threading.Event()
        self.failure: Message | None = None
        self.exit: WorkerExit | None = None
        self.agent: AgentClient | None = None
        self.agent_error: str | None = None
        self._restart: Restart | None = None
        self._had_agent = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.oom_watch = OomWatch(pid)
        self._connect()
        threading.Thread(target=self._monitor, name="soak-watch", daemon=True).start()

    def _connect(self) -> None:
        self.agent = None
        if not self.use_agent:
            return
        path = agent_socket_for(self.pid, self.socket_path)
        if path is None and self.attach_options is not None:  # a process that replaced the attached one
            try:
                path = self.attached = attach_agent(self.pid, self.attach_options, None)
            except BadInput as exc:
                self.agent_error = str(exc)
                return
        if path is None:
            self.agent_error = "no agent socket found"
            return
        try:
            agent = AgentClient(path)
        except (OSError, ProtocolError) as exc:
            self.agent_error = str(exc)
            return
        if agent.hello.get("pid") not in (None, self.pid):
            agent.close()
            self.agent_error = f"the agent at {path} belongs to pid {agent.hello.get('pid')}, not {self.pid}"
            return
        self.agent = agent

    @property
    def hello(self) -> Message:
        root = self.agent.hello.get("application_root") if self.agent else None
        return {"type": "hello", "pid": self.pid, "application_root": root}

    def describe(self) -> str:
        if self.agent is not None:
            native = ", with native tracking" if self.agent.hello.get("native") else ""
            return f"watching pid {self.pid} through its agent at {self.agent.path}{native}"
        why = f" ({self.agent_error})" if self.agent_error and self.use_agent else ""
        return f"watching pid {self.pid}, process-level only: no heap snapshots{why}"

    def _monitor(self) -> None:
        while not self._stopping.is_set():
            try:
                psutil.Process(self.pid).wait(timeout=None)
            except psutil.NoSuchProcess:
                pass
            except psutil.Error:
                time.sleep(POLL_S)
                continue
            if self._stopping.is_set():
                return
            gone_at = time.time()
            # Not our child: its exit status is not ours to see, so an OOM kill is what its
            # cgroup counted (or the kernel log said) since the last snapshot.
            oom = self.oom_watch.oom_killed()
            ended = f"was killed by the OOM killer: {oom.summary()}" if oom else "exited"
            if self.match is None:
                self.exit = WorkerExit(-signal.SIGKILL if oom else 0, f"(pid {self.pid}) {ended}", oom)
                self.gone.set()
                return
            new = self._await_replacement()
            if new is None:
                return
            with self._lock:
                old, self.pid = self.pid, new
                self.oom_watch = OomWatch(new)
                if self.agent is not None:
                    self.agent.close()
                self._connect()
                restart: Restart = {
                    "message": f"pid {old} {ended}; pid {new} matches and is watched from now on"
                    + ("" if self.agent else " (process-level only)"),
                    "old_pid": old, "new_pid": new, "gap_s": round(time.time() - gone_at, 3),
                }
                if oom:
                    restart["oom"] = oom
                self._restart = restart

    def _await_replacement(self) -> int | None:
        assert self.match is not None
        while not self._stopping.is_set():
            found = find_matching(self.match, own_family())
            found = roots(found)
            if found:
                time.sleep(POLL_S)  # let a freshly started agent bind its socket
                return found[-1].pid
            time.sleep(POLL_S)
        return None

    def pop_restart(self) -> Restart | None:
        with self._lock:
            restart, self._restart = self._restart, None
            return restart

    def snapshot(self, seq: int, timeout_s: float, holders: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        # holder chains are the worker's (soak run) only: the agent does not search them yet
        with self._lock:
            if not psutil.pid_exists(self.pid):
                return None
            self.oom_watch.rebase()
            if self.agent is None and self._had_agent and not self.gone.is_set():
                self._connect()  # the agent dropped its connection earlier: is it back?
            if self.agent is None:
                return {"pid": self.pid}  # process-level only
            try:
                return self._agent_snapshot(seq, timeout_s)
            except _AgentLost as lost:
                # The same process, its agent's connection gone: connect again (a new connection
                # numbers its tracebacks afresh and sends them all). Until that works, or when
                # the process is being replaced, readings are process-level only.
                self._connect()
                if self.agent is None:
                    raise SnapshotFailed(f"lost the agent's connection ({lost}); process-level readings until it answers again"
                                         f" ({self.agent_error})") from None
                try:
                    return self._agent_snapshot(seq, timeout_s)
                except _AgentLost as again:
                    raise SnapshotFailed(f"lost the agent's connection twice in one snapshot ({again})") from None

    def _agent_snapshot(self, seq: int, timeout_s: float) -> Message:
        assert self.agent is not None
        try:
            body = self.agent.snapshot(seq, timeout_s)
        except (OSError, ProtocolError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
        else:
            if body is not None:
                return body
            reason = "it closed the connection"
        self.agent.close()
        self.agent = None
        self._had_agent = True
        raise _AgentLost(reason)

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop watching. The watched process itself is left alone; an agent this watch attached is
        taken out of it (its allocators are the interpreter's own again)."""
        self._stopping.set()
        if self.agent is not None:
            self.agent.close()
        attached, self.attached = self.attached, None
        if attached is not None and not self.gone.is_set():
            detach_agent(attached)

    def kill(self) -> None:
        self.stop()
