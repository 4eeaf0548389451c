"""``soak run TARGET``: soak a workload in a worker process and report what leaks."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

import typer

from soak import api
from soak.analyzers import Thresholds
from soak.cli.commands.options import (
    DB,
    FAIL_ON,
    FORMAT,
    FORMATS,
    KEEP_FULL,
    MEMORY_LIMIT,
    METRICS_HOST,
    METRICS_PORT,
    METRICS_TOP,
    QUIET,
    SAMPLE_INTERVAL,
    SUPPRESSIONS,
    THIN_EVERY,
    TRACER,
    parse_sample_interval,
    print_warnings,
)
from soak.durations import format_duration, parse_duration, parse_share, parse_size
from soak.errors import BadInput
from soak.inprocess.probes.budget import parse_pause_budget
from soak.model.options import DEFAULT_LOOP_BLOCK_S, DEFAULT_PAUSE_BUDGET
from soak.supervisor.progress import ProgressDisplay

if TYPE_CHECKING:
    from soak.model.options import RunOptions
    from soak.supervisor.results import RunResult


def _start_line(options: RunOptions, run_id: int) -> str:
    what = f"resuming run {run_id} ({options.target})" if options.resume else f"soaking {options.target} as run {run_id}"
    return (f"{what} for {format_duration(options.duration_s or 0)}, a snapshot every {format_duration(options.interval)}; "
            f"Ctrl-C ends early with a report. Data: {options.db_path}")


FIELDS = {"duration": "duration_s", "interval": "interval_s", "db": "db_path", "loop_block": "loop_block_s",
          "keep_full": "keep_full_s", "memory_limit": "memory_limit_bytes",
          "blocked_share": "thresholds", "pool_share": "thresholds", "type_findings": "thresholds"}
"""The field of RunOptions that each option sets where the names differ (the others are the same)."""
PRESENTATION = ("fmt", "quiet")
"""Options of the command only: how it shows the run, whatever run it is."""


def typed_options(ctx: typer.Context) -> set[str]:
    """The fields of RunOptions set by options typed on the command line (not left at their
    default): on --resume each is applied or refused, never ignored (soak.supervisor.resume)."""
    return {FIELDS.get(name, name) for name in ctx.params
            if name not in PRESENTATION and (source := ctx.get_parameter_source(name)) is not None
            and source.name not in ("DEFAULT", "DEFAULT_MAP")}


def run_command(
    ctx: typer.Context,
    target: str = typer.Argument(None, help="path/to/file.py:func or package.module:func (def or async def)."),
    duration: str | None = typer.Option(
        None, "--duration", "-d", help="How long to soak: 90s, 10m, 8h, 1h30m (default 10m; when resuming, what is left)."),
    interval: str | None = typer.Option(None, "--interval", "-i", help="Time between heap snapshots "
                                 "(default: duration/60, between 0.25s and 30s; a resumed run keeps its own)."),
    name: str = typer.Option(None, "--name", help="Label for the run (default: file:func)."),
    db: str = DB,
    frames: int = typer.Option(10, "--frames", help="Traceback depth of each allocation site."),
    concurrency: int = typer.Option(1, "--concurrency", help="Concurrent callers of an async def target."),
    loop_block: str = typer.Option(
        f"{DEFAULT_LOOP_BLOCK_S * 1000:g}ms", "--loop-block",
        help="An async target's event loop is blocked when a heartbeat runs later than this; its stack is read then."),
    blocked_share: str = typer.Option(
        f"{Thresholds().max_blocked_share:.0%}", "--blocked-share",
        help="A call that blocks the event loop this share of the time (after warm-up, in each half) is an async finding."),
    pool_share: str = typer.Option(
        f"{Thresholds().max_pool_share:.0%}", "--pool-share",
        help="A call site whose work waits in a thread pool this share of the callers' time is an async finding."),
    tracer: str = TRACER,
    sample_interval: str = SAMPLE_INTERVAL,
    type_findings: bool = typer.Option(
        False, "--type-findings", help="Also judge the per-type census as type findings, with holder chains (docs/findings/type.md)."),
    pause_budget: str = typer.Option(
        f"{DEFAULT_PAUSE_BUDGET:.0%}", "--pause-budget",
        help="Share of wall time snapshots may pause the workload: the full collection, the type census and the holder "
             "searches run less often on a big heap to keep to it; inf runs them every snapshot."),
    native: bool = typer.Option(
        False, "--native", help="Also track native allocations (C extensions, the C allocator) with memray; its cost: "
        "docs/guide/native-memory.md."),
    analysis_process: bool | None = typer.Option(
        None, "--analysis-process/--analysis-in-supervisor",
        help="Compute the analysis in a child process, recycled every 50 refreshes, so that the supervisor does not "
             "grow with the run (default: for runs planned longer than 15m)."),
    fail_on: str = FAIL_ON,
    resume: str = typer.Option(
        None, "--resume", help="Continue a killed or interrupted run (id or name) in a new segment. It keeps its target, --name, "
                               "--interval and how it measures (--tracer, --frames...): another value is refused; the other options "
                               "given apply from now on."),
    keep_full: str = KEEP_FULL,
    thin_every: int = THIN_EVERY,
    metrics_port: int = METRICS_PORT,
    metrics_host: str = METRICS_HOST,
    metrics_top: int = METRICS_TOP,
    memory_limit: str | None = MEMORY_LIMIT,
    suppressions: str = SUPPRESSIONS,
    fmt: str = FORMAT,
    quiet: bool = QUIET,
) -> None:
    """Soak TARGET for --duration, snapshotting every --interval, then print the report.

    Exit codes: 0 clean, 1 leak or suspect found, 2 bad input, 3 the workload failed or was lost.
    """
    if fmt not in FORMATS:
        raise BadInput(f"--format must be one of {', '.join(FORMATS)}")
    options = api.RunOptions(
        target=target,
        duration_s=parse_duration(duration) if duration is not None else None,
        interval_s=parse_duration(interval, option="interval") if interval is not None else None,
        db_path=db,
        name=name,
        frames=frames,
        concurrency=concurrency,
        loop_block_s=parse_duration(loop_block, option="loop-block"),
        thresholds=replace(Thresholds(), max_blocked_share=parse_share(blocked_share, option="blocked-share"),
                           max_pool_share=parse_share(pool_share, option="pool-share"), judge_types=type_findings),
        tracer=tracer,
        sample_interval=parse_sample_interval(sample_interval),
        native=native,
        pause_budget=parse_pause_budget(pause_budget),
        analysis_process=analysis_process,
        fail_on=fail_on,
        resume=resume,
        keep_full_s=parse_duration(keep_full, option="keep-full"),
        thin_every=thin_every,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        metrics_top=metrics_top,
        memory_limit_bytes=parse_size(memory_limit) if memory_limit is not None else None,
        suppressions=suppressions,
    )
    given = typed_options(ctx)
    if quiet:
        result = api.run(options, given=given)
    else:
        with ProgressDisplay() as display:
            def started(run_options: RunOptions, run_id: int) -> None:
                display.started(f"leaksoak run {run_id}: {os.path.basename(run_options.target or '')}", _start_line(run_options, run_id))

            result = api.run(options, on_progress=display, on_start=started, given=given)
    finish(result, db, fmt)


def finish(result: RunResult, db: str, fmt: str) -> None:
    """Print the run's report, say why if it failed, warn of its suppression rules, and exit with its code."""
    sys.stdout.write(api.report(db, str(result.run_id), fmt=fmt))
    print_warnings(result.warnings)
    if result.status in ("failed", "oom-killed"):
        print(f"soak: run {result.run_id} {'ran out of memory' if result.status == 'oom-killed' else 'failed'}: {result.reason}",
              file=sys.stderr)
    raise typer.Exit(result.exit_code)
