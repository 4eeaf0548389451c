"""Real soaks of async workloads: a coroutine that calls ``time.sleep`` gets a blocked-loop
finding at that line, one that awaits a client using ``run_in_executor`` a hidden-pool finding at
the client's line and the application's call, and a truly async one (``asyncio.sleep``, real
non-blocking sockets on 127.0.0.1) none, at ``--concurrency`` 1 and 10."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import INSTALLED_WORKLOADS, Result, assert_not_leaksoaks_own, db_rows, run_soak

DEFAULT_WORKERS = min(32, (os.cpu_count() or 1) + 4)
"""concurrent.futures' default for a ThreadPoolExecutor, the loop's default executor among them."""

ASYNC = INSTALLED_WORKLOADS / "async_"
SHORT = ("--duration", "6s", "--interval", "0.25s", "--format", "json")


def _marked(path: Path, mark: str) -> int:
    """The line of ``path`` that ends with ``# MARK``."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.rstrip().endswith(f"# {mark}"))


def _async_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    findings = [f for f in report["findings"] if f["kind"] == "async"]
    for finding in findings:
        assert_not_leaksoaks_own(finding)
    return findings


def _soaked(workload: str, concurrency: str, db: Path) -> Result:
    """A short ``soak run`` of ``soak.workloads.async_.WORKLOAD:step`` with this many coroutines."""
    return run_soak("run", f"soak.workloads.async_.{workload}:step", "--concurrency", concurrency, "--db", str(db), *SHORT)


def _one_async_finding(result: Result) -> dict[str, Any]:
    """The one async finding of a run that must have failed on it (exit 1)."""
    assert result.returncode == 1, result.stdout + result.stderr
    [finding] = _async_findings(result.json())
    return finding


@pytest.mark.parametrize("concurrency", ["1", "10"])
def test_time_sleep_in_a_coroutine_is_a_blocked_loop_at_its_line(concurrency: str, db: Path) -> None:
    result = _soaked("blocking_sleep", concurrency, db)
    finding = _one_async_finding(result)
    assert finding["verdict"] == "suspect" and finding["resource"] == "event_loop"
    assert finding["where"]["file"] == str(ASYNC / "blocking_sleep.py")
    assert finding["where"]["line"] == _marked(ASYNC / "blocking_sleep.py", "BLOCKS")
    evidence = finding["evidence"]
    assert evidence["share"] > 0.3 and min(evidence["share_halves"]) > evidence["threshold_share"]
    assert evidence["lag_max_s"] >= evidence["block_s"] and evidence["count"] > 5 and evidence["loop_share"] > 0.3
    # the series are stored like any probe's
    names = {name for (name,) in db_rows(db, "SELECT name FROM probe_series WHERE probe = 'event_loop'")}
    assert {"lag_p50", "lag_p99", "lag_max", "blocked_s", "wall_s"} <= names
    # a block is counted in the period it happened in, however the snapshots cut it
    per_period = db_rows(db, "SELECT s.name, v.seq, v.value FROM probe_values v JOIN probe_series s ON s.id = v.series_id"
                             " WHERE s.probe = 'event_loop' AND (s.name = 'wall_s' OR s.name LIKE 'block %')")
    wall = {seq: value for name, seq, value in per_period if name == "wall_s"}
    assert all(value <= wall[seq] + 1e-6 for name, seq, value in per_period if name != "wall_s")
    text = run_soak("report", "--db", str(db)).stdout
    assert "blocked the event loop" in text and "time.sleep(0.08)  # BLOCKS" in text


@pytest.mark.parametrize("concurrency", ["1", "10"])
def test_an_async_client_on_a_thread_pool_is_a_hidden_pool_at_its_line_and_the_call(concurrency: str, db: Path) -> None:
    result = _soaked("hidden_pool", concurrency, db)
    finding = _one_async_finding(result)
    assert finding["resource"] == "thread_pools"
    assert (finding["where"]["file"], finding["where"]["line"]) == (
        str(ASYNC / "slow_client.py"), _marked(ASYNC / "slow_client.py", "HIDDEN POOL"))
    assert finding["where"]["function"] == "SlowClient.fetch"
    assert (finding["call_site"]["file"], finding["call_site"]["line"]) == (
        str(ASYNC / "hidden_pool.py"), _marked(ASYNC / "hidden_pool.py", "CALLS THE POOL"))
    evidence = finding["evidence"]
    assert evidence["executor"] == f"ThreadPoolExecutor (the loop's default executor, {DEFAULT_WORKERS} workers)"
    assert evidence["submitted"].endswith("SlowClient._request_blocking")
    assert evidence["share"] > evidence["threshold_share"]
    # blocking in a pool thread does not block the loop
    assert not [f for f in _async_findings(result.json()) if f["resource"] == "event_loop"]


@pytest.mark.parametrize("concurrency", ["1", "10"])
def test_a_truly_async_workload_gets_no_async_finding(concurrency: str, db: Path) -> None:
    result = _soaked("truly_async", concurrency, db)
    report = result.json()
    assert _async_findings(report) == [], result.stdout
    assert result.returncode == 0 and report["verdict"] == "clean", result.stdout + result.stderr
    # the loop was measured (the probe ran, its heartbeat beat), and no work went to a pool
    [(calls,)] = db_rows(db, "SELECT count(*) FROM probe_values v JOIN probe_series s ON s.id = v.series_id"
                             " WHERE s.probe = 'event_loop' AND s.name = 'lag_max'")
    assert calls > 5
    sites = db_rows(db, "SELECT name FROM probe_series WHERE probe = 'thread_pools' AND name NOT IN ('caller_s', 'own_s')")
    assert sites == []


def test_a_lower_threshold_is_taken_and_a_bad_one_is_one_line(db: Path) -> None:
    bad = run_soak("run", "soak.workloads.async_.truly_async:step", "--db", str(db), "--blocked-share", "150%")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--blocked-share" in bad.stderr
    assert not db.exists()
    bad = run_soak("run", "soak.workloads.async_.truly_async:step", "--db", str(db), "--loop-block", "soon")
    assert bad.returncode == 2 and "--loop-block" in bad.stderr and "Traceback" not in bad.stderr
    # hidden_pool's client sleeps 20 ms a call: a 1 s block threshold sees no block, a 100% pool share no pool
    result = run_soak("run", "soak.workloads.async_.hidden_pool:step", "--db", str(db), "--pool-share", "100%",
                      "--loop-block", "1s", *SHORT)
    assert result.returncode == 0 and _async_findings(result.json()) == [], result.stdout
