"""Started by Python itself in every process under ``python -m soak.agent``: this folder is put first
on the service's PYTHONPATH, so each Python process of the service, however it was started (a
console script, ``exec``, multiprocessing's spawn), imports this at start-up and starts its own
agent. Then the ``sitecustomize`` this one hides, if there is one, runs as it would have.

It never stops the interpreter from starting: every failure is one line on stderr.
"""

import os
import sys


def _start_agent() -> None:
    if not os.environ.get("SOAK_AGENT_OPTIONS"):
        return
    try:
        from soak.inprocess.agent.embedding import start_from_environment
    except Exception as exc:  # noqa: BLE001 - e.g. an interpreter without leaksoak installed
        print(f"leaksoak agent not started in {sys.executable}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    start_from_environment()


def _run_hidden_sitecustomize() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - as Python does for its own sitecustomize: say so, go on
        print(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}", file=sys.stderr)


_start_agent()
_run_hidden_sitecustomize()
