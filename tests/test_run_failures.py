"""How `soak run` ends when the input is bad, the workload fails, or someone signals it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from conftest import TEST_WORKLOADS, db_rows, run_soak, soak_command


@pytest.mark.parametrize(
    "target, words",
    [
        (f"{TEST_WORKLOADS}/absent.py:step", "no such file"),
        (f"{TEST_WORKLOADS}/sleeper.py:nope", "no function 'nope'"),
        (f"{TEST_WORKLOADS}/not_callable.py:step", "not callable"),
        (f"{TEST_WORKLOADS}/import_error.py:step", "leaksoak_no_such_dependency"),
        (f"{TEST_WORKLOADS}/syntax_error.py:step", "SyntaxError"),
        ("leaksoak_missing_pkg.handlers:step", "no module named"),
        ("no-colon-here", "must look like"),
    ],
)
def test_bad_target_is_one_line_exit_2_and_writes_nothing(target: str, words: str, db: Path) -> None:
    result = run_soak("run", target, "--db", str(db), "--duration", "5s", "--interval", "1s")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("soak: error:")]
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not db.exists()  # no database, let alone a half-written run row


@pytest.mark.parametrize(
    "args, words",
    [
        (("--duration", "soon"), "not a duration"),
        (("--interval", "0s"), "longer than zero"),
        (("--duration", "1s", "--interval", "5s"), "longer than --duration"),
        (("--fail-on", "sometimes"), "--fail-on"),
        (("--frames", "0"), "--frames"),
    ],
)
def test_bad_options_are_exit_2(args: tuple[str, ...], words: str, db: Path) -> None:
    result = run_soak("run", f"{TEST_WORKLOADS}/sleeper.py:step", "--db", str(db), *args)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr
    assert not db.exists()


def test_bad_existing_database_is_refused_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "data.db"
    path.write_text("not sqlite at all\n" * 50)
    result = run_soak("run", f"{TEST_WORKLOADS}/sleeper.py:step", "--db", str(path), "--duration", "2s", "--interval", "1s")
    assert result.returncode == 2 and "not a leaksoak database" in result.stderr
    assert path.read_text().startswith("not sqlite at all")


def test_report_on_missing_database_is_exit_2(tmp_path: Path) -> None:
    result = run_soak("report", "--db", str(tmp_path / "absent.db"))
    assert result.returncode == 2 and "no database" in result.stderr and not (tmp_path / "absent.db").exists()


def test_module_that_raises_on_import_is_a_failed_run(db: Path) -> None:
    result = run_soak("run", f"{TEST_WORKLOADS}/raises_on_import.py:step", "--db", str(db), "--duration", "5s", "--interval", "1s")
    assert result.returncode == 3, result.stderr
    (status, reason), = db_rows(db, "SELECT status, status_reason FROM runs")
    assert status == "failed"
    assert "RuntimeError: configuration missing: DATABASE_URL" in reason and "raises_on_import.py:1" in reason
    assert "status: failed" in result.stdout and "DATABASE_URL" in result.stdout


def test_workload_that_raises_ends_the_run_as_failed_and_keeps_its_snapshots(db: Path) -> None:
    result = run_soak("run", f"{TEST_WORKLOADS}/raises_later.py:step", "--db", str(db), "--duration", "20s", "--interval", "0.2s", "-q")
    assert result.returncode == 3
    (status, reason, snapshots), = db_rows(db, "SELECT status, status_reason, snapshots FROM runs")
    assert status == "failed" and "ValueError: bad request payload" in reason and "raises_later.py:12" in reason
    assert snapshots >= 3 and db_rows(db, "SELECT count(*) FROM snapshots")[0][0] == snapshots


def test_worker_that_aborts_is_recorded_with_its_signal(db: Path) -> None:
    result = run_soak("run", f"{TEST_WORKLOADS}/aborts.py:step", "--db", str(db), "--duration", "30s", "--interval", "0.2s", "-q",
                      env={"ABORT_AFTER_S": "2"})
    assert result.returncode == 3
    (status, reason, snapshots), = db_rows(db, "SELECT status, status_reason, snapshots FROM runs")
    assert status == "failed" and "SIGABRT" in reason
    assert snapshots >= 2 and db_rows(db, "SELECT count(*) FROM snapshots")[0][0] == snapshots
    assert "SIGABRT" in result.stdout  # the report says why


def _start(db: Path, target: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*soak_command(), "run", target, "--db", str(db), "--duration", "60s", "--interval", "0.2s", "-q", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_snapshots(db: Path, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                if db_rows(db, "SELECT count(*) FROM snapshots")[0][0] >= n:
                    return
            except Exception:
                pass
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} snapshots after {timeout}s")


def test_worker_killed_mid_run_is_exit_3_and_loses_nothing(db: Path) -> None:
    supervisor = _start(db, f"{TEST_WORKLOADS}/sleeper.py:step")
    _wait_for_snapshots(db, 5)
    (worker,) = psutil.Process(supervisor.pid).children()
    worker.send_signal(signal.SIGKILL)
    stdout, stderr = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 3, stderr
    (status, reason, snapshots), = db_rows(db, "SELECT status, status_reason, snapshots FROM runs")
    assert status == "failed" and "SIGKILL" in reason
    assert snapshots >= 5 and db_rows(db, "SELECT count(*) FROM snapshots")[0][0] == snapshots
    assert "SIGKILL" in stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_the_run_cleanly_as_interrupted(signum: int, db: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    supervisor = subprocess.Popen(
        [*soak_command(), "run", f"{TEST_WORKLOADS}/setup_teardown.py:step", "--db", str(db), "--duration", "60s",
         "--interval", "0.2s", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "SOAK_TEST_MARKER": str(marker)},
    )
    _wait_for_snapshots(db, 5)
    supervisor.send_signal(signum)
    stdout, stderr = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, stderr  # clean workload
    (status, reason, snapshots, verdict), = db_rows(db, "SELECT status, status_reason, snapshots, verdict FROM runs")
    assert status == "interrupted" and signal.Signals(signum).name in reason and snapshots >= 6
    assert verdict in ("clean", "inconclusive")
    assert "status: interrupted" in stdout
    kinds = [k for (k,) in db_rows(db, "SELECT kind FROM events ORDER BY id")]
    assert "signal" in kinds and kinds[-1] == "worker_exit"
    setup, teardown = marker.read_text().splitlines()
    assert setup == "setup" and teardown.startswith("teardown after ") and int(teardown.split()[2]) > 100
