"""``python -m soak.agent [OPTIONS] (-- script.py | -m module) [ARGS...]``: run a program with the
agent started in it, as if the program had been run directly."""

from __future__ import annotations

import os
import runpy
import sys

from soak.inprocess.agent.embedding import start

USAGE = ("usage: python -m soak.agent [--socket PATH] [--frames N] [--tracer sampled|exact|off] [--sample-interval BYTES]"
         " [--pause-budget SHARE] [--native] (-- script.py | -m module) [ARGS...]")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    options: dict[str, str] = {}
    native = False
    while args and args[0] in ("--socket", "--frames", "--tracer", "--sample-interval", "--pause-budget", "--native"):
        if args[0] == "--native":
            native, args = True, args[1:]
            continue
        if len(args) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        options[args[0][2:]] = args[1]
        args = args[2:]
    module = None
    if args and args[0] == "--":
        args = args[1:]
    elif args and args[0] == "-m" and len(args) > 1:
        module, args = args[1], args[2:]
    if module is None and (not args or not os.path.isfile(args[0])):
        print(f"soak.agent: {'no such script ' + repr(args[0]) if args else 'no program given'}; {USAGE}", file=sys.stderr)
        return 2
    from soak.durations import parse_size
    from soak.errors import BadInput
    from soak.inprocess.probes.budget import parse_pause_budget
    from soak.inprocess.probes.tracer import DEFAULT_TRACER, BadTracer, check_tracer

    try:
        frames = int(options.get("frames", "10"))
    except ValueError:
        print(f"soak.agent: --frames must be a number; {USAGE}", file=sys.stderr)
        return 2
    tracer = options.get("tracer", DEFAULT_TRACER)
    try:
        interval = parse_size(options["sample-interval"], option="sample-interval") if "sample-interval" in options else None
        check_tracer(tracer, frames, interval)
        pause_budget = parse_pause_budget(options["pause-budget"]) if "pause-budget" in options else None
    except (BadTracer, BadInput) as exc:
        print(f"soak.agent: {exc}; {USAGE}", file=sys.stderr)
        return 2
    start(options.get("socket"), frames=frames, tracer=tracer, sample_interval=interval, native=native,
               pause_budget=pause_budget)
    if module is not None:
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(args)
        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
        runpy.run_path(args[0], run_name="__main__")
    return 0
