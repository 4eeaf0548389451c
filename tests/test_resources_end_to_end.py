"""Real soaks of workloads that leak threads, files, sockets and asyncio tasks, and of bounded
pools of threads and connections: each leak is a `resource` finding naming what leaks (and, for
threads and tasks, the function that created them); the pools are clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import REFERENCE, db_rows, run_soak

SHORT = ("--duration", "8s", "--interval", "0.25s", "--format", "json")


def _resources(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["resource"]: f for f in report["findings"] if f["kind"] == "resource"}


@pytest.mark.parametrize(("workload", "resource", "series"), [
    ("leaky_threads", "threads", "soak.workloads.resources.leaky_threads._watch_for_shutdown"),
    ("leaky_files", "fds", "file"),
    ("leaky_sockets", "fds", "socket"),
    ("leaky_children", "children", "true (not reaped)"),
])
def test_a_resource_leak_is_a_resource_finding(workload: str, resource: str, series: str, db: Path) -> None:
    result = run_soak("run", f"soak.workloads.resources.{workload}:step", "--db", str(db), *SHORT)
    assert result.returncode == 1, result.stdout + result.stderr
    finding = _resources(result.json())[resource]
    assert finding["verdict"] == "leak" and finding["evidence"]["series"] == series
    assert finding["growth_count_per_hour"] > 1000 and finding["growth_bytes_per_hour"] == 0.0
    if resource == "threads":
        assert finding["evidence"]["created_by"] == series
    text = run_soak("report", "--db", str(db))
    said = {"threads": "created by " + series, "fds": f"of kind {series} pile up", "children": f"child processes pile up: {series}"}
    assert said[resource] in text.stdout


@pytest.mark.parametrize("workload", ["clean_thread_pool", "clean_connection_pool", "clean_process_pool"])
def test_a_bounded_pool_is_clean(workload: str, db: Path) -> None:
    result = run_soak("run", f"soak.workloads.resources.{workload}:step", "--db", str(db), *SHORT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.json()["verdict"] == "clean"
    # the pool's threads, sockets or processes were seen, and stayed flat
    kinds = {(str(probe), str(name)) for probe, name in db_rows(db, "SELECT probe, name FROM probe_series")}
    assert any(_pool_series(workload, probe, name) for probe, name in kinds), kinds


def _pool_series(workload: str, probe: str, name: str) -> bool:
    """Whether a stored series is the pool's own: its sockets, threads or worker processes."""
    if workload == "clean_connection_pool":
        return (probe, name) == ("fds", "socket")
    if workload == "clean_thread_pool":
        return probe == "threads" and name.startswith("concurrent.futures")
    return probe == "children" and not name.endswith("(not reaped)")


def test_leaked_asyncio_tasks_are_named_by_their_coroutine(db: Path) -> None:
    result = run_soak("run", f"{REFERENCE / 'leaky_async_tasks.py'}:step", "--db", str(db), *SHORT)
    assert result.returncode == 1, result.stdout + result.stderr
    finding = _resources(result.json())["asyncio_tasks"]
    assert finding["evidence"]["created_by"] == "leaky_async_tasks._flush_on_shutdown"
    assert result.json()["findings"][0]["kind"] in ("site", "library")  # memory findings come first
