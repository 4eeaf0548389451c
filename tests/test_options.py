"""The one options object (soak.model.options): its defaults, its stored form, and its modes."""

from __future__ import annotations

import json
import math
from dataclasses import fields

from soak.inprocess.probes.budget import WORKER_BUDGET
from soak.inprocess.probes.loop_lag import DEFAULT_BLOCK_S
from soak.inprocess.probes.tracer import DEFAULT_TRACER
from soak.model.options import CiOptions, RunOptions, SoakOptions, WatchOptions, WorkerOptions
from soak.model.thresholds import Thresholds


def test_soak_run_measures_as_the_worker_does_by_default() -> None:
    """The model imports nothing of the worker's: its defaults are written twice, and held equal here."""
    options = RunOptions("x.py:f")
    assert (options.tracer, options.pause_budget, options.loop_block_s) == (DEFAULT_TRACER, WORKER_BUDGET, DEFAULT_BLOCK_S)


def test_each_mode_is_stored_as_itself_and_read_back_one_way() -> None:
    watched = WatchOptions(match="gunicorn", duration_s=60.0, metrics_port=9464, thresholds=Thresholds(alpha=0.02))
    stored = json.loads(json.dumps(watched.to_stored(), allow_nan=False))
    assert stored["mode"] == "watch" and stored["match"] == "gunicorn" and "extra" not in stored
    assert WatchOptions.from_stored(stored) == watched
    run = RunOptions("x.py:f", mode="ci", pause_budget=math.inf, accept_findings=["0123456789abcdef"])
    assert RunOptions.from_stored(json.loads(json.dumps(run.to_stored(), allow_nan=False))) == run
    assert RunOptions.from_stored(RunOptions("x.py:f").to_stored() | {"a_later_option": 1}) == RunOptions("x.py:f")


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def test_run_watch_and_ci_share_one_core() -> None:
    assert _names(SoakOptions) <= _names(RunOptions) & _names(WatchOptions)
    assert _names(WorkerOptions) <= _names(RunOptions) & _names(CiOptions)
    assert (RunOptions("x.py:f").mode, WatchOptions(pid=1).mode, CiOptions(["x.py:f"]).mode) == ("run", "watch", "ci")
    assert WatchOptions(pid=12).target == "pid:12" and WatchOptions(match="app").target == "match:app"


def test_the_options_given_are_those_unlike_their_defaults() -> None:
    assert RunOptions(None, resume="3", metrics_port=9464).given() == {"resume", "metrics_port"}
    assert RunOptions("x.py:f", thresholds=Thresholds(judge_types=True)).given() == {"target", "thresholds"}
