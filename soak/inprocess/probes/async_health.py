"""The async probes of one event loop, started and stopped together: its lag and the work its
code hands to thread pools. Hosted by the worker for an ``async def`` target and by the agent
for a service's loop (see soak.inprocess.probes.inprocess)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext

from soak.inprocess.probes.loop_lag import DEFAULT_BLOCK_S, LoopLagProbe
from soak.inprocess.probes.probe import Probe
from soak.inprocess.probes.thread_pools import HiddenPoolProbe


class AsyncProbes:
    def __init__(self, block_s: float | None = None, callers: Callable[[], int] | None = None) -> None:
        """``block_s``: the lag that counts as blocked (default 50 ms); ``callers``: the
        workload's concurrent callers (see HiddenPoolProbe), None in a service."""
        self.lag = LoopLagProbe(DEFAULT_BLOCK_S if block_s is None else block_s)
        self.pools = HiddenPoolProbe(callers)
        self.probes: list[Probe] = [self.lag, self.pools]
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch ``loop``; call from the loop's own thread (a callback or coroutine on it).

        A probe that cannot start leaves the loop as it was: the workload goes on unwatched."""
        with self._lock:
            if self.loop is not None:
                return
            try:
                self.lag.attach(loop)
                self.pools.install(loop)
            except Exception:  # noqa: BLE001 - never raised into the workload
                self.pools.uninstall()
                self.lag.detach()
                return
            self.loop = loop

    def watch(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """:meth:`start` on ``loop``; returns :meth:`stop` (the async driver's ``on_loop`` hook)."""
        self.start(loop)
        return self.stop

    def stop(self) -> None:
        """Stop watching: the heartbeat and watchdog end, ``submit`` and ``call_soon_threadsafe`` are put back. Idempotent."""
        with self._lock:
            if self.loop is None:
                return
            self.loop = None
            self.pools.uninstall()
            self.lag.detach()

    def pausing(self) -> ContextManager[None]:
        """Bracket leaksoak's own pause, so that the lag probe does not count it as the loop's."""
        return self.lag.pausing() if self.loop is not None else nullcontext()

