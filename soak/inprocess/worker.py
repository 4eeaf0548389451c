"""The worker process: imports the workload, drives it, and hosts the in-process probes.

Started by the supervisor as ``python -c WORKER_MAIN --target T --request-fd R --reply-fd W`` (see
soak.supervisor.worker_process); ``python -m soak.inprocess.worker`` takes the same arguments.
It never writes to the database; everything it knows goes to the supervisor as JSON messages.
Exit codes: 0 stopped on request, 2 bad target, 3 the workload failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from types import ModuleType
from typing import Any

from soak.inprocess.control import Control
from soak.inprocess.probes.budget import MAX_EVERY_S, WORKER_BUDGET
from soak.inprocess.probes.ctypes_allocators import route_ctypes_allocators
from soak.inprocess.probes.frames import DRIVER_FILES
from soak.inprocess.probes.native import NativeProbe, native_probe_or_none
from soak.inprocess.probes.oom import lower_oom_priority
from soak.inprocess.probes.sites import Tracer
from soak.inprocess.probes.tracer import DEFAULT_TRACER, make_tracer
from soak.inprocess.protocol import Channel
from soak.inprocess.targets import BadTarget, LoadedTarget, load_target, parse_target
from soak.workloads.adapters import Driver, WorkloadRaised, make_driver


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m soak.inprocess.worker")
    parser.add_argument("--target", required=True)
    parser.add_argument("--request-fd", type=int, required=True)
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--tracer", default=DEFAULT_TRACER)
    parser.add_argument("--sample-interval", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--loop-block", type=float, default=None)
    parser.add_argument("--native", action="store_true")
    parser.add_argument("--pause-budget", type=float, default=WORKER_BUDGET)
    parser.add_argument("--pause-max-every", type=float, default=MAX_EVERY_S)  # tests and benchmarks
    return parser.parse_args(argv)


def _where(exc: BaseException) -> dict[str, Any] | None:
    """The innermost frame of the exception's traceback outside leaksoak."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename not in DRIVER_FILES and not frame.filename.startswith("<frozen")
    ]
    if not frames:
        return None
    last = frames[-1]
    return {"file": last.filename, "line": last.lineno, "function": last.name}


def _failure(phase: str, exc: BaseException) -> dict[str, Any]:
    return {"phase": phase, "error": f"{type(exc).__name__}: {exc}", "where": _where(exc)}


def _application_root(module: ModuleType) -> str | None:
    """The directory of the target's file, or of its top-level package."""
    top = sys.modules.get(module.__name__.split(".")[0], module)
    path = getattr(top, "__file__", None) or getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path else None


def main(argv: list[str] | None = None) -> int:
    # Short on purpose, like _drive: both frames sit under every call of the workload, and for
    # each traced allocation tracemalloc finds a frame's line by scanning its code's line table
    # up to the current call, so a call deep into a long function makes every allocation of a
    # shallow workload dearer (issue 10: worker.main's old driver.run() cost more than the step).
    started = _start(_parse_args(sys.argv[1:] if argv is None else argv))
    return started if isinstance(started, int) else _drive(*started)


def _start(args: argparse.Namespace) -> int | tuple[Channel, LoadedTarget, Tracer | None, Driver, Control]:
    """Load the target, run its setup, start tracing and the control thread, say hello.

    Returns what ``_drive`` needs, or the exit code if the worker cannot go on.
    """
    # Ctrl-C belongs to the supervisor, which ends the run and then stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # When memory runs out, the workload is what dies, not the supervisor that keeps its evidence.
    lower_oom_priority()
    channel = Channel(os.fdopen(args.request_fd, "rb"), os.fdopen(args.reply_fd, "wb"))
    if args.native:
        route_ctypes_allocators()  # before the target looks libc's malloc up (at import, often)
    try:
        target = load_target(parse_target(args.target))
    except BadTarget as exc:
        channel.send("bad_target", message=str(exc))
        return 2
    except BaseException as exc:  # the user's module raised while importing
        channel.send("failed", **_failure("import", exc))
        return 3
    if target.setup is not None:
        try:
            target.setup()
        except BaseException as exc:
            channel.send("failed", **_failure("setup", exc))
            return 3

    tracer = make_tracer(args.tracer, args.frames, args.sample_interval)
    driver = make_driver(target.function, is_async=target.is_async, concurrency=args.concurrency)
    native = native_probe_or_none(args.native, args.frames)
    control = Control(channel, driver, tracer, args.loop_block, [native] if native is not None else [],
                      args.pause_budget, args.pause_max_every)
    if tracer is not None:
        tracer.start()
    channel.send(
        "hello",
        pid=os.getpid(),
        is_async=target.is_async,
        tracer=tracer.name if tracer is not None else "off",
        sample_interval=getattr(tracer, "interval", None),
        python=sys.version.split()[0],
        application_root=_application_root(target.module),
        native=native is not None,
    )
    control.start()
    return channel, target, tracer, driver, control


def _drive(channel: Channel, target: LoadedTarget, tracer: Tracer | None, driver: Driver, control: Control) -> int:
    """Run the workload until stopped, then its teardown; the worker's exit code."""
    try:
        driver.run()  # first, so that this frame's line is cheap to find (see main)
    except WorkloadRaised as exc:
        cause = exc.__cause__ or exc
        channel.send("failed", iterations=driver.iterations, **_failure("call", cause))
        return 3
    if tracer is not None:
        tracer.stop()
    for probe in control.probes.probes:
        if isinstance(probe, NativeProbe):
            probe.stop()
    if target.teardown is not None:
        try:
            target.teardown()
        except BaseException as exc:
            if not control.supervisor_gone:
                channel.send("failed", **_failure("teardown", exc))
            return 3
    if not control.supervisor_gone:
        channel.send("stopped", iterations=driver.iterations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
