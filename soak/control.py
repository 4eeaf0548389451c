"""The worker's control thread: answers the supervisor's requests while the workload runs."""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

from soak.probes import heap
from soak.probes.tracer import Frame, Tracer
from soak.protocol import Channel, ProtocolError
from soak.workloads.adapters import AsyncDriver, Driver

BOUNDARY_WAIT_S = 2.0
"""How long a snapshot waits for an iteration boundary before it is taken mid-iteration."""


class Control:
    def __init__(self, channel: Channel, driver: Driver, tracer: Tracer | None) -> None:
        self.channel = channel
        self.driver = driver
        self.tracer = tracer
        self.supervisor_gone = False
        self._stack_ids: dict[tuple[Frame, ...], int] = {}
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

    def _answer_snapshot(self, request: dict[str, Any]) -> None:
        try:
            body, at_boundary = self.driver.at_boundary(self._collect, BOUNDARY_WAIT_S)
            body["at_boundary"] = at_boundary
            body["seq"] = request.get("seq")
            self.channel.send("snapshot", **body)
        except OSError:
            self.supervisor_gone = True
            self.driver.stop()

    def _collect(self) -> dict[str, Any]:
        pauses: dict[str, float] = {}
        body: dict[str, Any] = {"iterations": self.driver.iterations, "pid": os.getpid()}
        paused_at = time.perf_counter()
        if self.tracer is not None:
            traced = self.tracer.collect()
            pauses["tracer"] = round(traced.pause_ms, 3)
            new_stacks: dict[str, list[Frame]] = {}
            sites = []
            for site in traced.sites:
                stack_id = self._stack_ids.get(site.frames)
                if stack_id is None:
                    stack_id = self._stack_ids[site.frames] = len(self._stack_ids) + 1
                    new_stacks[str(stack_id)] = [list(frame) for frame in site.frames]
                sites.append([stack_id, site.size, site.count])
            body.update(
                tracer=self.tracer.name,
                new_stacks=new_stacks,
                sites=sites,
                traced_bytes=traced.traced_bytes,
                tracer_overhead_bytes=traced.tracer_overhead_bytes,
                weight=traced.weight,
            )
        body["gc_objects"], types, census_ms = heap.type_census()
        body["types"] = sorted(types.items())
        pauses["census"] = round(census_ms, 3)
        body["gc_collections"] = sum(stat["collections"] for stat in gc.get_stats())
        if isinstance(self.driver, AsyncDriver):
            body["asyncio_tasks"] = heap.asyncio_task_count(self.driver.loop, self.driver.own_tasks)
        else:
            body["asyncio_tasks"] = None
        body["pause_ms"] = pauses
        body["pause_total_ms"] = round((time.perf_counter() - paused_at) * 1000, 3)
        return body


