"""``soak run --resume``: which runs can be continued, and with which options."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any

from soak.errors import BadInput
from soak.model.options import RunOptions
from soak.storage import open_database, queries


def resumable_run(options: RunOptions) -> dict[str, Any]:
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
    return stored


DECIDED_BY_THE_RESUME = ("db_path", "resume", "fail_on", "thresholds", "suppressions", "accept_findings", "accept_source")
"""What a resumed run takes from the call that resumes it (and ``duration_s``: how much longer);
every other option is the run's own, as stored when it started."""


def resumed_options(stored: dict[str, Any], given: RunOptions) -> RunOptions:
    """The resumed run's own options; --duration, if given, is how much longer to run."""
    recorded = RunOptions.from_stored(json.loads(stored["options"] or "{}") | {"target": stored["target"]})
    remaining = (stored["planned_duration_s"] or 0) - (stored["duration_s"] or 0)
    duration = given.duration_s if given.duration_s is not None else remaining
    if duration <= 0:
        raise BadInput(f"run {stored['id']} has no planned time left; pass --duration to run it longer")
    return replace(recorded, name=stored["name"], duration_s=duration,
                   **{name: getattr(given, name) for name in DECIDED_BY_THE_RESUME})
