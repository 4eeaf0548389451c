"""The agent's embedding API: one agent per process, started from the service's own code or by
``python -m soak.agent``. It never takes the service down: if it cannot start, it says why on
stderr and steps aside."""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

from soak.inprocess.agent.server import SOCKET_ENV, Agent, AgentError, default_socket_path

if TYPE_CHECKING:
    import asyncio

_lock = threading.Lock()
_agent: Agent | None = None


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
        return agent


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
