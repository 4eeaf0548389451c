"""Prometheus metrics of a running soak (``--metrics-port``), through a custom collector.

Label cardinality is bounded: one series per verdict value, and growth for the top N findings
by rank (``rank`` 1..N, with the finding's stable id and line) — a leak tool must not leak labels.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric

from soak.verdicts import VERDICTS

TOP_N = 10


class SoakCollector:
    """Reads the supervisor's latest state on every scrape; holds none of its own."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        run = state.get("run_name", "")
        verdict = GaugeMetricFamily("leaksoak_verdict", "1 for the run's current verdict, 0 for the others",
                                    labels=["run", "verdict"])
        for value in VERDICTS:
            verdict.add_metric([run, value], 1.0 if state.get("verdict") == value else 0.0)
        yield verdict

        growth = GaugeMetricFamily("leaksoak_finding_growth_bytes_per_hour",
                                   f"Growth of the top {TOP_N} findings, by rank",
                                   labels=["run", "rank", "finding_id", "kind", "where", "verdict"])
        for rank, finding in enumerate(state.get("findings", [])[:TOP_N], 1):
            growth.add_metric([run, str(rank), finding["finding_id"], finding["kind"], finding["where"], finding["verdict"]],
                              float(finding["growth_bytes_per_hour"] or 0.0))
        yield growth

        memory = GaugeMetricFamily("leaksoak_process_memory_bytes", "Memory of the measured process",
                                   labels=["run", "kind"])
        for kind in ("rss", "uss", "pss", "cgroup_bytes", "cgroup_limit", "traced_bytes"):
            value = state.get("process", {}).get(kind)
            if value is not None:
                memory.add_metric([run, kind], float(value))
        yield memory

        seconds = state.get("seconds_until_limit")
        limit = GaugeMetricFamily("leaksoak_seconds_until_memory_limit",
                                  "Projected seconds until the memory limit at the current growth (+Inf: not growing)",
                                  labels=["run"])
        if seconds is not None:
            limit.add_metric([run], float(seconds))
        yield limit

        pause = GaugeMetricFamily("leaksoak_snapshot_pause_seconds", "The workload's pause for the last snapshot",
                                  labels=["run"])
        if state.get("pause_ms") is not None:
            pause.add_metric([run], state["pause_ms"] / 1000)
        yield pause

        snapshots = GaugeMetricFamily("leaksoak_snapshots", "Snapshots taken in this run", labels=["run"])
        snapshots.add_metric([run], float(state.get("snapshots", 0)))
        yield snapshots


def serve_metrics(state: Callable[[], dict[str, Any]], port: int, host: str = "127.0.0.1") -> Any:
    """Serve /metrics on host:port in a daemon thread; returns the server (``.shutdown()`` stops it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SoakCollector(state))  # type: ignore[arg-type]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def seconds_until(limit: float | None, current: float | None, slope_per_s: float) -> float | None:
    if limit is None or current is None:
        return None
    if slope_per_s <= 0:
        return math.inf
    return max(0.0, (limit - current) / slope_per_s)
