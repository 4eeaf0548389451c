"""Starts one tracer in each pyperf worker process of benchmarks/pyperformance.py.

Python imports ``sitecustomize`` at startup from the first folder on ``sys.path`` that has one;
the harness starts each pyperf worker with this folder on ``PYTHONPATH`` and the
``LEAKSOAK_PYPERF_*`` variables set. Only a worker
(``--worker`` among its arguments, the processes whose timings are kept) is traced, not
pyperf's manager process that spawns them. With ``LEAKSOAK_PYPERF_CLOCK=cpu`` the worker's clock
is its CPU time (see the harness's ``--clock``).

At exit each worker appends one JSON line to ``LEAKSOAK_PYPERF_SENTINEL``: its configuration and
the evidence that the tracer was still running then (samples drawn, traced memory, capture
bytes written), which the harness checks for every benchmark and configuration. Without it the
numbers could be of an untraced process.
"""

from __future__ import annotations

import atexit
import json
import os
import sys

CONFIG = os.environ.get("LEAKSOAK_PYPERF_TRACER")


def _report(evidence: dict[str, object]) -> None:
    line = json.dumps({"config": CONFIG, "pid": os.getpid(), "script": sys.argv[0], **evidence}) + "\n"
    # one write of a short line in append mode: workers of one benchmark never interleave within it
    fd = os.open(os.environ["LEAKSOAK_PYPERF_SENTINEL"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _start() -> None:
    # leaksoak and memray, installed in the harness's own venv, come after the benchmark's packages
    for path in os.environ.get("LEAKSOAK_PYPERF_SITE", "").split(os.pathsep):
        if path and path not in sys.path:
            sys.path.append(path)
    if CONFIG == "none":
        import _tracemalloc

        atexit.register(lambda: _report({"active": not _tracemalloc.is_tracing() and "soak.inprocess.probes._sampler" not in sys.modules}))
    elif CONFIG == "sampled":
        # what `python -m soak.agent` does in a service: the default tracer (sampled, its default
        # interval and frames) started by an idle agent listening on its socket
        import soak.agent

        if not soak.agent.start():
            raise SystemExit("leaksoak's agent did not start")
        from soak.inprocess.probes import _sampler

        def sampled_evidence() -> None:
            stats = _sampler.stats()
            _report({"active": bool(_sampler.is_tracing()) and _sampler._hooks_installed() == (True, True)
                     and stats["samples_total"] > 0, "samples": stats["samples_total"], "interval": stats["interval"]})

        atexit.register(sampled_evidence)
    elif CONFIG in ("tracemalloc1", "tracemalloc10"):
        import _tracemalloc

        nframe = 1 if CONFIG == "tracemalloc1" else 10
        _tracemalloc.start(nframe)  # all that tracemalloc.start() does
        atexit.register(lambda: _report({"active": _tracemalloc.is_tracing() and _tracemalloc.get_traceback_limit() == nframe,
                                         "peak_traced_bytes": _tracemalloc.get_traced_memory()[1]}))
    elif CONFIG in ("memray", "memray-pyalloc"):
        import tempfile

        import memray

        directory = tempfile.mkdtemp(prefix="leaksoak-pyperf-memray-")
        path = os.path.join(directory, "capture.bin")
        tracker = memray.Tracker(path, trace_python_allocators=CONFIG == "memray-pyalloc")
        tracker.__enter__()

        def memray_evidence() -> None:
            written = os.path.getsize(path)  # while tracking: what has left memray's buffer
            tracker.__exit__(None, None, None)
            compressed = os.path.getsize(path)
            os.unlink(path)
            os.rmdir(directory)
            _report({"active": written > 0, "capture_bytes": compressed})

        atexit.register(memray_evidence)
    else:
        raise SystemExit(f"LEAKSOAK_PYPERF_TRACER: unknown configuration {CONFIG!r}")


if CONFIG and "--worker" in sys.argv:
    if os.environ.get("LEAKSOAK_PYPERF_CLOCK") == "cpu":
        # before pyperf is imported (it binds perf_counter at import): the benchmark's timings are
        # then the CPU time of the whole process, every thread of it, the tracer's included
        import time

        time.perf_counter = time.process_time
    already = set(sys.modules)
    _start()
    # bm_pickle's pure-Python benchmarks refuse to run with pickle imported before them (its C
    # accelerator would be in use), and memray and leaksoak's agent (through tracemalloc) import
    # it: forget it again; the tracers keep the references they took
    for name in ("pickle", "_pickle", "_compat_pickle"):
        if name not in already:
            sys.modules.pop(name, None)
