"""What ``soak run`` and ``soak watch`` share once the measured process answers: the run's row
(a new run, or a resumed run's next segment) and its schedule over that process."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from soak.judging import sources
from soak.model.options import SoakOptions
from soak.storage import open_database
from soak.storage.writer import RunWriter
from soak.supervisor.results import Progress, RunResult
from soak.supervisor.schedule import Supervisor
from soak.supervisor.worker_process import Subject

if TYPE_CHECKING:
    from soak.judging.suppressions import Rule


def supervise(
    options: SoakOptions,
    target: str,
    name: str,
    subject: Subject,
    hello: dict[str, Any],
    rules: Sequence[Rule],
    *,
    resumed: dict[str, Any] | None = None,
    changed: dict[str, Any] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Store the run (a new row, or the next segment of the ``resumed`` run's row, which goes on
    with the options ``changed`` since it started) and run its schedule over ``subject`` until it
    ends. ``on_start`` is called with the run id once the run is stored. ``subject`` is stopped
    when storing the run fails."""
    try:
        # One connection, used by the scheduler's single job thread and, after it stops, the main thread.
        db = open_database(options.db_path)
        if resumed is None:
            started = time.time()
            writer = RunWriter.create_run(
                db, name=name, target=target, mode=options.mode, planned_duration_s=options.duration_s,
                interval_s=options.interval, options=options.to_stored(), function_name=sources.function_name,
                started_ts=started,
            )
        else:
            started = resumed["started_ts"]
            writer = RunWriter.resume(db, resumed["id"], sources.function_name, os.getpid())
        supervisor = Supervisor(options, target, subject, hello, db, writer, started, rules, changed or {})
    except BaseException:
        subject.kill()
        raise
    if on_start is not None:
        on_start(writer.run_id)
    return supervisor.run(on_progress)
