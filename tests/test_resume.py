"""``soak run --resume``: every option given is applied or refused with one line, never ignored."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import typer
from conftest import TEST_WORKLOADS, db_rows, free_port, killed_run, resumed_while_scraped
from fuzzing import assert_one_line_exit_2, soak_in_process

from soak.cli import app
from soak.errors import BadInput
from soak.judging import sources
from soak.model.options import RunOptions
from soak.model.thresholds import Thresholds
from soak.storage import open_database
from soak.storage.writer import RunWriter
from soak.supervisor import runner
from soak.supervisor.results import RunResult
from soak.supervisor.resume import CHANGED_WHEN_GIVEN, DECIDED_BY_THE_RESUME, KEPT, resumed_options

SLEEPER = f"{TEST_WORKLOADS}/sleeper.py:step"
LEAKY = "soak.workloads.reference.leaky_dict_cache:step"
STARTED = RunOptions(SLEEPER, duration_s=60.0, interval_s=0.5, name="sleepy")
"""How the run to resume was started: every other option at its default."""


def _interrupted_run(db: Path, options: RunOptions = STARTED) -> None:
    """A run stored as ``soak run`` stores it, interrupted 10 s into its planned minute."""
    assert options.target is not None and options.name is not None and options.duration_s is not None
    database = open_database(str(db))
    writer = RunWriter.create_run(database, name=options.name, target=options.target, mode=options.mode,
                                  planned_duration_s=options.duration_s, interval_s=options.interval,
                                  options=options.to_stored(), function_name=sources.function_name, started_ts=time.time() - 10)
    writer.finish("interrupted", "SIGINT received", 10.0)
    database.close()


def _asking(name: str, value: Any) -> RunOptions:
    """``soak run --resume 3`` with one option."""
    return RunOptions(**{"target": None, "resume": "3"} | {name: value})


def _row(options: RunOptions = STARTED) -> dict[str, Any]:
    return {"id": 3, "target": options.target, "name": options.name, "planned_duration_s": options.duration_s,
            "duration_s": 10.0, "options": json.dumps(options.to_stored())}


# --- the rules, option by option ---------------------------------------------------------------

def test_each_option_is_kept_decided_or_changed_by_a_resume_and_only_one() -> None:
    kinds = [set(KEPT), set(DECIDED_BY_THE_RESUME), set(CHANGED_WHEN_GIVEN)]
    assert sum(len(kind) for kind in kinds) == len(set().union(*kinds)) == len(fields(RunOptions))
    assert set().union(*kinds) == {f.name for f in fields(RunOptions)}


ANOTHER: dict[str, Any] = {
    "target": "other.py:step", "name": "renamed", "mode": "ci", "interval_s": 2.0, "frames": 7, "concurrency": 2,
    "loop_block_s": 0.2, "tracer": "exact", "sample_interval": 4096, "native": True, "pause_budget": 0.1,
    "duration_s": 5.0, "keep_full_s": 3600.0, "thin_every": 3, "metrics_port": 9464, "metrics_host": "127.0.0.2",
    "metrics_top": 3, "memory_limit_bytes": 2**30, "analyze_every_s": 4.0, "snapshot_timeout_s": 90.0,
    "analysis_process": True, "analysis_recycle_every": 7,
}
"""A value unlike the run's own for each option a resume keeps or changes when given."""


@pytest.mark.parametrize("name", sorted(KEPT))
def test_an_option_the_run_keeps_is_refused_with_another_value_and_accepted_with_its_own(name: str) -> None:
    with pytest.raises(BadInput) as refused:
        resumed_options(_row(), _asking(name, ANOTHER[name]), given={name})
    assert str(refused.value).startswith(f"{KEPT[name]} cannot change on --resume (run 3 was started with")
    assert str(refused.value).endswith("; drop it or start a new run")
    own = getattr(STARTED, name)
    resumed = resumed_options(_row(), _asking(name, own), given={name})
    assert getattr(resumed, name) == own


