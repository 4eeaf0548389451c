"""The analysis process (soak.supervisor.analysis_process): real child processes on a real SQLite database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import FAST_LEAKS, db_rows, run_soak, soak_command

from soak.analyzers import Thresholds
from soak.judging.analysis import compute
from soak.judging.attribution import Attributor
from soak.model.options import RunOptions
from soak.storage import open_database
from soak.supervisor.analysis_process import MAX_FAILURES, AnalysisProcess, Analyst, computed_to_json
from soak.supervisor.runner import run

LEAKY = "soak.workloads.reference.leaky_dict_cache:step"


@pytest.fixture(autouse=True)
def fast_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAST_LEAKS.items():
        monkeypatch.setenv(name, value)


def _soak(db: Path, **options: Any) -> Any:
    return run(RunOptions(target=LEAKY, db_path=str(db), duration_s=options.pop("duration_s", 6.0), interval_s=0.2,
                          **options))


def _events(db: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(data) for (data,) in db_rows(db, "SELECT data FROM events WHERE kind = ? ORDER BY id", (kind,))]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)
    return _gone(pid)


def _normal(value: Any) -> Any:
    """As the pipe carries it (tuples as lists, NumPy scalars as numbers)."""
    return json.loads(json.dumps(value, default=lambda v: v.item()))


def test_the_process_computes_what_the_supervisor_computes(db: Path) -> None:
    result = _soak(db, analysis_process=False)
    assert result.verdict == "leak"
    attributor = Attributor([os.getcwd()])
    thresholds = Thresholds()
    here = compute(open_database(str(db), create=False), result.run_id, thresholds, attributor)
    assert here.findings, "a leaking run has findings"
    process = AnalysisProcess(str(db), result.run_id, thresholds, attributor.application_roots, None)
    try:
        there = process.compute()
    finally:
        process.stop()
    assert there.analysis.verdict == here.analysis.verdict == "leak"
    assert [f.key for f in there.analysis.findings] == [f.key for f in here.analysis.findings]
    assert _normal(computed_to_json(there)) == _normal(computed_to_json(here))


def test_a_run_recycles_its_analysis_process_and_keeps_its_findings(db: Path) -> None:
    result = _soak(db, analysis_process=True, analysis_recycle_every=2, analyze_every_s=0.5, duration_s=8.0)
    assert result.status == "completed" and result.verdict == "leak"
    started = _events(db, "analysis_process")
    pids = [event["pid"] for event in started]
    assert len(set(pids)) == len(pids) >= 3, "a fresh process every 2 refreshes"
    assert not _events(db, "analysis_process_failed")
    assert all(_wait_gone(pid, 10) for pid in pids), "every analysis process ended with the run"
    # what the processes stored is what the supervisor itself finds in the same snapshots
    stored = db_rows(db, "SELECT finding_id, verdict FROM findings WHERE run_id = ? ORDER BY finding_id", (result.run_id,))
    here = compute(open_database(str(db), create=False), result.run_id, Thresholds(), Attributor([os.getcwd()]))
    assert stored and sorted((row.finding_id, row.verdict) for row in here.findings) == [tuple(row) for row in stored]


def test_a_killed_analysis_process_is_replaced_and_the_run_finishes(db: Path) -> None:
    killed: list[int] = []

    def kill_the_first() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                started = _events(db, "analysis_process")
            except Exception:  # the database is not there yet
                started = []
            if started:
                time.sleep(1.5)  # it has done a refresh or two
                os.kill(started[0]["pid"], signal.SIGKILL)
                killed.append(started[0]["pid"])
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_first)
    killer.start()
    result = _soak(db, analysis_process=True, analyze_every_s=0.5, duration_s=8.0)
    killer.join()
    assert killed
    assert result.status == "completed" and result.verdict == "leak"
    failed = _events(db, "analysis_process_failed")
    assert [event["pid"] for event in failed] == killed
    pids = [event["pid"] for event in _events(db, "analysis_process")]
    assert len(pids) == 2 and pids[0] == killed[0], "one replacement, and the run went on with it"
    assert not _events(db, "analysis_in_process")
    assert db_rows(db, "SELECT count(*) FROM findings WHERE run_id = ?", (result.run_id,))[0][0] > 0


def test_a_process_that_keeps_failing_leaves_the_analysis_to_the_supervisor(db: Path, tmp_path: Path) -> None:
    result = _soak(db, analysis_process=False)
    events: list[tuple[str, dict[str, Any]]] = []
    attributor = Attributor([os.getcwd()])
    # each analysis process is pointed at a file that is not there: it cannot start
    analyst = Analyst(str(tmp_path / "missing.db"), result.run_id, Thresholds(), attributor, None, use_process=True,
                      record_event=lambda kind, message, data: events.append((kind, data)))
    real = open_database(str(db), create=False)
    expected = _normal(computed_to_json(compute(real, result.run_id, Thresholds(), attributor)))
    try:
        for _ in range(MAX_FAILURES + 1):
            assert _normal(computed_to_json(analyst.compute(real))) == expected  # every refresh is computed
    finally:
        analyst.close()
    kinds = [kind for kind, _ in events]
    assert kinds == ["analysis_process", "analysis_process_failed"] * MAX_FAILURES + ["analysis_in_process"]
    assert analyst.process is None and not analyst.use_process
    assert all(_wait_gone(data["pid"], 10) for kind, data in events if kind == "analysis_process")


def test_no_orphan_when_the_supervisor_is_killed(db: Path) -> None:
    # planned for 20 minutes: a run that long analyses in a process without being told
    supervisor = subprocess.Popen([*soak_command(), "run", LEAKY, "--db", str(db), "--duration", "20m",
                                   "--interval", "0.2s", "--quiet"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **FAST_LEAKS})
    try:
        deadline = time.monotonic() + 90
        started: list[dict[str, Any]] = []
        while not started and time.monotonic() < deadline:
            try:
                started = _events(db, "analysis_process")
            except Exception:  # the database is not there yet
                pass
            time.sleep(0.2)
        assert started, "a run planned for 20 minutes starts an analysis process"
        pid = started[0]["pid"]
        assert psutil.Process(pid).ppid() == supervisor.pid
        time.sleep(2)  # refreshing, or between two refreshes
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
        assert _wait_gone(pid), "the analysis process outlived its supervisor"
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()


def test_soak_run_analysis_process_option(db: Path) -> None:
    # a short run analyses in its supervisor unless told otherwise
    result = run_soak("run", LEAKY, "--db", str(db), "--duration", "4s", "--interval", "0.2s", "-q", "--analysis-process")
    assert result.returncode == 1, result.stderr  # the leak is found
    assert len(_events(db, "analysis_process")) == 1
    stored = json.loads(db_rows(db, "SELECT options FROM runs")[0][0])
    assert stored["analysis_process"] is True
