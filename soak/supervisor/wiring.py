"""What ``soak run`` and ``soak watch`` share once the measured process answers: the run's row
(a new run, or a resumed run's next segment) and its schedule over that process."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from soak.judging import sources
from soak.model.options import SoakOptions
from soak.storage import open_database
from soak.storage.writer import RunWriter
from soak.supervisor.results import Progress, RunResult
from soak.supervisor.schedule import Supervisor
from soak.supervisor.worker_process import Descendants, Subject

if TYPE_CHECKING:
    from soak.judging.suppressions import Rule


@dataclass(frozen=True)
class Member:
    """A process of a watched tree (soak.supervisor.tree): its run names the run of the tree's root."""

    parent_run_id: int
    pid: int


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
    tree: Descendants | None = None,
    member: Member | None = None,
    on_supervisor: Callable[[Supervisor], None] | None = None,
) -> RunResult:
    """Store the run (a new row, or the next segment of the ``resumed`` run's row, which goes on
    with the options ``changed`` since it started) and run its schedule over ``subject`` until it
    ends. ``on_start`` is called with the run id once the run is stored. ``subject`` is stopped
    when storing the run fails.

    ``tree``: the subject's descendants are followed, each a run of its own, and judged with it;
    ``member``: the subject is one of those descendants (its run names its tree's root run, and
    ends when the process exits); ``on_supervisor`` is given the run's Supervisor (to end it)."""
    try:
        # One connection, used by the scheduler's single job thread and, after it stops, the main thread.
        db = open_database(options.db_path)
        if resumed is None:
            started = time.time()
            writer = RunWriter.create_run(
                db, name=name, target=target, mode=options.mode, planned_duration_s=options.duration_s,
                interval_s=options.interval, options=options.to_stored(), function_name=sources.function_name,
                started_ts=started, parent_run_id=member.parent_run_id if member else None,
                pid=member.pid if member else None,
            )
        else:
            started = resumed["started_ts"]
            writer = RunWriter.resume(db, resumed["id"], sources.function_name, os.getpid())
        supervisor = Supervisor(options, target, subject, hello, db, writer, started, rules, changed or {},
                                tree=tree, ends_with_process=member is not None)
    except BaseException:
        subject.kill()
        raise
    if on_supervisor is not None:
        on_supervisor(supervisor)
    if on_start is not None:
        on_start(writer.run_id)
    return supervisor.run(on_progress)
