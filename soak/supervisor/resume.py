"""``soak run --resume``: which runs can be continued, and with which options.

A resumed run keeps what makes its series one series (its target, its schedule, how its worker
measures); an option given to change one of those is refused with one line. How the run is
judged is the resuming call's; what only the supervisor does with the run (how much longer,
retention, metrics, the memory projection, the analysis' pace and place) changes when it is
given. No option given on the command line is ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from soak.durations import format_duration
from soak.errors import BadInput
from soak.model.options import RunOptions
from soak.storage import open_database, queries

KEPT = {"target": "TARGET", "name": "--name", "mode": "mode", "interval_s": "--interval", "frames": "--frames",
        "concurrency": "--concurrency", "loop_block_s": "--loop-block", "tracer": "--tracer",
        "sample_interval": "--sample-interval", "native": "--native", "pause_budget": "--pause-budget"}
"""What a resumed run keeps from its start, by the option that sets it: the run itself, its schedule,
and how its worker measures (a series measured otherwise is another series). Given with another
value than the run's own, the resume is refused."""
DECIDED_BY_THE_RESUME = ("db_path", "resume", "fail_on", "thresholds", "suppressions", "accept_findings", "accept_source")
"""What a resumed run takes from the call that resumes it, given or not: where the run is, which
run, and how to judge it (its suppression rules too)."""
CHANGED_WHEN_GIVEN = ("duration_s", "keep_full_s", "thin_every", "metrics_port", "metrics_host", "metrics_top",
                      "memory_limit_bytes", "analyze_every_s", "snapshot_timeout_s", "analysis_process",
                      "analysis_recycle_every")
"""What the resuming call changes when it gives it: how much longer to run (else what is left of
the planned duration), retention, metrics, the memory projection, the analysis' pace and place.
Not given, the run's own."""


def resumable_run(options: RunOptions) -> dict[str, Any]:
    """The row of the run ``options.resume`` names; raises BadInput unless it can be continued."""
    assert options.resume is not None
    if not os.path.exists(options.db_path):
        raise BadInput(f"no database at {options.db_path!r} to resume from; pass --db")
    db = open_database(options.db_path, create=False)
    try:
        stored = queries.find_run(db, options.resume)
    finally:
        db.close()
    status, _ = queries.effective_status(stored)
    if status == "running":
        raise BadInput(f"run {stored['id']} is still running (supervisor pid {stored['supervisor_pid']})")
    if status == "completed":
        raise BadInput(f"run {stored['id']} completed; start a new run instead of resuming it")
    if stored["mode"] not in RunOptions.MODES:
        raise BadInput(f"run {stored['id']} watched a process (soak {stored['mode']}); only a run of soak run or soak ci resumes")
    return stored


def resumed_options(stored: dict[str, Any], options: RunOptions, given: Collection[str] | None = None) -> RunOptions:
    """The options of the run ``stored`` (its row) resumed by ``options``: the run's own, as
    stored when it started, with what the resuming call decides and what it changes. ``given``:
    the options the resuming call gave (the CLI knows; by default those unlike their defaults).
    Raises BadInput for an option given with another value than one the run keeps."""
    given = options.given() if given is None else set(given)
    own = replace(RunOptions.from_stored(json.loads(stored["options"] or "{}") | {"target": stored["target"]}),
                  name=stored["name"])
    for name, flag in KEPT.items():
        if name in given and getattr(options, name) != getattr(own, name):
            raise BadInput(f"{flag} cannot change on --resume (run {stored['id']} was started {_with(name, getattr(own, name))});"
                           " drop it or start a new run")
    changed = {name: getattr(options, name) for name in CHANGED_WHEN_GIVEN if name in given}
    if changed.get("duration_s") is None:  # not given: what is left of the planned duration
        changed["duration_s"] = (stored["planned_duration_s"] or 0) - (stored["duration_s"] or 0)
    if changed["duration_s"] <= 0:
        raise BadInput(f"run {stored['id']} has no planned time left; pass --duration to run it longer")
    return replace(own, **changed | {name: getattr(options, name) for name in DECIDED_BY_THE_RESUME})


def changed_on_resume(stored: dict[str, Any], options: RunOptions) -> dict[str, Any]:
    """The options a resumed run goes on with unlike those it was started with (as stored), for
    its ``resume`` event: what a resuming call changed or decided, how long to run apart."""
    started = json.loads(stored["options"] or "{}")
    now = options.to_stored()
    return {name: now[name] for name in (*CHANGED_WHEN_GIVEN, *DECIDED_BY_THE_RESUME)
            if name not in ("duration_s", "db_path", "resume") and name in now and now[name] != started.get(name)}


def _with(name: str, value: object) -> str:
    """How a run was started as to one option: ``with sampled``, ``with 2.00s``, ``without it``."""
    if value is None or value is False:
        return "without it"
    if value is True:
        return "with it"
    if name.endswith("_s") and isinstance(value, (int, float)):
        return f"with {format_duration(value)}"
    return f"with {value:g}" if isinstance(value, float) else f"with {value}"