@pytest.mark.parametrize("name", sorted(CHANGED_WHEN_GIVEN))
def test_an_option_a_resume_may_change_applies_when_given_and_only_then(name: str) -> None:
    asked = _asking(name, ANOTHER[name])
    assert getattr(resumed_options(_row(), asked, given={name}), name) == ANOTHER[name]
    own = 50.0 if name == "duration_s" else getattr(STARTED, name)  # not given, a run goes on for what is left of its plan
    assert getattr(resumed_options(_row(), asked, given=set()), name) == own


def test_the_refusal_says_how_the_run_was_started() -> None:
    def refusal(name: str, value: Any, started: RunOptions = STARTED) -> str:
        with pytest.raises(BadInput) as refused:
            resumed_options(_row(started), _asking(name, value), given={name})
        return str(refused.value)

    assert refusal("tracer", "exact") == "--tracer cannot change on --resume (run 3 was started with sampled); drop it or start a new run"
    assert "(run 3 was started with 0.5s)" in refusal("interval_s", 2.0)
    assert "(run 3 was started without it)" in refusal("native", True)
    assert "(run 3 was started with it)" in refusal("native", False, RunOptions(SLEEPER, name="n", duration_s=60.0, native=True))
    assert "(run 3 was started with 10)" in refusal("frames", 7)
    assert "(run 3 was started with sleepy)" in refusal("name", "renamed")


