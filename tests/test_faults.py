"""Faults found by reading the code (issue 15), each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_WORKLOADS, db_rows, free_port, killed_run, resumed_while_scraped, run_soak

from soak.analyzers import Thresholds
from soak.model.options import RunOptions
from soak.supervisor.resume import resumed_options as _options_of

LEAKY = "soak.workloads.reference.leaky_dict_cache:step"


# --- soak run --resume keeps every option of the run -------------------------------------------

EVERY_OPTION: dict[str, Any] = {
    "target": "app/handlers.py:handle_one", "duration_s": 100.0, "interval_s": 2.5, "db_path": "first.db",
    "name": "nightly", "frames": 7, "concurrency": 3, "tracer": "exact", "sample_interval": 4096, "fail_on": "leak",
    "resume": None, "keep_full_s": 1234.0, "thin_every": 3, "metrics_port": 9471, "metrics_host": "127.0.0.2",
    "memory_limit_bytes": 3 * 1024**3, "analyze_every_s": 7.0, "snapshot_timeout_s": 90.0,
    "thresholds": Thresholds(alpha=0.02, min_points=11), "mode": "ci", "metrics_top": 3,
    "loop_block_s": 0.2, "native": True, "pause_budget": 0.05, "analysis_process": True, "analysis_recycle_every": 7,
    "suppressions": "first-rules.toml", "accept_findings": ["0123456789abcdef"], "accept_source": "baseline run 3 of base.db",
}
"""A value unlike the default for every field of RunOptions (a new field must be added here)."""

DECIDED_BY_THE_RESUME = {"db_path", "resume", "duration_s", "fail_on", "thresholds", "suppressions", "accept_findings",
                         "accept_source"}
"""What the resuming call says: where the run is, which run, how much longer, and how to judge it
(its suppression rules too)."""


def test_every_option_of_a_run_survives_a_resume() -> None:
    assert set(EVERY_OPTION) == {f.name for f in fields(RunOptions)}, "give the new option a value here"
    original = RunOptions(**EVERY_OPTION)
    given = RunOptions(target=None, resume="7", db_path="moved.db", duration_s=5.0, fail_on="never",
                       thresholds=Thresholds(alpha=0.01))
    stored = {"id": 7, "target": original.target, "name": original.name, "planned_duration_s": 100.0,
              "duration_s": 40.0, "options": json.dumps(original.to_stored())}
    resumed = _options_of(stored, given)
    for field in fields(RunOptions):
        source = given if field.name in DECIDED_BY_THE_RESUME else original
        assert getattr(resumed, field.name) == getattr(source, field.name), field.name
    without_duration = _options_of(stored, RunOptions(target=None, resume="7"))
    assert without_duration.duration_s == 60.0  # what was left of the planned 100 s


def test_stored_options_are_strict_json_also_with_an_unlimited_pause_budget() -> None:
    """SQLite's JSON functions (and Datasette's) refuse Infinity, which json.dumps writes for inf."""
    original = RunOptions(**EVERY_OPTION | {"pause_budget": math.inf})
    text = json.dumps(original.to_stored(), allow_nan=False)
    assert RunOptions.from_stored(json.loads(text)).pause_budget == math.inf
    with sqlite3.connect(":memory:") as conn:
        assert conn.execute("SELECT json_extract(?, '$.pause_budget')", [text]).fetchone() == ("inf",)



def test_a_resumed_run_keeps_its_metrics_address_and_memory_limit(db: Path) -> None:
    host = "127.0.0.2"  # not the default 127.0.0.1: a dropped --metrics-host would not answer here
    port = free_port(host)
    killed_run(db, LEAKY, "--duration", "1h", "--interval", "0.2s", "--metrics-port", str(port), "--metrics-host", host,
               "--memory-limit", "3GiB")
    scraped, resumed = resumed_while_scraped(db, f"http://{host}:{port}/metrics", "--duration", "8s", "--format", "json", "-q")
    assert "leaksoak_verdict" in scraped, resumed.stderr
    assert resumed.returncode == 1, resumed.stderr
    report = resumed.json()
    assert report["run"]["status"] == "completed"
    assert report["analysis"]["projection"]["limit_bytes"] == 3 * 1024**3
    assert report["analysis"]["projection"]["limit_source"] == "--memory-limit"
    assert db_rows(db, "SELECT count(DISTINCT segment) FROM snapshots") == [(2,)]


# --- a run leaves the process as it found it, and runs off the main thread ---------------------

def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)


PROCESS_STATE = """
import logging, signal
def state():
    return ({s: signal.getsignal(s) for s in (signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM)},
            logging.getLogger("apscheduler").level)
