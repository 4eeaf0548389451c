"""The agent's socket server: it listens on a Unix socket (mode 0600, in a directory of mode
0700) and answers two requests, ``hello`` and ``snapshot``, with the same JSON messages the worker
sends. Requests are data, never code; anything else, anything oversized, and any peer of another
user is refused."""

from __future__ import annotations

import os
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when the agent starts (Agent.start), not with this module
    from soak.inprocess.probes.inprocess import InProcessProbes
    from soak.inprocess.protocol import Channel, Message

SOCKET_ENV = "SOAK_AGENT_SOCKET"
MAX_REQUEST_BYTES = 4096
SNAPSHOT_SWITCH_INTERVAL_S = 0.1
"""The switch interval while a snapshot runs (the service's own, 5 ms by default, otherwise):
longer than a snapshot with the sampled tracer takes, short enough to bound a stall."""


def default_socket_path(pid: int | None = None, uid: int | None = None) -> str:
    """Where an agent listens unless told otherwise; ``soak watch --pid`` looks here."""
    uid = os.getuid() if uid is None else uid
    pid = os.getpid() if pid is None else pid
    return os.path.join("/tmp", f"leaksoak-{uid}", f"agent-{pid}.sock")


class AgentError(Exception):
    """The agent cannot start; the message says why and what to do."""


