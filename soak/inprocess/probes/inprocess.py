"""The in-process probes behind one snapshot message, shared by the worker and the agent."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from soak.inprocess.probes.async_health import AsyncProbes
from soak.inprocess.probes.budget import MAX_EVERY_S, WORKER_BUDGET, PauseBudget
from soak.inprocess.probes.frames import Frame
from soak.inprocess.probes.holders import find_holders
from soak.inprocess.probes.probe import Probe, run_probes
from soak.inprocess.probes.resources import TaskProbe, ThreadProbe
from soak.inprocess.probes.sites import Tracer
from soak.inprocess.probes.types import TypeProbe


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
        pause_budget: float = WORKER_BUDGET,
        pause_max_every_s: float = MAX_EVERY_S,
    ) -> None:
        """``collect_garbage``: run a full collection before each snapshot (the worker does; the
        agent does not, as that would be a full collection a snapshot in the user's service).
        ``async_probes``: an event loop's lag and thread pools; the snapshot's own pause is
        bracketed for them, so that it is not taken for the loop's.
        ``extra_probes``: probes the host started itself (the native probe of ``--native``).
        ``pause_budget``: the share of wall time the snapshots may pause the process; the full
        collection, the census and the holder searches are rationed to it (soak.inprocess.probes.budget),
        each run at least every ``pause_max_every_s``."""
        self.async_probes = async_probes
        self.tracer = tracer
        self.collect_garbage = collect_garbage
        self._iterations = iterations
        self._event_loop = event_loop
        self._stack_ids: dict[tuple[Frame, ...], int] = {}
        self._body: dict[str, Any] | None = None
        # leaksoak's own objects, left out of the census: this host, with the snapshot it builds
        self.types = TypeProbe(lambda: (self, self._body))
        self.budget = PauseBudget(pause_budget, max_every_s=pause_max_every_s)
        self.probes: list[Probe] = [ThreadProbe()]
        if event_loop is not None:
            self.probes.append(TaskProbe(event_loop))
        if async_probes is not None:
            self.probes.extend(async_probes.probes)
        self.probes.extend(extra_probes)

    def collect(self, holders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One snapshot body; with ``holders`` (subjects the supervisor suspects, see
        soak.inprocess.probes.holders), their holder chains too, searched after every probe has read.
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
        rationed_s = 0.0
        if self.collect_garbage and self.budget.allows("gc_collect"):
            # Measure what is still reachable: cyclic garbage waits for the collector's next full
            # pass, which CPython runs only once the long-lived heap has grown by a quarter, so
            # a clean workload that makes reference cycles grows for minutes between two passes.
            # On a big heap the pass is rationed (the budget); the passes it runs keep the heap
            # from drifting up between them.
            gc.collect()
            rationed_s += self._ran("gc_collect", paused_at, pauses)
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
        census = self.budget.allows(self.types.name)
        body["probes"] = run_probes([*self.probes, self.types] if census else self.probes)
        pauses.update((name, entry["pause_ms"]) for name, entry in body["probes"].items())
        # the census' count of gc-tracked objects (None when the budget held the census back)
        body["gc_objects"] = None
        if census:
            cost_s = pauses[self.types.name] / 1000
            self.budget.ran(self.types.name, cost_s)
            rationed_s += cost_s
            body["gc_objects"] = self.types.total
        body["gc_collections"] = sum(stat["collections"] for stat in gc.get_stats())
        if holders and self.budget.allows("holders"):
            started = time.perf_counter()
            body["holders"] = find_holders(holders)
            rationed_s += self._ran("holders", started, pauses)
        tasks = body["probes"].get(TaskProbe.name, {}).get("series")
        body["asyncio_tasks"] = None if tasks is None else int(sum(value for _, _, value in tasks))
        body["pause_ms"] = pauses
        total_s = time.perf_counter() - paused_at
        self.budget.spend(total_s - rationed_s)
        body["pause_total_ms"] = round(total_s * 1000, 3)
        return body

    def _ran(self, job: str, started: float, pauses: dict[str, float]) -> float:
        """Record a rationed job that started at ``started`` and just ended; its cost in seconds."""
        cost_s = time.perf_counter() - started
        pauses[job] = round(cost_s * 1000, 3)
        self.budget.ran(job, cost_s)
        return cost_s
