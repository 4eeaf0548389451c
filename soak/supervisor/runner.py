"""``soak run``: start a worker for the target (or for the run to resume), then supervise it.
The supervisor never runs user code."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from soak.errors import BadInput
from soak.inprocess.targets import parse_target
from soak.model.options import DEFAULT_DURATION_S, RunOptions
from soak.storage import check_before_writing
from soak.supervisor.checks import check, load_rules
from soak.supervisor.results import Progress, RunResult
from soak.supervisor.resume import changed_on_resume, resumable_run, resumed_options
from soak.supervisor.signals import file_size_limit_as_error
from soak.supervisor.wiring import supervise
from soak.supervisor.worker_process import WorkerProcess

if TYPE_CHECKING:
    from soak.judging.suppressions import Rule


def run(
    options: RunOptions,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[RunOptions, int], None] | None = None,
    *,
    given: Collection[str] | None = None,
) -> RunResult:
    """Soak ``options.target`` (or resume ``options.resume``) and return how it ended.

    Raises BadInput for bad input; a worker that fails is a result (exit code 3), not an
    exception, once the run has a row. ``on_start`` is called with the effective options and the
    run id once the workload is loaded; ``on_progress`` after each snapshot and each analysis
    refresh while the schedule runs (``Progress.refreshed`` tells which).

    On a resume, ``given`` names the options the caller gave (fields of RunOptions; by default
    those unlike their defaults): each is applied, or refused with BadInput when the run keeps its
    own (soak.supervisor.resume); the others are the run's own.

    It may be called from any thread. The process is left as it was found: signal handlers and
    logging levels are put back when it returns. On the main thread SIGINT and SIGTERM end the
    run early, with its report; Python lets no other thread install handlers, so off the main
    thread signals are the caller's to handle and do not end the run."""
    check(options)
    rules = load_rules(options)  # a malformed rules file stops here: nothing started, nothing written
    with file_size_limit_as_error():
        return _run(options, rules, on_progress, on_start, given)


def _run(
    options: RunOptions,
    rules: Sequence[Rule],
    on_progress: Callable[[Progress], None] | None,
    on_start: Callable[[RunOptions, int], None] | None,
    given: Collection[str] | None,
) -> RunResult:
    resumed = resumable_run(options) if options.resume else None
    if resumed is not None:
        options = resumed_options(resumed, options, given)
        if options.interval > (options.duration_s or 0):
            raise BadInput(f"the run snapshots every {options.interval:g}s; resume it with a longer --duration")
    else:  # the run keeps its interval when resumed, whatever the duration then
        options = replace(options, duration_s=options.duration_s or DEFAULT_DURATION_S, interval_s=options.interval)
    assert options.target is not None
    spec = parse_target(options.target)
    check_before_writing(options.db_path)  # fail fast on a wrong file
    worker = WorkerProcess(spec.text, frames=options.frames, tracer=options.tracer,
                           sample_interval=options.sample_interval, concurrency=options.concurrency,
                           loop_block_s=options.loop_block_s, native=options.native,
                           pause_budget=options.pause_budget)
    try:
        hello = worker.wait_ready()
        if hello["type"] == "bad_target":
            worker.stop(grace_s=5)
            raise BadInput(hello["message"])
    except BaseException:
        worker.kill()
        raise
    changed = changed_on_resume(resumed, options) if resumed is not None else None
    return supervise(options, spec.text, options.name or spec.default_name, worker, hello, rules, resumed=resumed, changed=changed,
                     on_start=None if on_start is None else lambda run_id: on_start(options, run_id), on_progress=on_progress)
