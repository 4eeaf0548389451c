"""The agent: a Python service loads it so that ``soak watch`` can take heap snapshots of it.

    import soak.agent; soak.agent.start()                       # in the service's own code
    python -m soak.agent [--socket PATH] -- app.py ARGS...      # no code change
    python -m soak.agent [--socket PATH] -m package.module ARGS...

It listens on a Unix socket (mode 0600, in a directory of mode 0700) and answers two requests,
``hello`` and ``snapshot``, with the same JSON messages the worker sends. Requests are data,
never code; anything else, anything oversized, and any peer of another user is refused. The
agent never takes the service down: if it cannot start, it says why on stderr and steps aside.
"""

from __future__ import annotations

import os
import runpy
import socket
import stat
import struct
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the agent imports its probes when a client connects: a light import into the service
    import asyncio

    from soak.probes.inprocess import InProcessProbes
    from soak.protocol import Message

SOCKET_ENV = "SOAK_AGENT_SOCKET"
MAX_REQUEST_BYTES = 4096
SNAPSHOT_SWITCH_INTERVAL_S = 0.1
"""The switch interval while a snapshot runs (the service's own, 5 ms by default, otherwise):
longer than a snapshot with the sampled tracer takes, short enough to bound a stall."""
_lock = threading.Lock()
_agent: Agent | None = None


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
        from soak.probes.budget import AGENT_BUDGET
        from soak.probes.native import NativeProbe, native_unavailable
        from soak.probes.tracer import BadTracer, make_tracer

        self.path = path
        self.pause_budget = AGENT_BUDGET if pause_budget is None else pause_budget
        """The share of wall time a snapshot may pause the service (soak.probes.budget)."""
        if native and (reason := native_unavailable()) is not None:
            raise AgentError(f"--native cannot run here: {reason}")
        self.native = NativeProbe(frames) if native else None
        try:
            self.tracer = make_tracer(tracer, frames, sample_interval)
        except BadTracer as exc:
            raise AgentError(str(exc)) from exc
        from soak.probes.async_health import AsyncProbes

        self.async_probes = AsyncProbes()
        """Started on the service's event loop by :func:`watch_loop`; until then they report nothing."""
        self._collect_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._closed = threading.Event()

    def start(self) -> None:
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
        if self.tracer is not None:
            self.tracer.start()
        if self.native is not None:
            from soak.probes.native import NativeUnavailable

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
        from soak.probes.inprocess import InProcessProbes
        from soak.protocol import Channel, ProtocolError

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
                    reply = self._answer(request, probes)
                    if reply is None:
                        channel.send("error", message="refused: unknown request")
                        return
                    channel.send(str(reply.pop("type")), **reply)
            except (OSError, ValueError):
                return  # the client went away; the service goes on

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


def start(
    socket_path: str | None = None, *, frames: int = 10, tracer: str = "sampled", sample_interval: int | None = None,
    native: bool = False, pause_budget: float | None = None,
) -> Agent | None:
    """Start the agent once for this process (a second call returns the first agent).

    ``tracer`` is ``sampled`` (the default: estimates at a small cost), ``exact`` (tracemalloc)
    or ``off``; ``sample_interval`` is the sampled tracer's mean bytes between samples;
    ``native`` also tracks native allocations with memray (see ``soak run --native``);
    ``pause_budget`` is the share of wall time snapshots may pause the service (default 1%,
    ``float("inf")``: no rationing; see soak.probes.budget).
    Returns None, after one line on stderr, if the agent cannot start: the service goes on.
    """
    global _agent
    with _lock:
        if _agent is not None:
            return _agent
        path = socket_path or os.environ.get(SOCKET_ENV) or default_socket_path()
        try:
            agent = Agent(path, frames, tracer, sample_interval, native, pause_budget)
            agent.start()
        except AgentError as exc:
            print(f"leaksoak agent not started: {exc}", file=sys.stderr)
            return None
        except Exception as exc:  # the agent's promise: never take the service down
            print(f"leaksoak agent not started: {type(exc).__name__}: {exc}", file=sys.stderr)
            return None
        _agent = agent
        return agent


def watch_loop(loop: asyncio.AbstractEventLoop | None = None, *, block_s: float | None = None) -> bool:
    """Measure the service's event loop: its lag, what blocks it, and the work it hands to
    thread pools (soak.probes.async_health). Call on the loop's thread, e.g. first thing in the
    service's main coroutine; ``loop`` defaults to the running one, ``block_s`` (the lag that
    counts as blocked) to 50 ms. Returns whether the loop is watched: False without an agent, or
    when it cannot be; like the agent, it never raises into the service."""
    import asyncio

    agent = _agent
    if agent is None:
        return False
    try:
        target = loop or asyncio.get_running_loop()
        if block_s is not None:
            agent.async_probes.lag.block_s = float(block_s)
        agent.async_probes.start(target)
        return agent.async_probes.loop is target
    except Exception as exc:  # noqa: BLE001 - the agent's promise
        print(f"leaksoak agent: event loop not watched: {type(exc).__name__}: {exc}", file=sys.stderr)
        return False


def stop() -> None:
    global _agent
    with _lock:
        if _agent is not None:
            _agent.stop()
            _agent = None


USAGE = ("usage: python -m soak.agent [--socket PATH] [--frames N] [--tracer sampled|exact|off] [--sample-interval BYTES]"
         " [--pause-budget SHARE] [--native] (-- script.py | -m module) [ARGS...]")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    options: dict[str, str] = {}
    native = False
    while args and args[0] in ("--socket", "--frames", "--tracer", "--sample-interval", "--pause-budget", "--native"):
        if args[0] == "--native":
            native, args = True, args[1:]
            continue
        if len(args) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        options[args[0][2:]] = args[1]
        args = args[2:]
    module = None
    if args and args[0] == "--":
        args = args[1:]
    elif args and args[0] == "-m" and len(args) > 1:
        module, args = args[1], args[2:]
    if module is None and (not args or not os.path.isfile(args[0])):
        print(f"soak.agent: {'no such script ' + repr(args[0]) if args else 'no program given'}; {USAGE}", file=sys.stderr)
        return 2
    from soak.durations import parse_size
    from soak.errors import BadInput
    from soak.probes.budget import parse_pause_budget
    from soak.probes.tracer import DEFAULT_TRACER, BadTracer, check_tracer

    try:
        frames = int(options.get("frames", "10"))
    except ValueError:
        print(f"soak.agent: --frames must be a number; {USAGE}", file=sys.stderr)
        return 2
    tracer = options.get("tracer", DEFAULT_TRACER)
    try:
        interval = parse_size(options["sample-interval"], option="sample-interval") if "sample-interval" in options else None
        check_tracer(tracer, frames, interval)
        pause_budget = parse_pause_budget(options["pause-budget"]) if "pause-budget" in options else None
    except (BadTracer, BadInput) as exc:
        print(f"soak.agent: {exc}; {USAGE}", file=sys.stderr)
        return 2
    from soak import agent as this  # under `python -m`, this file runs as __main__: share the one agent

    this.start(options.get("socket"), frames=frames, tracer=tracer, sample_interval=interval, native=native,
               pause_budget=pause_budget)
    if module is not None:
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(args)
        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
        runpy.run_path(args[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
