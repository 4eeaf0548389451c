"""``python -m soak.agent [OPTIONS] -- PROGRAM [ARGS...]``: run a service with an agent in each of
its Python processes, as if it had been run directly.

PROGRAM is a Python script (run in this process), ``-m module``, or any program on PATH, console
scripts such as ``gunicorn`` and ``uvicorn`` included (exec'd in this process's place, so it keeps
this pid). Every Python process under it starts its own agent: forked ones re-arm after the fork
(soak.inprocess.agent.embedding), spawned and exec'd ones at start-up through the environment
(soak.inprocess.agent.bootstrap). Processes that are not Python are left alone.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys

from soak.inprocess.agent.embedding import AgentOptions, descendants_environment, start
from soak.inprocess.agent.server import SOCKET_ENV

USAGE = ("usage: python -m soak.agent [--socket PATH] [--frames N] [--tracer sampled|exact|off] [--sample-interval BYTES]"
         " [--pause-budget SHARE] [--native] (-- script.py | -- program | -m module) [ARGS...]")


def _fail(message: str) -> int:
    print(f"soak.agent: {message}; {USAGE}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    given: dict[str, str] = {}
    native = False
    while args and args[0] in ("--socket", "--frames", "--tracer", "--sample-interval", "--pause-budget", "--native"):
        if args[0] == "--native":
            native, args = True, args[1:]
            continue
        if len(args) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        given[args[0][2:]] = args[1]
        args = args[2:]
    module = None
    if args and args[0] == "--":
        args = args[1:]
    elif args and args[0] == "-m" and len(args) > 1:
        module, args = args[1], args[2:]
    script = module is None and bool(args) and os.path.isfile(args[0]) and (args[0].endswith(".py") or not os.access(args[0], os.X_OK))
    # a console script of this interpreter's environment is found even when that is not on PATH
    program = None if module is not None or script or not args else (
        shutil.which(args[0]) or shutil.which(args[0], path=os.path.dirname(sys.executable)))
    if module is None and not script and program is None:
        return _fail(f"no such script or program {args[0]!r}" if args else "no program given")
    from soak.durations import parse_size
    from soak.errors import BadInput
    from soak.inprocess.probes.budget import parse_pause_budget
    from soak.inprocess.probes.tracer import DEFAULT_TRACER, BadTracer, check_tracer

    try:
        frames = int(given.get("frames", "10"))
    except ValueError:
        return _fail("--frames must be a number")
    tracer = given.get("tracer", DEFAULT_TRACER)
    try:
        interval = parse_size(given["sample-interval"], option="sample-interval") if "sample-interval" in given else None
        check_tracer(tracer, frames, interval)
        pause_budget = parse_pause_budget(given["pause-budget"]) if "pause-budget" in given else None
    except (BadTracer, BadInput) as exc:
        return _fail(str(exc))
    socket = given.get("socket")
    options = AgentOptions(frames, tracer, interval, native, pause_budget,
                           socket_dir=os.path.dirname(os.path.abspath(socket)) if socket else None)
    if program is not None:
        env = descendants_environment(options)
        if socket:
            env[SOCKET_ENV] = os.path.abspath(socket)  # the program's own process listens here; its children beside it
        try:
            os.execve(program, args, env)
        except OSError as exc:
            return _fail(f"cannot run {program}: {exc.strerror}")
    agent = start(socket, frames=frames, tracer=tracer, sample_interval=interval, native=native, pause_budget=pause_budget)
    # this process's descendants listen beside its socket (or in the default folder), each on its own
    os.environ.pop(SOCKET_ENV, None)
    os.environ.update(descendants_environment(
        AgentOptions(frames, tracer, interval, native, pause_budget,
                     socket_dir=os.path.dirname(agent.path) if agent is not None else options.socket_dir)))
    if module is not None:
        sys.argv = [module, *args]
        _program_path(os.getcwd())
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(args)
        _program_path(os.path.dirname(os.path.abspath(args[0])))
        runpy.run_path(os.path.abspath(args[0]), run_name="__main__")  # as python app.py: an absolute __file__
    return 0


def _program_path(directory: str) -> None:
    """``sys.path[0]`` as Python sets it for the program run directly (``python app.py``: the
    script's folder; ``python -m package``: the current directory), in place of the agent's own:
    the current directory under ``python -m soak.agent``, the scripts folder under ``soak-agent``
    (which, unlike ``-m``, finds the installed leaksoak whatever folder named ``soak`` the current
    directory holds). Under ``-P`` (PYTHONSAFEPATH) Python adds none, and neither does this."""
    if not getattr(sys.flags, "safe_path", False):
        sys.path[0] = directory
