"""The agent's embedding API: one agent per process, started from the service's own code, by
``python -m soak.agent``, or at start-up of every Python process under it (``bootstrap``).

A process that forks gets an agent of its own in the child (a pre-fork server's workers): the
listener thread does not survive ``fork()``, so the child listens anew, beside its parent's socket
as ``agent-<pid>.sock``. A process's agent removes its socket when the process exits. It never
takes the service down: if it cannot start, it says why on stderr and steps aside."""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from soak.inprocess.agent.server import SOCKET_ENV, Agent, AgentError, default_socket_path

if TYPE_CHECKING:
    import asyncio

OPTIONS_ENV = "SOAK_AGENT_OPTIONS"
"""The agent's options as JSON, set for a service's descendants by ``python -m soak.agent``: a Python
process that starts with it in its environment (and the bootstrap folder on PYTHONPATH) starts an
agent of its own."""
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap")
"""Holds the ``sitecustomize`` that starts the agent in every Python process under ``python -m soak.agent``."""

_lock = threading.Lock()
_agent: Agent | None = None
_armed_pid: int | None = None


@dataclass(frozen=True)
class AgentOptions:
    """What every agent of one service is started with."""

    frames: int = 10
    tracer: str = "sampled"
    sample_interval: int | None = None
    native: bool = False
    pause_budget: float | None = None
    """None: the agent's default; ``inf``: no rationing."""
    socket_dir: str | None = None
    """Where each process listens (``agent-<pid>.sock``); None: the default folder."""

    def to_env(self) -> str:
        fields = asdict(self)
        if self.pause_budget is not None and self.pause_budget == float("inf"):
            fields["pause_budget"] = "inf"  # strict JSON
        return json.dumps(fields)

    @classmethod
    def from_env(cls, text: str) -> AgentOptions:
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise ValueError(f"{OPTIONS_ENV} is not a JSON object")
        if fields.get("pause_budget") == "inf":
            fields["pause_budget"] = float("inf")
        return cls(**{name: value for name, value in fields.items() if name in cls.__dataclass_fields__})

    def socket_for(self, pid: int) -> str:
        if self.socket_dir is None:
            return default_socket_path(pid)
        return os.path.join(self.socket_dir, f"agent-{pid}.sock")


def descendants_environment(options: AgentOptions, environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) for a program whose Python processes each start an agent."""
    env = dict(os.environ if environ is None else environ)
    env[OPTIONS_ENV] = options.to_env()
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = BOOTSTRAP_DIR + (os.pathsep + path if path else "")
    return env


def start_from_environment() -> Agent | None:
    """Start this process's agent from :data:`OPTIONS_ENV` (the bootstrap calls it at start-up); the
    first process listens on ``SOAK_AGENT_SOCKET`` if set, which its descendants do not inherit."""
    text = os.environ.get(OPTIONS_ENV)
    if not text:
        return None
    try:
        options = AgentOptions.from_env(text)
    except (ValueError, TypeError) as exc:
        print(f"leaksoak agent not started: {OPTIONS_ENV} is malformed ({exc})", file=sys.stderr)
        return None
    path = os.environ.pop(SOCKET_ENV, None) or options.socket_for(os.getpid())
    return start(path, frames=options.frames, tracer=options.tracer, sample_interval=options.sample_interval,
                 native=options.native, pause_budget=options.pause_budget)


def start(
    socket_path: str | None = None, *, frames: int = 10, tracer: str = "sampled", sample_interval: int | None = None,
    native: bool = False, pause_budget: float | None = None,
) -> Agent | None:
    """Start the agent once for this process (a second call returns the first agent).

    ``tracer`` is ``sampled`` (the default: estimates at a small cost), ``exact`` (tracemalloc)
    or ``off``; ``sample_interval`` is the sampled tracer's mean bytes between samples;
    ``native`` also tracks native allocations with memray (see ``soak run --native``);
    ``pause_budget`` is the share of wall time snapshots may pause the service (default 1%,
    ``float("inf")``: no rationing; see soak.inprocess.probes.budget).
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
        _arm()
        return agent


def attach(options_json: str, added_path: str | None = None, socket_path: str | None = None) -> None:
    """Start an agent in a process that is already running, from code injected by ``soak watch
    --attach`` (soak.supervisor.attach), listening at ``socket_path`` (default: the default path
    for this pid); a ``detach`` request undoes it all (:func:`detach`). Never raises into the service."""
    try:
        options = AgentOptions.from_env(options_json)
    except (ValueError, TypeError) as exc:
        print(f"leaksoak agent not attached: {exc}", file=sys.stderr)
        return
    agent = start(socket_path or options.socket_for(os.getpid()), frames=options.frames, tracer=options.tracer,
                  sample_interval=options.sample_interval, native=False, pause_budget=options.pause_budget)
    if agent is not None:
        agent.on_detach = lambda: detach(added_path)


def detach(added_path: str | None = None) -> None:
    """Undo :func:`attach` (on the agent's ``detach`` request, after it answered): the tracer stops
    and the allocators are the interpreter's own again, the socket goes, and the folder the
    injected code put on sys.path is taken off it. The modules stay imported: they cost nothing idle."""
    global _agent
    with _lock:
        agent, _agent = _agent, None
    if agent is None:
        return
    agent.stop()
    if agent.tracer is not None:
        agent.tracer.stop()
    if added_path is not None and added_path in sys.path:
        sys.path.remove(added_path)


def _arm() -> None:
    """Once per process: re-arm in a forked child, and remove the socket at exit."""
    global _armed_pid
    if _armed_pid is not None:
        return  # the hooks registered before a fork are the child's too
    _armed_pid = os.getpid()
    os.register_at_fork(after_in_child=_after_fork_in_child)
    atexit.register(_stop_at_exit)


def _after_fork_in_child() -> None:
    """The forked child's own agent: the parent's tracer goes on in the child (its samples are the
    child's heap too), the parent's listener is closed here (its socket stays the parent's)."""
    global _agent, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    parent, _agent = _agent, None
    if parent is None:
        return
    try:
        parent.abandon()
        child = parent.forked(os.path.join(os.path.dirname(parent.path), f"agent-{os.getpid()}.sock"))
        child.start(tracer_running=True)
        _agent = child
    except Exception as exc:  # noqa: BLE001 - the agent's promise: never take the service down
        print(f"leaksoak agent not started in forked process {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr)


def _stop_at_exit() -> None:
    agent = _agent
    if agent is not None and agent.pid == os.getpid():
        agent.stop()


def watch_loop(loop: asyncio.AbstractEventLoop | None = None, *, block_s: float | None = None) -> bool:
    """Measure the service's event loop: its lag, what blocks it, and the work it hands to
    thread pools (soak.inprocess.probes.async_health). Call on the loop's thread, e.g. first thing in the
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
