"""The worker's control thread: answers the supervisor's requests while the workload runs."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from soak.inprocess.probes.async_health import AsyncProbes
from soak.inprocess.probes.budget import MAX_EVERY_S, WORKER_BUDGET
from soak.inprocess.probes.inprocess import InProcessProbes
from soak.inprocess.probes.probe import Probe
from soak.inprocess.probes.sites import Tracer
from soak.inprocess.protocol import Channel, Message, ProtocolError, typed_field
from soak.workloads.adapters import AsyncDriver, Driver

BOUNDARY_WAIT_S = 2.0
"""How long a snapshot waits for an iteration boundary before it is taken mid-iteration."""


class Control:
    def __init__(self, channel: Channel, driver: Driver, tracer: Tracer | None, loop_block_s: float | None = None,
                 probes: Sequence[Probe] = (), pause_budget: float = WORKER_BUDGET,
                 pause_max_every_s: float = MAX_EVERY_S) -> None:
        """``loop_block_s``: the lag beyond which an async target's loop counts as blocked;
        ``probes``: probes the worker started itself (the native probe of ``--native``);
        ``pause_budget``: the share of wall time snapshots may pause the workload (``--pause-budget``),
        ``pause_max_every_s`` how often each rationed job runs at least (soak.inprocess.probes.budget)."""
        self.channel = channel
        self.driver = driver
        self.supervisor_gone = False
        event_loop = None
        async_probes = None
        if isinstance(driver, AsyncDriver):
            event_loop = lambda: (driver.loop, driver.own_tasks)  # noqa: E731
            async_probes = AsyncProbes(loop_block_s, callers=lambda: driver.concurrency)
            driver.on_loop.append(async_probes.watch)
        self.probes = InProcessProbes(tracer, lambda: driver.iterations, event_loop, collect_garbage=True,
                                      async_probes=async_probes, extra_probes=probes, pause_budget=pause_budget,
                                      pause_max_every_s=pause_max_every_s)
        self._thread = threading.Thread(target=self._serve, name="soak-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                request = self.channel.receive()
            except (ProtocolError, OSError, ValueError):
                request = None
            if request is None:  # supervisor gone: stop the workload rather than run orphaned
                self.supervisor_gone = True
                self.driver.stop()
                return
            kind = request["type"]
            if kind == "snapshot":
                self._answer_snapshot(request)
            elif kind == "stop":
                self.driver.stop()
                return

    def _answer_snapshot(self, request: Message) -> None:
        try:
            holders = typed_field(request, "holders", list)
            body, at_boundary = self.driver.at_boundary(lambda: self.probes.collect(holders), BOUNDARY_WAIT_S)
            body["at_boundary"] = at_boundary
            body["seq"] = request.get("seq")
            self.channel.send("snapshot", **body)
        except OSError:
            self.supervisor_gone = True
            self.driver.stop()
