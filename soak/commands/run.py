"""``soak run TARGET``: soak a workload in a worker process and report what leaks."""

from __future__ import annotations

import sys

from typing import TYPE_CHECKING

import typer

from soak import api
from soak.commands.options import DB, FORMAT, FORMATS
from soak.durations import format_duration, parse_duration
from soak.errors import BadInput
from soak.reports.text import human_bytes

if TYPE_CHECKING:
    from soak.supervisor import Progress, RunOptions


def _print_progress(progress: "Progress") -> None:
    analysis = progress.analysis
    leaks = sum(f.verdict == "leak" for f in analysis.findings)
    print(
        f"[{format_duration(progress.elapsed_s)} / {format_duration(progress.duration_s)}] "
        f"{progress.snapshots} snapshots, RSS {human_bytes(progress.rss)}, traced {human_bytes(progress.traced_bytes)}, "
        f"verdict so far: {analysis.verdict}" + (f" ({leaks} leaking site(s))" if leaks else ""),
        file=sys.stderr,
        flush=True,
    )


def _print_start(options: "RunOptions", run_id: int) -> None:
    what = f"resuming run {run_id} ({options.target})" if options.resume else f"soaking {options.target} as run {run_id}"
    print(f"{what} for {format_duration(options.duration_s or 0)}, a snapshot every {format_duration(options.interval_s)}; "
          f"Ctrl-C ends early with a report. Data: {options.db_path}", file=sys.stderr, flush=True)


def run_command(
    target: str = typer.Argument(None, help="path/to/file.py:func or package.module:func (def or async def)."),
    duration: str = typer.Option(None, "--duration", "-d", help="How long to soak: 90s, 10m, 8h, 1h30m (default 10m; when resuming, what is left)."),
    interval: str = typer.Option("30s", "--interval", "-i", help="Time between heap snapshots."),
    name: str = typer.Option(None, "--name", help="Label for the run (default: file:func)."),
    db: str = DB,
    frames: int = typer.Option(10, "--frames", help="Traceback depth of each allocation site."),
    concurrency: int = typer.Option(1, "--concurrency", help="Concurrent callers of an async def target."),
    tracer: str = typer.Option("exact", "--tracer", help="Allocation tracer: exact (tracemalloc) or off."),
    fail_on: str = typer.Option("suspect", "--fail-on", help="Exit 1 on: leak, suspect (leak or suspect), never."),
    resume: str = typer.Option(None, "--resume", help="Continue a killed or interrupted run (id or name) in a new segment."),
    keep_full: str = typer.Option("6h", "--keep-full", help="Keep every snapshot of the most recent window this long..."),
    thin_every: int = typer.Option(10, "--thin-every", help="...and every k-th one before it (1 keeps all)."),
    fmt: str = FORMAT,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines on stderr."),
) -> None:
    """Soak TARGET for --duration, snapshotting every --interval, then print the report.

    Exit codes: 0 clean, 1 leak or suspect found, 2 bad input, 3 the workload failed or was lost.
    """
    if fmt not in FORMATS:
        raise BadInput(f"--format must be one of {', '.join(FORMATS)}")
    options = api.RunOptions(
        target=target,
        duration_s=parse_duration(duration) if duration is not None else None,
        interval_s=parse_duration(interval, option="interval"),
        db_path=db,
        name=name,
        frames=frames,
        concurrency=concurrency,
        tracer=tracer,
        fail_on=fail_on,
        resume=resume,
        keep_full_s=parse_duration(keep_full, option="keep-full"),
        thin_every=thin_every,
    )
    result = api.run(options, on_progress=None if quiet else _print_progress, on_start=None if quiet else _print_start)
    sys.stdout.write(api.report(db, str(result.run_id), fmt=fmt))
    if result.status == "failed":
        print(f"soak: run {result.run_id} failed: {result.reason}", file=sys.stderr)
    raise typer.Exit(result.exit_code)