def test_a_run_of_soak_watch_is_not_resumed_by_soak_run(db: Path) -> None:
    _interrupted_run(db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET mode = 'watch'")
    assert_one_line_exit_2(refused := soak_in_process("run", "--resume", "1", "--db", str(db)), "watch run")
    assert "watched a process (soak watch)" in refused.stderr


# --- through the command line: every option of `soak run` -------------------------------------

REFUSED = "refused"


def _thresholds(check: Callable[[Thresholds], bool]) -> Callable[[RunOptions, str], bool]:
    return lambda options, out: check(options.thresholds)


COMMAND_LINE: dict[str, tuple[list[str], Callable[[RunOptions, str], bool] | str]] = {
    "target": ([SLEEPER], REFUSED),
    "duration": (["--duration", "5s"], lambda o, out: o.duration_s == 5.0),
    "interval": (["--interval", "2s"], REFUSED),
    "name": (["--name", "renamed"], REFUSED),
    "db": ([], lambda o, out: o.db_path.endswith("soak.db")),
    "frames": (["--frames", "7"], REFUSED),
    "concurrency": (["--concurrency", "2"], REFUSED),
    "loop_block": (["--loop-block", "200ms"], REFUSED),
    "blocked_share": (["--blocked-share", "10%"], _thresholds(lambda t: t.max_blocked_share == 0.1)),
    "pool_share": (["--pool-share", "50%"], _thresholds(lambda t: t.max_pool_share == 0.5)),
    "tracer": (["--tracer", "exact"], REFUSED),
    "sample_interval": (["--sample-interval", "4KiB"], REFUSED),
    "type_findings": (["--type-findings"], _thresholds(lambda t: t.judge_types)),
    "pause_budget": (["--pause-budget", "inf"], REFUSED),
    "native": (["--native"], REFUSED),
    "analysis_process": (["--analysis-process"], lambda o, out: o.analysis_process is True),
    "fail_on": (["--fail-on", "never"], lambda o, out: o.fail_on == "never"),
    "resume": ([], lambda o, out: o.resume == "1"),
    "keep_full": (["--keep-full", "1h"], lambda o, out: o.keep_full_s == 3600.0),
    "thin_every": (["--thin-every", "3"], lambda o, out: o.thin_every == 3),
    "metrics_port": (["--metrics-port", "9464"], lambda o, out: o.metrics_port == 9464),
    "metrics_host": (["--metrics-host", "127.0.0.2"], lambda o, out: o.metrics_host == "127.0.0.2"),
    "metrics_top": (["--metrics-top", "3"], lambda o, out: o.metrics_top == 3),
    "memory_limit": (["--memory-limit", "1GiB"], lambda o, out: o.memory_limit_bytes == 2**30),
    "suppressions": (["--suppressions", "RULES"], lambda o, out: (o.suppressions or "").endswith("rules.toml")),
    "fmt": (["--format", "json"], lambda o, out: json.loads(out)["run"]["id"] == 1),
    "quiet": ([], lambda o, out: True),  # every call here is quiet (-q): the progress display is not under test
}
"""Each option of ``soak run``: a value unlike the run's own, and what the resume does with it."""


def test_every_option_of_soak_run_is_covered() -> None:
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    assert set(COMMAND_LINE) == {param.name for param in command.params}


class _Worker:
    """Stands for the worker a resume starts: answers at once, and is never asked for a snapshot."""

    def __init__(self, target: str, **settings: Any) -> None:
        self.settings = settings

    def wait_ready(self) -> dict[str, Any]:
        return {"type": "hello"}

    def stop(self, grace_s: float = 10.0) -> None:
        pass

    def kill(self) -> None:
        pass


@pytest.mark.parametrize("option", sorted(COMMAND_LINE))
def test_each_option_of_soak_run_on_resume(option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused: one line, exit 2, nothing written. Applied: the resumed run goes on with it (the
    schedule is not run here: the effective options are what it would run with)."""
    db = tmp_path / "soak.db"
    _interrupted_run(db)
    (tmp_path / "rules.toml").write_text("")
    args, expected = COMMAND_LINE[option]
    args = [str(tmp_path / "rules.toml") if arg == "RULES" else arg for arg in args]
    supervised: list[RunOptions] = []

    def supervise(options: RunOptions, *_: Any, **__: Any) -> RunResult:
        supervised.append(options)
        return RunResult(1, str(db), "completed", None, "clean", 0)

    monkeypatch.setattr(runner, "WorkerProcess", _Worker)
    monkeypatch.setattr(runner, "supervise", supervise)
    before = db_rows(db, "SELECT status, (SELECT count(*) FROM events) FROM runs")
    result = soak_in_process("run", *(args if option == "target" else []), "--resume", "1", "--db", str(db), "-q",
                             *([] if option == "target" else args))
    if expected == REFUSED:
        assert_one_line_exit_2(result, option)
        flag = "TARGET or --resume" if option == "target" else f"--{option.replace('_', '-')}"
        assert flag in result.stderr, result.stderr
        assert supervised == [] and db_rows(db, "SELECT status, (SELECT count(*) FROM events) FROM runs") == before
        return
    assert result.code == 0, result.stderr
    [effective] = supervised
    assert callable(expected) and expected(effective, result.stdout), (option, effective)
    # whatever was given, the run keeps its own target, name, schedule and measurement
    assert (effective.target, effective.name, effective.interval_s, effective.tracer) == (SLEEPER, "sleepy", 0.5, "sampled")


# --- for real: the metrics port given to a resume ----------------------------------------------

def test_a_resumed_run_serves_metrics_on_the_port_given_to_the_resume(db: Path) -> None:
    killed_run(db, LEAKY, "--duration", "1h", "--interval", "0.2s")
    port = free_port()
    scraped, resumed = resumed_while_scraped(db, f"http://127.0.0.1:{port}/metrics", "--metrics-port", str(port),
                                             "--duration", "6s", "--format", "json", "-q")
    assert "leaksoak_verdict" in scraped, resumed.stderr
    assert resumed.returncode in (0, 1), resumed.stderr
    assert resumed.json()["run"]["status"] == "completed"
    [(message, data)] = db_rows(db, "SELECT message, data FROM events WHERE kind = 'resume'")
    assert message.endswith(", with metrics_port changed") and json.loads(data)["changed"] == {"metrics_port": port}
    assert json.loads(db_rows(db, "SELECT options FROM runs")[0][0])["metrics_port"] is None  # as the run was started
