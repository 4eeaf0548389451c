"""Prometheus metrics of a running soak (``--metrics-port``), through a custom collector.

Fleet-safe by construction: whatever the number of findings, a scrape holds at most
``2 × top + FIXED_SERIES`` series — a growth gauge and an info series for each of the top
findings (keyed by the stable finding id only), and a fixed set for the run. A leak tool must
not leak labels.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric, StateSetMetricFamily

if TYPE_CHECKING:
    from soak.judging.analysis import Refreshed

from soak.model.verdicts import VERDICTS

TOP_N = 10
"""Default of ``--metrics-top``: findings exported one by one."""
MEMORY_KINDS = ("rss", "uss", "pss", "cgroup_bytes", "cgroup_limit", "traced_bytes")
FINDING_LABELS = ("finding_id", "kind", "verdict", "where", "function", "library", "resource")
"""Labels of ``leaksoak_finding_info``; only ``finding_id`` is on the per-finding gauges."""
FIXED_SERIES = 1 + len(VERDICTS) + len(MEMORY_KINDS) + 4
"""Series that do not depend on findings: run info, verdict states, memory kinds, findings not
exported, seconds to the memory limit, snapshot pause, snapshots."""


MAX_SLOTS = 16
"""Processes of a watched tree shown one by one (a slot is reused when its process exits): the
series stay bounded whatever the number of workers a server starts and recycles over a run."""
TREE_KINDS = ("rss", "traced_bytes")
"""Memory shown per process of a watched tree (``leaksoak_tree_process_memory_bytes``)."""


def max_series(top: int, tree: bool = False) -> int:
    """The most series one scrape can hold with ``--metrics-top top``; ``tree``: when it watches
    a process tree (a count of its processes, how many show each finding, and each process's
    memory in one of a bounded number of slots, reused as workers come and go)."""
    return 2 * top + FIXED_SERIES + (1 + top + len(TREE_KINDS) * (1 + MAX_SLOTS) if tree else 0)


def published_findings(refreshed: Refreshed, top: int) -> dict[str, Any]:
    """What metrics (and the progress display) show of an analysis refresh: the ``top`` most
    severe findings, described, and how many findings there are in all."""
    findings = []
    for finding in refreshed.findings[:top]:
        # a native site is labelled by its library, not by a frame (as it always was)
        where = finding.where if finding.kind != "native" else None
        findings.append({
            "finding_id": finding.finding_id, "kind": finding.kind, "verdict": finding.verdict,
            "growth_bytes_per_hour": finding.growth_bytes_per_hour,
            "where": f"{os.path.basename(where.file)}:{where.line}" if where else (finding.resource or ""),
            "function": where.function if where else "", "library": finding.library or "", "resource": finding.resource or "",
        })
    return {"findings": findings, "findings_total": len(refreshed.findings)}


class SoakCollector:
    """Reads the supervisor's latest state on every scrape; holds none of its own."""

    def __init__(self, state: Callable[[], dict[str, Any]], top: int = TOP_N) -> None:
        self._state = state
        self._top = top
        self._host = socket.gethostname()

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        yield InfoMetricFamily("leaksoak_run", "The run this process measures; join on instance for its name and host",
                               value={"run": str(state.get("run_name", "")), "run_id": str(state.get("run_id", "")),
                                      "target": str(state.get("target", "")), "host": self._host})
        yield StateSetMetricFamily("leaksoak_verdict", "The run's current verdict: 1 for its state, 0 for the others",
                                   value={value: state.get("verdict") == value for value in VERDICTS})

        memory = GaugeMetricFamily("leaksoak_process_memory_bytes",
                                   "Memory of the measured process (of a watched tree: summed over its processes)", labels=["kind"])
        for kind in MEMORY_KINDS:
            value = state.get("process", {}).get(kind)
            if value is not None:
                memory.add_metric([kind], float(value))
        yield memory

        findings = state.get("findings", [])[:self._top]  # bounded here too, whatever the state holds
        growth = GaugeMetricFamily("leaksoak_finding_growth_bytes_per_hour",
                                   "Growth of each of the run's most severe findings (see leaksoak_finding_info)",
                                   labels=["finding_id"])
        info = InfoMetricFamily("leaksoak_finding", "What a finding is: its kind, verdict, allocation line and library",
                                labels=list(FINDING_LABELS))
        for finding in findings:
            growth.add_metric([finding["finding_id"]], float(finding["growth_bytes_per_hour"] or 0.0))
            info.add_metric([str(finding.get(label) or "") for label in FINDING_LABELS], {})
        yield growth
        yield info
        not_exported = GaugeMetricFamily("leaksoak_findings_not_exported",
                                         "Findings of the run beyond the exported top (--metrics-top)")
        not_exported.add_metric([], float(max(0, state.get("findings_total", len(findings)) - len(findings))))
        yield not_exported

        tree = state.get("tree")
        if tree is not None:
            yield from self._tree(tree, findings)

        seconds = state.get("seconds_until_limit")
        limit = GaugeMetricFamily("leaksoak_seconds_until_memory_limit",
                                  "Projected seconds until the memory limit at the current growth (+Inf: not growing)")
        if seconds is not None:
            limit.add_metric([], float(seconds))
        yield limit

        pause = GaugeMetricFamily("leaksoak_snapshot_pause_seconds", "The workload's pause for the last snapshot")
        if state.get("pause_ms") is not None:
            pause.add_metric([], state["pause_ms"] / 1000)
        yield pause

        snapshots = GaugeMetricFamily("leaksoak_snapshots", "Snapshots taken in this run")
        snapshots.add_metric([], float(state.get("snapshots", 0)))
        yield snapshots


    def _tree(self, tree: dict[str, Any], findings: list[dict[str, Any]]) -> Iterator[Metric]:
        """A watched tree: the combined view is in the run's own families (findings judged
        together, memory summed); these add its processes, one by one in bounded slots."""
        count = GaugeMetricFamily("leaksoak_tree_processes", "Processes of the watched tree with a run (the root included)")
        count.add_metric([], float(tree.get("processes", 0)))
        yield count
        showing = GaugeMetricFamily("leaksoak_finding_processes", "Processes of the watched tree that show each exported finding",
                                    labels=["finding_id"])
        for finding in findings:
            showing.add_metric([finding["finding_id"]], float(finding.get("processes", 1)))
        yield showing
        memory = GaugeMetricFamily("leaksoak_tree_process_memory_bytes",
                                   "Memory of each process of the watched tree: the root, then a slot per descendant "
                                   "(reused when one exits, so bounded whatever the number of workers)",
                                   labels=["process", "kind"])
        for process, readings in tree.get("slots", {}).items():
            for kind in TREE_KINDS:
                if readings.get(kind) is not None:
                    memory.add_metric([process, kind], float(readings[kind]))
        yield memory


def serve_metrics(state: Callable[[], dict[str, Any]], port: int, host: str = "127.0.0.1", top: int = TOP_N) -> Any:
    """Serve /metrics on host:port in a daemon thread; returns the server (``.shutdown()`` stops it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SoakCollector(state, top))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def seconds_until(limit: float | None, current: float | None, slope_per_s: float) -> float | None:
    if limit is None or current is None:
        return None
    if slope_per_s <= 0:
        return math.inf
    return max(0.0, (limit - current) / slope_per_s)
