"""The probe interface: readings, a failing probe, the cap on series, storage of any probe's
series in a real SQLite file, and the resource probes on this very process."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from soak.analyzers import Thresholds
from soak.inprocess.probes.probe import MAX_SERIES_PER_PROBE, FindingKind, ProbeResult, Reading, run_probes
from soak.inprocess.probes.process import read_from_outside
from soak.inprocess.probes.resources import FdProbe, TaskProbe, ThreadProbe, fd_kind
from soak.judging.analysis import analyze_run
from soak.model.finding import ProbeKey
from soak.storage import open_database, queries
from soak.storage.retention import thin
from soak.storage.writer import RunWriter


class _Fixed:
    kind: FindingKind = "resource"

    def __init__(self, name: str, readings: list[Reading]) -> None:
        self.name, self.readings = name, readings

    def collect(self) -> ProbeResult:
        return ProbeResult(self.readings, {"a": {"created_by": "here"}})


class _Broken:
    name = "broken"
    kind: FindingKind = "resource"

    def collect(self) -> ProbeResult:
        raise OSError("no such file")


def test_run_probes_reports_each_probe_and_a_broken_one_apart() -> None:
    out = run_probes([_Fixed("ok", [Reading("a", "count", 3)]), _Broken()])
    assert out["ok"]["series"] == [["a", "count", 3.0]] and out["ok"]["evidence"] == {"a": {"created_by": "here"}}
    assert out["broken"]["error"] == "OSError: no such file" and "series" not in out["broken"]
    assert all(entry["pause_ms"] >= 0 for entry in out.values())


def test_a_reading_that_is_not_a_finite_number_in_a_known_unit_is_the_probes_error() -> None:
    assert "BadReading" in run_probes([_Fixed("nan", [Reading("a", "count", float("nan"))])])["nan"]["error"]
    assert "BadReading" in run_probes([_Fixed("unit", [Reading("a", "furlongs", 1)])])["unit"]["error"]  # type: ignore[arg-type]


def test_series_beyond_the_cap_are_summed_into_other() -> None:
    readings = [Reading(f"s{i}", "count", i) for i in range(MAX_SERIES_PER_PROBE + 10)]
    series = run_probes([_Fixed("many", readings)])["many"]["series"]
    assert len(series) == MAX_SERIES_PER_PROBE
    assert series[-1][0] == "other" and sum(v for _, _, v in series) == sum(range(MAX_SERIES_PER_PROBE + 10))


def _snapshot(writer: RunWriter, seq: int, probes: dict[str, dict[str, object]]) -> None:
    writer.record_snapshot(float(seq), {"rss": 1}, {"pid": 1, "probes": probes})


def test_any_probes_series_is_stored_sparse_and_read_back_on_the_grid(tmp_path: Path) -> None:
    db = open_database(str(tmp_path / "soak.db"))
    writer = RunWriter.create_run(db, name="t", target="t", mode="run", planned_duration_s=None, interval_s=1.0,
                                  options={}, function_name=lambda file, line: "f")

    def entry(*series: tuple[str, str, float]) -> dict[str, object]:
        return {"kind": "resource", "series": [list(s) for s in series], "evidence": {}}

    _snapshot(writer, 0, {"fds": entry(("socket", "count", 2), ("file", "count", 1))})
    _snapshot(writer, 1, {"fds": entry(("socket", "count", 2), ("file", "count", 1))})  # unchanged: no rows
    _snapshot(writer, 2, {"fds": {"kind": "resource", "error": "gone"}})  # a failed probe carries forward
    _snapshot(writer, 3, {"fds": entry(("socket", "count", 5))})  # file absent: 0
    assert db.execute("SELECT count(*) FROM probe_values").fetchone()[0] == 4
    series = {s.name: s for s in queries.probe_series(db, writer.run_id, np.arange(4))}
    assert series["socket"].values.tolist() == [2, 2, 2, 5] and series["file"].values.tolist() == [1, 1, 1, 0]
    assert series["socket"].probe == "fds" and series["socket"].unit == "count" and series["socket"].kind == "resource"
    # thinning keeps every value a reader sees at a kept snapshot
    assert thin(db, writer.run_id, older_than_s=10, keep_every=3) == 2
    kept = np.array([0, 3])
    assert {s.name: s.values.tolist() for s in queries.probe_series(db, writer.run_id, kept)} == {"socket": [2, 5], "file": [1, 0]}
    # a resumed writer goes on from the stored values
    resumed = RunWriter.resume(db, writer.run_id, lambda file, line: "f", os.getpid())
    resumed.record_snapshot(4.0, {}, {"pid": 1, "probes": {"fds": entry(("socket", "count", 5))}})
    assert db.execute("SELECT count(*) FROM probe_values WHERE seq = 4").fetchone()[0] == 0


def test_a_growing_count_series_is_a_resource_finding_and_a_filled_pool_is_not(tmp_path: Path) -> None:
    db = open_database(str(tmp_path / "soak.db"))
    writer = RunWriter.create_run(db, name="t", target="t", mode="run", planned_duration_s=None, interval_s=1.0,
                                  options={}, function_name=lambda file, line: "f")
    for seq in range(40):
        threads = [["app.watch", "count", seq // 2], ["pool.worker", "count", min(seq, 4)]]
        writer.record_snapshot(float(seq), {"rss": 10_000_000},
                               {"pid": 1, "probes": {"threads": {"kind": "resource", "series": threads,
                                                                 "evidence": {"app.watch": {"created_by": "app.watch"}}}}})
    result, _ = analyze_run(db, writer.run_id, Thresholds())
    assert result.verdict == "leak" and len(result.findings) == 1
    (finding,) = result.findings
    assert finding.key == ProbeKey("resource", "threads", "app.watch", "count")
    assert finding.evidence["created_by"] == "app.watch" and finding.evidence["unit"] == "count"
    assert finding.growth_bytes_per_hour == pytest.approx(1800, rel=0.1)  # the analyzer's rate is in the unit: 0.5/s


def test_fd_probe_sees_sockets_files_and_pipes_of_a_process() -> None:
    before = {name: value for name, _, value in run_probes([FdProbe(os.getpid())])["fds"]["series"]}
    read, write = os.pipe()
    pair = socket.socketpair()
    with open(__file__) as handle:
        after = {name: value for name, _, value in run_probes([FdProbe(os.getpid())])["fds"]["series"]}
        assert handle.fileno() >= 0
    os.close(read)
    os.close(write)
    pair[0].close()
    pair[1].close()
    assert after["socket"] - before.get("socket", 0) == 2 and after["pipe"] - before.get("pipe", 0) == 2
    assert after["file"] - before.get("file", 0) >= 1
    assert [fd_kind(t) for t in ("socket:[1]", "pipe:[2]", "/tmp/x", "/dev/null", "anon_inode:[eventfd]")] == \
        ["socket", "pipe", "file", "other", "other"]
    assert "error" in run_probes([FdProbe(2**22 + 7)])["fds"]  # no such process: the probe's error, no raise


def test_the_process_readings_count_fds_from_the_fds_probe() -> None:
    process, probes = read_from_outside(os.getpid())
    assert process["fds"] == sum(value for _, _, value in probes["fds"]["series"]) >= 3
    assert process["rss"] > 0 and process["threads"] >= 1
    gone, probes = read_from_outside(2**22 + 7)
    assert gone["fds"] is None and gone["rss"] is None and "error" in probes["fds"]


def _wait(stop: threading.Event) -> None:
    stop.wait()


def test_thread_probe_names_the_function_a_thread_runs_and_leaves_leaksoaks_own_out() -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=_wait, args=(stop,)) for _ in range(3)]
    threads.append(threading.Thread(target=_wait, args=(stop,), name="soak-own"))
    for thread in threads:
        thread.start()
    try:
        counts = {name: value for name, _, value in run_probes([ThreadProbe()])["threads"]["series"]}
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert counts[f"{__name__}._wait"] == 3  # the fourth is named soak-...


def test_task_probe_counts_tasks_by_coroutine_leaving_the_drivers_own_out() -> None:
    async def pending(event: asyncio.Event) -> None:
        await event.wait()

    async def main() -> dict[str, float]:
        event = asyncio.Event()
        tasks = [asyncio.ensure_future(pending(event)) for _ in range(4)]
        this = asyncio.current_task()
        assert this is not None
        own = {this}
        await asyncio.sleep(0)
        probe = TaskProbe(lambda: (asyncio.get_running_loop(), own))
        counts = {name: value for name, _, value in run_probes([probe])["asyncio_tasks"]["series"]}
        event.set()
        await asyncio.gather(*tasks)
        return counts

    counts = asyncio.run(main())
    assert list(counts.values()) == [4] and next(iter(counts)).endswith("pending")
