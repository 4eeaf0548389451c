"""Fleet-safe /metrics, the example Prometheus rules under promtool, and a real fleet: two
sidecars scraped by a real Prometheus server on 127.0.0.1, their databases merged."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO
from soak.analysis import Refreshed
from soak.analyzers import Analysis
from soak.metrics import FIXED_SERIES, SoakCollector, max_series, published_findings, serve_metrics
from soak.storage.writer import FindingRow

EXAMPLES = REPO / "examples" / "prometheus"
PROMTOOL = shutil.which("promtool")


def _refreshed(findings: int) -> Refreshed:
    """An analysis refresh with ``findings`` leaking sites, each on its own line."""
    rows = [
        FindingRow(finding_id=f"{n:016x}", kind="site", verdict="leak" if n % 3 else "suspect", stack_id=n,
                   library="application", resource=None, growth_bytes_per_hour=1e6 - n, growth_count_per_hour=10.0,
                   p_value=1e-6, q_value=1e-5, confidence=0.99, evidence={})
        for n in range(findings)
    ]
    frames = {n: [{"file": f"/srv/app/module_{n}.py", "line": n + 1, "function": f"handler_{n}"}] for n in range(findings)}
    return Refreshed(Analysis("leak", [], 0.0, 0, 0), rows, frames, 100.0, {})


def _series(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def _scrape(state: dict[str, object], top: int) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SoakCollector(lambda: state, top))  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def _state(findings: int, top: int) -> dict[str, object]:
    process = {"rss": 1 << 30, "uss": 1 << 29, "pss": 1 << 29, "cgroup_bytes": 1 << 30, "cgroup_limit": 1 << 32,
               "traced_bytes": 1 << 28}
    return {"run_name": "shop", "run_id": 7, "target": "pid:42", "verdict": "leak", "snapshots": 12, "pause_ms": 3.0,
            "process": process, "seconds_until_limit": 3600.0, **published_findings(_refreshed(findings), top)}


@pytest.mark.parametrize("top", [0, 1, 10, 50])
def test_thousands_of_findings_give_a_bounded_number_of_series(top: int) -> None:
    text = _scrape(_state(5000, top), top)
    series = _series(text)
    assert len(series) == max_series(top) == 2 * top + FIXED_SERIES
    growth = [labels for name, labels, _ in series if name == "leaksoak_finding_growth_bytes_per_hour"]
    assert len(growth) == top and all(set(labels) == {"finding_id"} for labels in growth)
    info = {labels["finding_id"]: labels for name, labels, _ in series if name == "leaksoak_finding_info"}
    assert list(info) == [labels["finding_id"] for labels in growth]  # joined by finding_id, most severe first
    (not_exported,) = [value for name, _, value in series if name == "leaksoak_findings_not_exported"]
    assert not_exported == 5000 - top


def test_findings_are_described_in_the_info_metric() -> None:
    series = _series(_scrape(_state(3, 10), 10))
    info = [labels for name, labels, _ in series if name == "leaksoak_finding_info"]
    assert info[1] == {"finding_id": f"{1:016x}", "kind": "site", "verdict": "leak", "where": "module_1.py:2",
                       "function": "handler_1", "library": "application", "resource": ""}
    states = {labels["leaksoak_verdict"]: value for name, labels, value in series if name == "leaksoak_verdict"}
    assert states == {"leak": 1.0, "suspect": 0.0, "clean": 0.0, "inconclusive": 0.0}
    (run,) = [labels for name, labels, _ in series if name == "leaksoak_run_info"]
    assert run["run"] == "shop" and run["run_id"] == "7" and run["target"] == "pid:42" and run["host"]
    (until,) = [value for name, _, value in series if name == "leaksoak_seconds_until_memory_limit"]
    assert until == 3600.0
    assert [value for name, _, value in series if name == "leaksoak_findings_not_exported"] == [0.0]


def test_the_collector_bounds_series_even_when_the_state_holds_more() -> None:
    state = _state(2000, 2000)  # a state publishing every finding: the collector still cuts at its top
    assert len(_series(_scrape(state, 5))) == max_series(5)


def test_served_metrics_stay_bounded_and_openmetrics_parses(unused_port: int) -> None:
    state = _state(3000, 10)
    server = serve_metrics(lambda: state, unused_port, top=10)
    try:
        plain = urllib.request.urlopen(f"http://127.0.0.1:{unused_port}/metrics", timeout=5).read().decode()
        request = urllib.request.Request(f"http://127.0.0.1:{unused_port}/metrics",
                                         headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        openmetrics = urllib.request.urlopen(request, timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert len(_series(plain)) == max_series(10)
    assert "# TYPE leaksoak_verdict stateset" in openmetrics and "# TYPE leaksoak_finding info" in openmetrics
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

    assert sum(len(f.samples) for f in openmetrics_families(openmetrics)) == max_series(10)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