class Agent:
    def __init__(self, path: str, frames: int = 10, tracer: str = "sampled", sample_interval: int | None = None,
                 native: bool = False, pause_budget: float | None = None) -> None:
        from soak.inprocess.probes.budget import AGENT_BUDGET
        from soak.inprocess.probes.native import NativeProbe, native_unavailable
        from soak.inprocess.probes.tracer import BadTracer, make_tracer

        self.path = path
        self.pid = os.getpid()
        """The process this agent serves; after a fork, the child's is another agent (see forked)."""
        self.options = (frames, tracer, sample_interval, native, pause_budget)
        self.on_detach: Callable[[], None] | None = None
        """Set when ``soak watch --attach`` started this agent in a running process: what undoes it,
        called on a ``detach`` request once answered. None: the service started it; not detachable."""
        self.pause_budget = AGENT_BUDGET if pause_budget is None else pause_budget
        """The share of wall time a snapshot may pause the service (soak.inprocess.probes.budget)."""
        if native and (reason := native_unavailable()) is not None:
            raise AgentError(f"--native cannot run here: {reason}")
        self.native = NativeProbe(frames) if native else None
        try:
            self.tracer = make_tracer(tracer, frames, sample_interval)
        except BadTracer as exc:
            raise AgentError(str(exc)) from exc
        from soak.inprocess.probes.async_health import AsyncProbes

        self.async_probes = AsyncProbes()
        """Started on the service's event loop by :func:`watch_loop`; until then they report nothing."""
        self._collect_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._closed = threading.Event()

    def forked(self, path: str) -> Agent:
        """A new agent for a forked child of this one's process, listening at ``path``: the same
        options and the same (running) tracer; no native tracking (memray does not follow forks)."""
        frames, _, _, _, pause_budget = self.options
        child = Agent(path, frames, "off", None, False, pause_budget)
        child.tracer = self.tracer
        child.options = self.options
        return child

    def abandon(self) -> None:
        """In a forked child: close the inherited listener without removing the parent's socket."""
        self._closed.set()
        if self._listener is not None:
            self._listener.close()

    def start(self, tracer_running: bool = False) -> None:
        """Listen, start the tracer (unless it already runs: a forked child's) and native tracking."""
        # What a client's connection needs is imported here, on the thread that starts the agent,
        # not on the connection's: an import holds its module's lock, and a fork while another
        # thread holds one leaves the child's copy held for good. A pre-fork server that forks
        # its workers while its master's agent answers a first client (importing these) would
        # have workers whose agents never answer (a gunicorn worker's hello timed out in CI).
        import soak.inprocess.probes.inprocess  # noqa: F401
        import soak.inprocess.protocol  # noqa: F401

        directory = os.path.dirname(os.path.abspath(self.path))
        _private_directory(directory)
        _remove_stale_socket(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is created 0600, with no window of wider access
        try:
            listener.bind(self.path)
        except OSError as exc:
            listener.close()
            raise AgentError(f"cannot listen on {self.path}: {exc.strerror}") from exc
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        listener.listen(4)
        self._listener = listener
        if self.tracer is not None and not tracer_running:
            self.tracer.start()
        if self.native is not None:
            from soak.inprocess.probes.native import NativeUnavailable

            try:
                self.native.start()
            except NativeUnavailable as exc:
                print(f"leaksoak agent: --native is unavailable ({exc}); native memory is not tracked", file=sys.stderr)
                self.native = None
        threading.Thread(target=self._accept, name="soak-agent", daemon=True).start()

    def stop(self) -> None:
        self._closed.set()
        self.async_probes.stop()
        if self.native is not None:
            self.native.stop()
        if self._listener is not None:
            self._listener.close()
        if self.pid != os.getpid():
            return  # the socket is the process's that started this agent, not a forked child's
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="soak-agent-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        from soak.inprocess.probes.inprocess import InProcessProbes
        from soak.inprocess.protocol import Channel, ProtocolError

        with conn:
            channel = Channel(conn.makefile("rb"), conn.makefile("wb"), max_bytes=MAX_REQUEST_BYTES)
            try:
                peer_uid = _peer_uid(conn)
                if peer_uid not in (os.getuid(), 0):
                    channel.send("error", message="refused: the client runs as another user")
                    return
                # tracebacks are numbered per connection
                probes = InProcessProbes(self.tracer, async_probes=self.async_probes,
                                         extra_probes=[self.native] if self.native else [],
                                         pause_budget=self.pause_budget)
                while True:
                    try:
                        request = channel.receive()
                    except ProtocolError as exc:
                        channel.send("error", message=f"refused: {exc}")
                        return
                    if request is None:
                        return
                    if request.get("type") == "detach" and set(request) <= {"v", "type"}:
                        self._detach(channel)
                        return
                    reply = self._answer(request, probes)
                    if reply is None:
                        channel.send("error", message="refused: unknown request")
                        return
                    channel.send(str(reply.pop("type")), **reply)
            except (OSError, ValueError):
                return  # the client went away; the service goes on

    def _detach(self, channel: Channel) -> None:
        """An attached agent takes itself out once it has answered; another one refuses."""
        if self.on_detach is None:
            channel.send("error", message="refused: this agent was started by the service, not attached")
            return
        channel.send("detached", pid=os.getpid())
        self.on_detach()

    def _answer(self, request: Message, probes: InProcessProbes) -> Message | None:
        kind = request.get("type")
        if kind == "hello" and set(request) <= {"v", "type"}:
            main = sys.modules.get("__main__")
            main_file = getattr(main, "__file__", None)
            return {
                "type": "hello",
                "pid": os.getpid(),
                "python": sys.version.split()[0],
                "tracer": self.tracer.name if self.tracer else "off",
                "sample_interval": getattr(self.tracer, "interval", None),
                "native": self.native is not None,
                "attached": self.on_detach is not None,
                "application_root": os.path.dirname(os.path.abspath(main_file)) if main_file else os.getcwd(),
            }
        if kind == "snapshot" and set(request) <= {"v", "type", "seq"} and isinstance(request.get("seq", 0), int):
            # One snapshot at a time, whichever client asks: one asked for while another is in
            # progress is skipped, not queued behind it (a second pause right after the first).
            if not self._collect_lock.acquire(blocking=False):
                return {"type": "error", "skipped": True, "message": "the previous snapshot is still in progress"}
            try:
                # Hold the GIL through the snapshot: a consistent heap and a short pause, rather
                # than a long one shared in 5 ms slices with every busy thread of the service.
                # Not for seconds: the raised interval is every thread's, so were the snapshot to
                # let the GIL go (a contended lock), a busy thread of the service could then keep
                # it that long from all the others.
                switch = sys.getswitchinterval()
                sys.setswitchinterval(max(switch, SNAPSHOT_SWITCH_INTERVAL_S))
                try:
                    body = probes.collect()
                except Exception as exc:  # noqa: BLE001 - a failed snapshot is reported, never raised into the service
                    return {"type": "error", "message": f"snapshot failed: {type(exc).__name__}: {exc}"}
                finally:
                    sys.setswitchinterval(switch)
                    # The service's threads that began waiting for the GIL during the snapshot
                    # wait out the raised interval before they ask for it: until then,
                    # what runs next here (encoding the reply) would keep it. Handing the GIL
                    # over once wakes a waiter, which waits again with the restored interval.
                    time.sleep(0)
            finally:
                self._collect_lock.release()
            return {"type": "snapshot", "seq": request.get("seq"), "at_boundary": None, **body}
        return None


def _private_directory(directory: str) -> None:
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.stat(directory)
    except OSError as exc:
        raise AgentError(f"cannot create the socket directory {directory}: {exc.strerror}") from exc
    if info.st_uid != os.getuid():
        raise AgentError(f"{directory} belongs to another user; pass --socket in a directory of your own")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise AgentError(f"{directory} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); use a private directory (0700)")


def _remove_stale_socket(path: str) -> None:
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: left behind by a process that died
        return
    finally:
        probe.close()
    raise AgentError(f"another agent already listens on {path}")


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    uid: int = struct.unpack("3i", creds)[1]
    return uid
