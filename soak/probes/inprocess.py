"""The in-process probes behind one snapshot message, shared by the worker and the agent."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Collection
from typing import Any

from soak.probes import heap
from soak.probes.frames import Frame
from soak.probes.probe import Probe, run_probes
from soak.probes.resources import TaskProbe, ThreadProbe
from soak.probes.sites import Tracer

CENSUS_EVERY_S = 5.0
"""The per-type census costs far more than a count under tracemalloc (every count above 256 is a
new, traced int): it runs at most this often; snapshots in between carry only the object count."""


class InProcessProbes:
    """Builds snapshot bodies. Tracebacks are numbered per instance: a new supervisor
    connection (or worker) gets a new instance, and each traceback is sent to it once."""

    def __init__(
        self,
        tracer: Tracer | None,
        iterations: Callable[[], int | None] = lambda: None,
        event_loop: Callable[[], tuple[asyncio.AbstractEventLoop | None, Collection[asyncio.Task[Any]]]] | None = None,
        collect_garbage: bool = False,
    ) -> None:
        """``collect_garbage``: run a full collection before each snapshot (the worker does; the
        agent does not, as that would be a full collection a snapshot in the user's service)."""
        self.tracer = tracer
        self.collect_garbage = collect_garbage
        self._iterations = iterations
        self._event_loop = event_loop
        self._stack_ids: dict[tuple[Frame, ...], int] = {}
        self._census_at = -CENSUS_EVERY_S
        self.probes: list[Probe] = [ThreadProbe()]
        if event_loop is not None:
            self.probes.append(TaskProbe(event_loop))

    def collect(self) -> dict[str, Any]:
        pauses: dict[str, float] = {}
        body: dict[str, Any] = {"iterations": self._iterations(), "pid": os.getpid()}
        paused_at = time.perf_counter()
        if self.collect_garbage:
            # Measure what is still reachable: cyclic garbage waits for the collector's next full
            # pass, which CPython runs only once the long-lived heap has grown by a quarter, so
            # a clean workload that makes reference cycles grows for minutes between two passes.
            gc.collect()
            pauses["gc_collect"] = round((time.perf_counter() - paused_at) * 1000, 3)
        if self.tracer is not None:
            traced = self.tracer.collect()
            pauses["tracer"] = round(traced.pause_ms, 3)
            new_stacks: dict[str, list[list[Any]]] = {}
            sites = []
            for site in traced.sites:
                stack_id = self._stack_ids.get(site.frames)
                if stack_id is None:
                    stack_id = self._stack_ids[site.frames] = len(self._stack_ids) + 1
                    new_stacks[str(stack_id)] = [list(frame) for frame in site.frames]
                sites.append([stack_id, site.size, site.count] if site.samples is None
                             else [stack_id, site.size, site.count, site.samples])
            body.update(
                tracer=self.tracer.name,
                new_stacks=new_stacks,
                sites=sites,
                traced_bytes=traced.traced_bytes,
                tracer_overhead_bytes=traced.tracer_overhead_bytes,
                weight=traced.weight,
                sample_interval=traced.sample_interval,
            )
        if time.monotonic() - self._census_at >= CENSUS_EVERY_S:
            self._census_at = time.monotonic()
            body["gc_objects"], types, census_ms = heap.type_census()
            body["types"] = sorted(types.items())
            pauses["census"] = round(census_ms, 3)
        else:
            body["gc_objects"], pauses["gc"] = heap.gc_object_count()
        body["gc_collections"] = sum(stat["collections"] for stat in gc.get_stats())
        body["probes"] = run_probes(self.probes)
        pauses.update((name, entry["pause_ms"]) for name, entry in body["probes"].items())
        tasks = body["probes"].get(TaskProbe.name, {}).get("series")
        body["asyncio_tasks"] = None if tasks is None else int(sum(value for _, _, value in tasks))
        body["pause_ms"] = pauses
        body["pause_total_ms"] = round((time.perf_counter() - paused_at) * 1000, 3)
        return body
