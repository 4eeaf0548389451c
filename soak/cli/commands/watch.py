"""``soak watch``: watch a running process (a sidecar, or beside a service) and report what leaks."""

from __future__ import annotations

import typer

from soak import api
from soak.cli.commands import options as shared
from soak.cli.commands.run import finish
from soak.durations import format_duration, parse_duration, parse_size
from soak.errors import BadInput
from soak.inprocess.probes.tracer import DEFAULT_TRACER, SITE_TRACERS, TRACERS
from soak.supervisor.progress import ProgressDisplay


def watch_command(
    pid: int = typer.Option(None, "--pid", help="The process to watch."),
    match: str = typer.Option(None, "--match", help="Watch the process whose command line matches this regex; follow it across restarts."),
    socket: str = typer.Option(
        None, "--socket", help="The agent's socket (default: from the process's SOAK_AGENT_SOCKET, else the per-user default)."),
    tracer: str = typer.Option("agent", "--tracer", help="agent: heap snapshots from the agent when one listens, with the tracer "
                               "it was started with (python -m soak.agent --tracer); off: process-level only; with --attach, "
                               "sampled (the default) or exact: the attached agent's tracer."),
    attach: bool = typer.Option(
        False, "--attach", help="Start the agent inside the running Python process first (ptrace through the attach extra's "
        "injector; sys.remote_exec on Python 3.14+) and take it out when the watch ends; needs ptrace permission."),
    tree: bool = typer.Option(
        True, "--tree/--no-tree", help="Also watch the process's descendants that run an agent (a pre-fork server's workers, "
        "spawned interpreters; with --attach, every Python descendant), each a run of its own, judged together."),
    duration: str = typer.Option("10m", "--duration", "-d", help="How long to watch: 90s, 10m, 8h, 1h30m."),
    interval: str | None = typer.Option(
        None, "--interval", "-i", help="Time between snapshots (default: a sixtieth of --duration, between 0.25s and 30s)."),
    name: str = typer.Option(None, "--name", help="Label for the run (default: the process name or the pattern)."),
    db: str = shared.DB,
    fail_on: str = shared.FAIL_ON,
    keep_full: str = shared.KEEP_FULL,
    thin_every: int = shared.THIN_EVERY,
    metrics_port: int = shared.METRICS_PORT,
    metrics_host: str = shared.METRICS_HOST,
    metrics_top: int = shared.METRICS_TOP,
    memory_limit: str | None = shared.MEMORY_LIMIT,
    suppressions: str = shared.SUPPRESSIONS,
    fmt: str = shared.FORMAT,
    quiet: bool = shared.QUIET,
) -> None:
    """Watch a running process for --duration and report, as `soak run` does.

    Any process gets RSS/USS/PSS, fds, threads and its cgroup's memory; a Python process that
    runs the agent (python -m soak.agent) also gets heap snapshots. The watched process is never
    signalled. Exit codes as for `soak run`; 3 if the process exits (without --match).
    """
    if fmt not in shared.FORMATS:
        raise BadInput(f"--format must be one of {', '.join(shared.FORMATS)}")
    if tracer not in ("agent", "off", *TRACERS):
        raise BadInput("--tracer must be agent or off (the agent's tracer is chosen where the service starts)")
    if attach and tracer not in ("agent", *SITE_TRACERS):
        raise BadInput(f"--attach starts an agent with the sampled or exact tracer, not {tracer}; drop --tracer {tracer}")
    if not attach and tracer not in ("agent", "off"):
        raise BadInput(f"--tracer {tracer} chooses the tracer of an agent this watch attaches: add --attach, or give "
                       "agent or off (a running agent keeps the tracer it was started with)")
    options = api.WatchOptions(
        pid=pid, match=match, socket_path=socket, agent=tracer != "off", attach=attach, tree=tree,
        attach_tracer=tracer if tracer in SITE_TRACERS else DEFAULT_TRACER,
        duration_s=parse_duration(duration), interval_s=None if interval is None else parse_duration(interval, option="interval"),
        db_path=db, name=name, fail_on=fail_on,
        keep_full_s=parse_duration(keep_full, option="keep-full"), thin_every=thin_every, suppressions=suppressions,
        metrics_port=metrics_port, metrics_host=metrics_host, metrics_top=metrics_top,
        memory_limit_bytes=parse_size(memory_limit) if memory_limit is not None else None,
    )

    if quiet:
        result = api.watch(options)
    else:
        with ProgressDisplay() as display:
            def started(watched: api.WatchOptions, run_id: int, how: str) -> None:
                display.started(f"leaksoak watch, run {run_id}: {watched.target}",
                                f"{how}; run {run_id} for {format_duration(watched.duration_s or 0)}, a snapshot every "
                                f"{format_duration(watched.interval)}; Ctrl-C ends early with a report. Data: {db}")

            result = api.watch(options, on_progress=display, on_start=started)
    finish(result, db, fmt)
