"""The in-process probes behind one snapshot message, shared by the worker and the agent."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from soak.probes import heap
from soak.probes.async_health import AsyncProbes
from soak.probes.frames import Frame
from soak.probes.holders import find_holders
from soak.probes.probe import Probe, run_probes
from soak.probes.resources import TaskProbe, ThreadProbe
from soak.probes.sites import Tracer
from soak.probes.types import CENSUS_BUDGET, TypeProbe


class InProcessProbes:
    """Builds snapshot bodies. Tracebacks are numbered per instance: a new supervisor
    connection (or worker) gets a new instance, and each traceback is sent to it once."""

    def __init__(
        self,
        tracer: Tracer | None,
        iterations: Callable[[], int | None] = lambda: None,
        event_loop: Callable[[], tuple[asyncio.AbstractEventLoop | None, Collection[asyncio.Task[Any]]]] | None = None,
        collect_garbage: bool = False,
        async_probes: AsyncProbes | None = None,
        extra_probes: Sequence[Probe] = (),
        census_budget: float = CENSUS_BUDGET,
    ) -> None:
        """``collect_garbage``: run a full collection before each snapshot (the worker does; the
        agent does not, as that would be a full collection a snapshot in the user's service).
        ``async_probes``: an event loop's lag and thread pools; the snapshot's own pause is
        bracketed for them, so that it is not taken for the loop's.
        ``extra_probes``: probes the host started itself (the native probe of ``--native``).
        ``census_budget``: the share of time the type census may pause (see soak.probes.types)."""
        self.async_probes = async_probes
        self.tracer = tracer
        self.collect_garbage = collect_garbage
        self._iterations = iterations
        self._event_loop = event_loop
        self._stack_ids: dict[tuple[Frame, ...], int] = {}
        self._body: dict[str, Any] | None = None
        # leaksoak's own objects, left out of the census: this host, with the snapshot it builds
        self.types = TypeProbe(lambda: (self, self._body), census_budget)
        self.probes: list[Probe] = [ThreadProbe()]
        if event_loop is not None:
            self.probes.append(TaskProbe(event_loop))
        if async_probes is not None:
            self.probes.extend(async_probes.probes)
        self.probes.extend(extra_probes)

    def collect(self, holders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One snapshot body; with ``holders`` (subjects the supervisor suspects, see
        soak.probes.holders), their holder chains too, searched after every probe has read.
        With async probes, the snapshot's own pause is bracketed so it is not taken for the loop's."""
        if self.async_probes is None:
            return self._snapshot(holders)
        with self.async_probes.pausing():
            return self._snapshot(holders)

    def _snapshot(self, holders: list[dict[str, Any]] | None) -> dict[str, Any]:
        pauses: dict[str, float] = {}
        body: dict[str, Any] = {"iterations": self._iterations(), "pid": os.getpid()}
        self._body = body
        try:
            return self._collect(body, pauses, holders)
        finally:
            self._body = None

    def _collect(self, body: dict[str, Any], pauses: dict[str, float], holders: list[dict[str, Any]] | None) -> dict[str, Any]:
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
            del traced  # its frames are leaksoak's copies: not for the census below
        census = self.types.due()
        body["probes"] = run_probes([*self.probes, self.types] if census else self.probes)
        pauses.update((name, entry["pause_ms"]) for name, entry in body["probes"].items())
        if census and self.types.total is not None:
            body["gc_objects"] = self.types.total
        else:
            body["gc_objects"], pauses["gc"] = heap.gc_object_count()
        body["gc_collections"] = sum(stat["collections"] for stat in gc.get_stats())
        if holders:
            started = time.perf_counter()
            body["holders"] = find_holders(holders)
            pauses["holders"] = round((time.perf_counter() - started) * 1000, 3)
        tasks = body["probes"].get(TaskProbe.name, {}).get("series")
        body["asyncio_tasks"] = None if tasks is None else int(sum(value for _, _, value in tasks))
        body["pause_ms"] = pauses
        body["pause_total_ms"] = round((time.perf_counter() - paused_at) * 1000, 3)
        return body