"""


def test_a_run_leaves_signal_handlers_and_logging_as_it_found_them(tmp_path: Path, db: Path) -> None:
    code = PROCESS_STATE + f"""
import soak.api as soak
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # the user's own choice (Python itself starts with SIG_IGN)
before = state()
result = soak.run(soak.RunOptions({f"{TEST_WORKLOADS}/sleeper.py:step"!r}, duration_s=1, interval_s=0.25, db_path={str(db)!r}))
after = state()
assert result.status == "completed", result
assert before == after, (before, after)
print("restored")
"""
    result = _python(code, tmp_path)
    assert result.returncode == 0 and "restored" in result.stdout, result.stderr


def test_a_run_works_from_another_thread(tmp_path: Path, db: Path) -> None:
    code = PROCESS_STATE + f"""
import threading
import soak.api as soak
before = state()
results = []
def soak_it():
    results.append(soak.run(soak.RunOptions({f"{TEST_WORKLOADS}/sleeper.py:step"!r}, duration_s=1, interval_s=0.25,
                                            db_path={str(db)!r})))
thread = threading.Thread(target=soak_it)
thread.start()
thread.join(60)
assert [r.status for r in results] == ["completed"] and results[0].exit_code == 0, results
assert state() == before
print("ran in a thread")
"""
    result = _python(code, tmp_path)
    assert result.returncode == 0 and "ran in a thread" in result.stdout, result.stderr
    assert db_rows(db, "SELECT status FROM runs") == [("completed",)]


# --- the default interval fits the duration ----------------------------------------------------

@pytest.mark.parametrize("duration_s, interval_s", [(5, 0.25), (60, 1.0), (600, 10.0), (8 * 3600, 30.0)])
def test_the_default_interval_is_a_sixtieth_of_the_duration_within_bounds(duration_s: float, interval_s: float) -> None:
    assert RunOptions("x.py:f", duration_s=duration_s).interval == interval_s
    assert RunOptions("x.py:f", duration_s=duration_s, interval_s=2.0).interval == 2.0


def test_a_one_minute_run_takes_enough_snapshots_for_a_verdict(db: Path) -> None:
    result = run_soak("run", LEAKY, "--db", str(db), "--duration", "1m", "--format", "json", "-q", timeout=180)
    assert result.returncode == 1, result.stderr
    report = result.json()
    assert report["verdict"] == "leak" and report["run"]["snapshots"] >= 30, report["run"]
    assert db_rows(db, "SELECT interval_s FROM runs") == [(1.0,)]


# --- errors come in the order a user would fix them: the target first --------------------------

@pytest.mark.parametrize("extra", [(), ("--interval", "10s"), ("--fail-on", "sometimes"), ("--tracer", "nope"),
                                   ("--frames", "0"), ("--concurrency", "0")])
def test_a_missing_target_file_is_named_before_bad_options(extra: tuple[str, ...], db: Path, tmp_path: Path) -> None:
    result = run_soak("run", "missing.py:f", "--duration", "5s", "--db", str(db), *extra, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "soak: error: target 'missing.py:f': no such file 'missing.py'\n"
    assert not db.exists()


# --- soak.agent.start never raises into the service --------------------------------------------

@pytest.mark.parametrize("call, words", [
    ("a.start({sock!r}, tracer='nope')", "--tracer must be one of sampled, exact, off"),
    ("a.start({sock!r}, sample_interval=0)", "--sample-interval must be at least 1 byte"),
    ("a.start({sock!r}, sample_interval='16KiB')", "TypeError"),  # the wrong type, as a caller might pass it
    ("a.start({sock!r}, frames=-1)", "--frames must be between"),
    ("a.start({blocked!r})", "cannot create the socket directory"),
])
def test_the_agent_steps_aside_with_one_line_on_bad_settings(call: str, words: str, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory\n")
    sock = tmp_path / "agent" / "a.sock"
    code = ("import soak.agent as a\n"
            f"agent = {call.format(sock=str(sock), blocked=str(blocked / 'sub' / 'a.sock'))}\n"
            "assert agent is None, agent\n"
            "print('service still running')\n")
    result = _python(code, tmp_path)
    assert result.returncode == 0 and result.stdout == "service still running\n", result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("leaksoak agent not started: "), result.stderr
    assert words in result.stderr and not sock.exists()
