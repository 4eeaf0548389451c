"""The worker's control thread: answers the supervisor's requests while the workload runs."""

from __future__ import annotations

import threading

from soak.probes.inprocess import InProcessProbes
from soak.probes.sites import Tracer
from soak.protocol import Channel, Message, ProtocolError
from soak.workloads.adapters import AsyncDriver, Driver

BOUNDARY_WAIT_S = 2.0
"""How long a snapshot waits for an iteration boundary before it is taken mid-iteration."""


class Control:
    def __init__(self, channel: Channel, driver: Driver, tracer: Tracer | None) -> None:
        self.channel = channel
        self.driver = driver
        self.supervisor_gone = False
        event_loop = None
        if isinstance(driver, AsyncDriver):
            event_loop = lambda: (driver.loop, driver.own_tasks)  # noqa: E731
        self.probes = InProcessProbes(tracer, lambda: driver.iterations, event_loop, collect_garbage=True)
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
            body, at_boundary = self.driver.at_boundary(self.probes.collect, BOUNDARY_WAIT_S)
            body["at_boundary"] = at_boundary
            body["seq"] = request.get("seq")
            self.channel.send("snapshot", **body)
        except OSError:
            self.supervisor_gone = True
            self.driver.stop()
