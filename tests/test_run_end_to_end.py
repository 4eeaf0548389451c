"""`soak run` for real: a worker process, a real scheduler and a real SQLite file.

Soaks are kept short (seconds, sub-second intervals) with leak rates that show in that time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import REFERENCE, TEST_WORKLOADS, Result, db_rows, leak_lines, run_soak

SHORT = ("--duration", "6s", "--interval", "0.2s", "--quiet")


def _run(target: str, db: Path, *extra: str) -> Result:
    return run_soak("run", target, "--db", str(db), *SHORT, "--format", "json", *extra)


def _enclosing_function(path: Path, line: int) -> str:
    """The name of the last top-level def before ``line`` of a reference workload."""
    defs = [text.split("def ", 1)[1].split("(")[0] for text in path.read_text().splitlines()[:line]
            if text.startswith(("def ", "async def "))]
    return defs[-1]


@pytest.mark.parametrize("name", ["leaky_dict_cache", "leaky_callbacks", "leaky_async_tasks"])
def test_leaky_reference_workload_is_pinned_to_its_line(name: str, db: Path) -> None:
    path = REFERENCE / f"{name}.py"
    result = _run(f"{path}:step", db, "--duration", "8s")  # not 6: a busy machine delays snapshots
    assert result.returncode == 1, result.stderr
    report = result.json()
    assert report["schema"] == "leaksoak.report/1"
    assert report["verdict"] == "leak"
    first = report["findings"][0]
    assert first["verdict"] == "leak"
    if first["kind"] == "library":
        # Allocations inside the stdlib (asyncio's Task machinery), summed and named by the line
        # of the workload that reached them.
        assert first["library"] == "stdlib" and first["evidence"]["sites"] >= 2
        assert first["call_site"]["file"] == str(path) and first["call_site"]["line"] in leak_lines(path)
    else:
        assert first["kind"] == "site"
        assert first["where"]["file"] == str(path)
        assert first["where"]["line"] in leak_lines(path)
        # the task's wait in leaky_async_tasks' _flush_on_shutdown is the largest site on 3.10,
        # whose coroutines keep a frame object apart
        assert first["where"]["function"] == _enclosing_function(path, first["where"]["line"])
        assert first["library"] == "application" and first["call_site"] is None
    assert first["growth_bytes_per_hour"] > 1e6
    assert 0 < first["detected_at_s"] <= report["run"]["duration_s"] + 1
    assert report["run"]["status"] == "completed" and report["run"]["snapshots"] >= 10


@pytest.mark.parametrize("name", ["clean_bounded_lru", "clean_churn", "clean_sawtooth", "clean_async_fanout"])
def test_clean_reference_workload_is_clean(name: str, db: Path) -> None:
    # 10 s rather than 6: the bounded LRU needs ~2,000 calls to fill, and a cache still filling
    # through the last part of the run cannot be told from a leak (on a busy machine it is slow).
    result = _run(f"soak.workloads.reference.{name}:step", db, "--duration", "10s")
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.json()
    assert report["verdict"] == "clean", report["findings"]
    assert report["findings"] == []
    assert report["run"]["iterations"] > 100


def test_text_report_runs_list_and_fail_on_never(db: Path) -> None:
    result = run_soak("run", "soak.workloads.reference.leaky_callbacks:step", "--db", str(db), *SHORT,
                      "--name", "callbacks", "--fail-on", "never")
    assert result.returncode == 0
    path = REFERENCE / "leaky_callbacks.py"
    assert "verdict: LEAK" in result.stdout
    source = path.read_text().splitlines()
    shown = [n for n in leak_lines(path) if f"leaky_callbacks.py:{n} in step" in result.stdout]
    assert shown, result.stdout
    assert all(source[n - 1].strip() in result.stdout for n in shown)  # with the source line itself
    assert re.search(r"\d [KMG]iB/hour", result.stdout)  # the rate's unit follows the machine's speed

    runs = run_soak("runs", "--db", str(db))
    assert runs.returncode == 0 and "callbacks" in runs.stdout and "completed" in runs.stdout and "leak" in runs.stdout
    by_name = run_soak("report", "--db", str(db), "--run", "callbacks", "--format", "json")
    assert by_name.returncode == 0 and by_name.json()["run"]["name"] == "callbacks"


def test_snapshots_record_process_metrics_and_probe_pauses(db: Path) -> None:
    result = _run("soak.workloads.reference.leaky_async_tasks:step", db, "--concurrency", "3", "--fail-on", "never")
    assert result.returncode == 0, result.stderr
    rows = db_rows(db, "SELECT rss, uss, fds, threads, gc_objects, asyncio_tasks, pause_ms, probe_ms, at_boundary "
                       "FROM snapshots ORDER BY seq")
    assert len(rows) >= 3  # far fewer than 30 when pauses grow past the interval: jobs coalesce
    rss, uss, fds, threads, gc_objects, tasks, pause_ms, probe_ms, at_boundary = rows[-1]
    assert rss > 10_000_000 and uss > 0 and fds >= 3 and threads >= 2
    # the census' count, on the snapshots whose census the pause budget let run (the first at least)
    assert rows[0][4] > 1000 and all(row[4] is None or row[4] > 1000 for row in rows)
    assert tasks > rows[1][5] > 0  # leaked tasks pile up; the driver's own callers are not counted
    assert pause_ms > 0 and '"tracer"' in probe_ms and at_boundary == 1
    events = [r[0] for r in db_rows(db, "SELECT kind FROM events ORDER BY id")]
    assert events[0] == "worker_start" and "worker_exit" in events


def test_without_a_tracer_the_worker_rss_is_judged(db: Path) -> None:
    result = _run("soak.workloads.reference.leaky_callbacks:step", db, "--tracer", "off")
    assert result.returncode == 1, result.stderr
    findings = result.json()["findings"]
    (finding,) = [f for f in findings if f["kind"] == "process"]
    types = [f for f in findings if f["kind"] != "process"]
    assert finding["resource"] == "rss" and finding["where"] is None
    # the census sees the leaked closures too: lambdas, their closure tuples and the cells in them
    assert {f["evidence"]["series"] for f in types} <= {"builtins.function", "builtins.tuple", "builtins.cell"}
    assert finding["growth_bytes_per_hour"] > 1e6
    assert db_rows(db, "SELECT count(*) FROM site_samples")[0][0] == 0


def test_report_projects_the_time_until_the_memory_limit(db: Path) -> None:
    result = _run("soak.workloads.reference.leaky_dict_cache:step", db, "--memory-limit", "4GiB")
    assert result.returncode == 1, result.stderr
    projection = result.json()["analysis"]["projection"]
    assert projection["limit_bytes"] == 4 * 1024**3 and projection["limit_source"] == "--memory-limit"
    assert projection["growth_bytes_per_hour"] > 0 and projection["memory_bytes"] > 0
    expected = (projection["limit_bytes"] - projection["memory_bytes"]) / (projection["growth_bytes_per_hour"] / 3600)
    assert abs(projection["seconds_until_limit"] - expected) < 1e-6 * expected
    text = run_soak("report", "--db", str(db)).stdout
    assert "limit (--memory-limit) is reached in about" in text and "RSS grows" in text


def test_the_workload_runs_on_a_short_stack_that_calls_early(db: Path, tmp_path: Path) -> None:
    # For each traced allocation tracemalloc finds the line of every recorded frame, scanning the
    # frame's line table up to its current call: runpy's frames, or a call deep into a long
    # function, under a shallow workload made it run ~3x slower than in a plain script (issue 10).
    out = tmp_path / "stack.json"
    result = run_soak("run", f"{TEST_WORKLOADS}/stack_probe.py:step", "--db", str(db), "--duration", "2s",
                      "--interval", "1s", "--quiet", "--fail-on", "never", env={"LEAKSOAK_STACK_OUT": str(out)})
    assert result.returncode == 0, result.stderr
    frames = json.loads(out.read_text())
    assert len(frames) <= 4 and not any("runpy" in file for file, _, _ in frames), frames
    assert all(offset < 256 for _, _, offset in frames), frames
