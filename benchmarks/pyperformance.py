"""pyperformance under each allocation tracer: leaksoak's sampled tracer beside tracemalloc and memray.

    python benchmarks/pyperformance.py [--benchmarks json_loads,...] [--configs none,sampled,...]
        [--processes 3] [--slow-processes 1] [--values 3] [--warmups 1] [--clock cpu|wall]
        [--cache DIR] [--json FILE] [--seed 0]

The public yardstick of tracer overhead is pyperformance (CPython's benchmark suite): published
figures for tracemalloc, memray and sampling profilers are geomeans over its benchmarks. This
runs a fixed subset of it (``BENCHMARKS``: 20 scripts, allocation-heavy ones first; the scripts of
deepcopy, logging and pickle run several pyperformance benchmarks each) under each configuration:

- ``none``: untraced;
- ``sampled``: leaksoak's sampled tracer as a soak runs it beside a service: ``soak.agent.start()``
  (what ``python -m soak.agent`` does), its default tracer, interval and frames, the agent idle on
  its socket;
- ``tracemalloc1`` / ``tracemalloc10``: ``tracemalloc.start(1)`` / ``(10)``;
- ``memray``: ``memray.Tracker(path)``, its default (which does not see pymalloc's small objects);
- ``memray-pyalloc``: ``memray.Tracker(path, trace_python_allocators=True)``, which does.

How a tracer gets into the benchmark: the harness starts each of pyperf's worker processes itself
(see below) with ``benchmarks/pyperformance_hook/`` on ``PYTHONPATH``; Python imports its
``sitecustomize`` at startup, which starts the configured tracer in the worker before the
benchmark's code is imported, and at exit appends to a sentinel file the evidence that the tracer
was still running (samples drawn, traced memory, capture bytes). Every worker is checked: exactly
one sentinel line, and active, or that benchmark's configuration counts as failed.

Interleaving: machines are noisy (here, 2 cores shared with other people's work, where a single
process's timing moves by 2x from one second to the next), so the harness drives pyperf's worker
processes itself, one at a time, instead of letting pyperf's manager run one configuration's
processes in a row. Per benchmark script, one worker per configuration calibrates the loops
(``--worker --calibrate-loops``: under a 20x slower tracer a value still takes ~0.1 s); then,
``--processes`` times over, each pyperformance benchmark of the script runs one worker per
configuration back to back in a shuffled order (``--worker --worker-task N --loops L``). A
configuration's ratio for a benchmark is its mean time per iteration over the untraced mean of
the same pass, a few seconds apart; the median over the passes is shown. Per configuration the
table gives the geometric mean, the 90th percentile and the maximum of the per-benchmark ratios.

The clock (``--clock``): by default the benchmarks' timer (``time.perf_counter``, which pyperf and
the benchmarks read) is replaced in the workers by the process's CPU time (``time.process_time``:
user and system time of every thread, the tracer's own included). On a machine shared with other
work, wall time also counts the time a worker waits for a core, which is noise of the size of
what is measured; CPU time does not. ``--clock wall`` keeps pyperf's own clock.

pyperf options: pyperf's defaults are 20 processes x 3 values (``--rigorous``: 40 processes,
``--fast``: 10 x 2). Here 3 processes x (1 warm-up + 3 values) per benchmark and configuration,
plus the calibration process: 9 values from 3 processes (3 hash seeds, 3 address layouts); and
for the slow configurations (tracemalloc at 1 and 10 frames, memray with Python allocators:
3x to 60x, their startup as slow as their loop) 1 process (``--slow-processes``): their ratios do
not need a precision of a few percent, and they would otherwise take most of the time. That fits
6 configurations x 28 benchmarks in about 40 minutes on 2 cores. Raise ``--processes`` on a
quieter or bigger machine.

What it installs: a venv of its own under ``--cache`` (default ``~/.cache/leaksoak-pyperformance``)
with pyperformance, pyperf and memray from PyPI, and this repository's leaksoak (``pip install
--no-deps``, rebuilt each run, so that the tracer measured is the working tree's); and, through
pyperformance, one venv with the selected benchmarks' requirements. Both are kept between runs.

A measurement: it exits 0 whatever the ratios are, and 1 if a configuration could not be shown
to be active.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOOK = Path(__file__).resolve().parent / "pyperformance_hook"

PYPERFORMANCE = "pyperformance==1.14.0"
PYPERF = "pyperf==2.11.0"
MEMRAY = "memray==1.20.0"

BENCHMARKS = (
    # allocation-heavy: containers, strings and objects made and dropped in the inner loop
    "json_loads", "json_dumps", "deepcopy", "pickle_pure_python", "unpickle_pure_python",
    "regex_compile", "chameleon", "sqlalchemy_declarative", "logging", "deltablue", "raytrace",
    "go", "hexiom", "richards", "chaos", "float", "nqueens", "pyflate",
    # arithmetic and control flow on few objects
    "nbody", "unpack_sequence",
)
CONFIGS = ("none", "sampled", "tracemalloc1", "tracemalloc10", "memray", "memray-pyalloc")
SLOW_CONFIGS = ("tracemalloc1", "tracemalloc10", "memray-pyalloc")
"""3x to 60x slower, at startup too: ``--slow-processes`` workers each (their ratios need no 1% precision)."""


# --- the venvs ---------------------------------------------------------------------------------

def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)


def harness_venv(cache: Path) -> Path:
    """The harness's venv: pyperformance, pyperf, memray and this repository's leaksoak."""
    venv = cache / f"venv-{sys.implementation.cache_tag}"
    python = venv / "bin" / "python"
    marker = venv / "pins.txt"
    pins = " ".join((PYPERFORMANCE, PYPERF, MEMRAY))
    if not python.exists():
        run([sys.executable, "-m", "venv", str(venv)])
    if not marker.exists() or marker.read_text() != pins:
        print(f"installing {pins} into {venv}", file=sys.stderr, flush=True)
        run([str(python), "-m", "pip", "install", "-q", PYPERFORMANCE, PYPERF, MEMRAY], stdout=subprocess.DEVNULL)
        marker.write_text(pins)
    print(f"installing leaksoak from {REPO} (--no-deps)", file=sys.stderr, flush=True)
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(REPO)],
        stdout=subprocess.DEVNULL)
    return venv


def site_packages(venv: Path) -> str:
    python = venv / "bin" / "python"
    return run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               capture_output=True).stdout.strip()


@dataclass
class Script:
    """One pyperformance benchmark script (it may run several pyperformance benchmarks)."""

    name: str
    runscript: str
    extra_opts: list[str]


def scripts(venv: Path, names: list[str]) -> list[Script]:
    """The run scripts and options pyperformance's manifest gives the selected benchmarks."""
    code = ("import json, sys\n"
            "from pyperformance import _manifest, cli\n"
            "selected = cli._select_benchmarks(sys.argv[1], _manifest.load_manifest(None))\n"
            "print(json.dumps([[b.name, b.runscript, list(b.extra_opts)] for b in selected]))\n")
    out = run([str(venv / "bin" / "python"), "-c", code, ",".join(names)], capture_output=True).stdout
    found = {name: Script(name, runscript, opts) for name, runscript, opts in json.loads(out)}
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"not in pyperformance's manifest: {', '.join(missing)}")
    return [found[n] for n in names]


def benchmark_venv(cache: Path, venv: Path, names: list[str]) -> Path:
    """pyperformance's venv with the requirements of ``BENCHMARKS`` and the selected benchmarks (made once)."""
    bvenv = cache / f"benchmarks-{sys.implementation.cache_tag}"
    marker = bvenv / "leaksoak-benchmarks.txt"
    wanted = ",".join(sorted({*BENCHMARKS, *names}))
    if not marker.exists() or marker.read_text() != wanted:
        print(f"creating {bvenv} with the benchmarks' requirements", file=sys.stderr, flush=True)
        action = "recreate" if bvenv.exists() else "create"
        run([str(venv / "bin" / "pyperformance"), "venv", action, "--venv", str(bvenv), "-b", wanted],
            stdout=subprocess.DEVNULL)
        marker.write_text(wanted)
    return bvenv


# --- pyperf workers, one process each ----------------------------------------------------------

@dataclass
class Worker:
    """What one pyperf worker process measured: per pyperformance benchmark, the loops it ran
    (calibrated) or the mean seconds per iteration of its values; and its sentinel lines."""

    loops: dict[str, int]
    means: dict[str, float]
    evidence: list[dict[str, Any]]


def worker(script: Script, config: str, bvenv: Path, site: str, options: list[str], timeout: float, clock: str) -> Worker:
    """One pyperf worker process of ``script`` under ``config`` (``--worker`` and ``options``)."""
    with tempfile.TemporaryDirectory(prefix="leaksoak-pyperf-") as tmp:
        output = os.path.join(tmp, "result.json")
        sentinel = os.path.join(tmp, "sentinel.jsonl")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONTRACEMALLOC", "PYTHONMALLOC", "PYTHONPATH")}
        env.update(PYTHONPATH=str(HOOK), LEAKSOAK_PYPERF_TRACER=config, LEAKSOAK_PYPERF_SENTINEL=sentinel,
                   LEAKSOAK_PYPERF_SITE=site, LEAKSOAK_PYPERF_CLOCK=clock, PYTHONHASHSEED=str(random.randrange(2 ** 32)))
        command = [str(bvenv / "bin" / "python"), "-u", script.runscript, *script.extra_opts, "--worker", *options,
                   "--output", output]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit code {done.returncode}"]
            raise RuntimeError(lines[-1])
        with open(output, encoding="utf-8") as file:
            suite = json.load(file)
        evidence = []
        if os.path.exists(sentinel):
            with open(sentinel, encoding="utf-8") as file:
                evidence = [json.loads(line) for line in file if line.strip()]
    loops: dict[str, int] = {}
    means: dict[str, float] = {}
    for bench in suite["benchmarks"]:
        metadata = {**suite.get("metadata", {}), **bench.get("metadata", {})}
        name = metadata["name"]
        if "loops" in metadata:
            loops[name] = int(metadata["loops"])
        values = [v for r in bench["runs"] for v in r.get("values", ())]
        if values:
            means[name] = statistics.fmean(values)
    return Worker(loops, means, evidence)


def check_active(measured: Worker, config: str) -> str | None:
    """None if the worker process reported the configuration active at its exit, else why not."""
    mine = [e for e in measured.evidence if e.get("config") == config]
    if len(mine) != 1:
        return f"{len(mine)} sentinel lines from one worker process"
    if not mine[0].get("active"):
        return f"not traced as configured: {mine[0]}"
    return None


# --- the table ------------------------------------------------------------------------------------

@dataclass
class Cell:
    ratios: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(ratios: list[float]) -> dict[str, float]:
    return {"geomean": math.exp(statistics.fmean(math.log(r) for r in ratios)),
            "p90": percentile(ratios, 0.9), "max": max(ratios)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmarks", default=",".join(BENCHMARKS), help="comma-separated pyperformance benchmarks")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated; none is always run")
    parser.add_argument("--processes", type=int, default=3,
                        help="pyperf worker processes per benchmark and configuration (plus one to calibrate loops)")
    parser.add_argument("--slow-processes", type=int, default=1,
                        help=f"the same for {', '.join(SLOW_CONFIGS)}")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="what a benchmark's timer reads in the workers: the process's CPU time, or wall time")
    parser.add_argument("--values", type=int, default=3, help="pyperf values per worker process")
    parser.add_argument("--warmups", type=int, default=1, help="pyperf warm-up values per worker process")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "leaksoak-pyperformance", help="where the venvs are kept")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one run may take")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled orders")
    parser.add_argument("--json", type=Path, help="also write every measurement to this file")
    args = parser.parse_args()

    names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
    configs = ["none", *[c.strip() for c in args.configs.split(",") if c.strip() and c.strip() != "none"]]
    for config in configs:
        if config not in CONFIGS:
            raise SystemExit(f"unknown configuration {config!r} (known: {', '.join(CONFIGS)})")
    started = time.monotonic()
    args.cache.mkdir(parents=True, exist_ok=True)
    venv = harness_venv(args.cache)
    site = site_packages(venv)
    selected = scripts(venv, names)
    bvenv = benchmark_venv(args.cache, venv, names)
    setup_s = time.monotonic() - started

    rng = random.Random(args.seed)
    cells: dict[tuple[str, str], Cell] = {}
    order: list[str] = []  # pyperformance benchmark names, as met
    failed: dict[tuple[str, str], str] = {}
    load_before = os.getloadavg()[0]

    def run_worker(script: Script, config: str, options: list[str]) -> Worker | None:
        try:
            measured = worker(script, config, bvenv, site, options, args.timeout, args.clock)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
            failed[script.name, config] = str(e) or type(e).__name__
        else:
            problem = check_active(measured, config)
            if problem is None:
                return measured
            failed[script.name, config] = f"tracer not shown active: {problem}"
        print(f"{script.name:24} {config:15} failed: {failed[script.name, config]}", file=sys.stderr, flush=True)
        return None

    for script in selected:
        t0 = time.monotonic()
        loops: dict[str, dict[str, int]] = {}
        calibration = list(configs)
        rng.shuffle(calibration)
        for config in calibration:
            calibrated = run_worker(script, config, ["--calibrate-loops"])
            if calibrated is not None:
                loops[config] = calibrated.loops
        if "none" not in loops:
            continue
        benches = list(loops["none"])  # in the order the script runs them: --worker-task numbers
        order.extend(b for b in benches if b not in order)
        for process in range(max(args.processes, args.slow_processes)):
            for task, bench in enumerate(benches):
                means: dict[str, float] = {}
                todo = [c for c in configs if c in loops and (script.name, c) not in failed
                        and process < (args.slow_processes if c in SLOW_CONFIGS else args.processes)]
                rng.shuffle(todo)
                for config in todo:
                    measured = run_worker(script, config, [f"--worker-task={task}", f"--loops={loops[config][bench]}",
                                                           f"--values={args.values}", f"--warmups={args.warmups}"])
                    if measured is not None and bench in measured.means:
                        means[config] = measured.means[bench]
                        cells.setdefault((bench, config), Cell()).seconds.append(means[config])
                if "none" in means:
                    for config, mean in means.items():
                        cells[bench, config].ratios.append(mean / means["none"])
                elif any(c != "none" for c in means):  # a slow configuration's pass beyond --processes
                    base = cells.get((bench, "none"))
                    for config, mean in means.items():
                        if base and base.seconds:
                            cells[bench, config].ratios.append(mean / statistics.median(base.seconds))
        print(f"{script.name:24} {time.monotonic() - t0:6.1f} s  " + ", ".join(
            f"{b} " + " ".join(f"{c}={statistics.median(cells[b, c].ratios):.2f}" for c in configs[1:]
                              if (b, c) in cells and cells[b, c].ratios) for b in benches), file=sys.stderr, flush=True)
    elapsed = time.monotonic() - started

    ratio = {key: statistics.median(cell.ratios) for key, cell in cells.items() if cell.ratios}
    per_config = {c: [ratio[b, c] for b in order if (b, c) in ratio] for c in configs}
    complete = [b for b in order if all((b, c) in ratio for c in configs)]
    print(f"pyperformance ({PYPERFORMANCE}, {PYPERF}) under each tracer: {len(selected)} scripts, "
          f"{len(order)} benchmarks; per benchmark and configuration {args.processes} pyperf worker processes "
          f"({args.slow_processes} for {', '.join(SLOW_CONFIGS)}) of {args.warmups} warm-up + {args.values} values, "
          f"interleaved; clock: {'CPU time of the process' if args.clock == 'cpu' else 'wall time'}")
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load_before:.2f} -> "
          f"{os.getloadavg()[0]:.2f}; took {elapsed / 60:.1f} min ({setup_s:.0f} s of it installing)")
    print("ratio = mean time per iteration under the tracer / untraced, of the workers run back to back; "
          "median over the worker processes")
    width = max((len(b) for b in order), default=10) + 2
    print("\n" + f"{'benchmark':{width}}{'untraced':>11}" + "".join(f"{c:>15}" for c in configs[1:]))
    for bench in order:
        base = cells.get((bench, "none"))
        untraced = f"{statistics.median(base.seconds) * 1e3:.2f} ms" if base and base.seconds else "-"
        row = [f"{ratio[bench, c]:.3f}x" if (bench, c) in ratio else "-" for c in configs[1:]]
        print(f"{bench:{width}}{untraced:>11}" + "".join(f"{r:>15}" for r in row))
    stats = {c: summary(per_config[c]) for c in configs[1:] if per_config[c]}
    for key in ("geomean", "p90", "max"):
        print(f"{key:{width}}{'':>11}" + "".join(f"{stats[c][key]:>14.3f}x" if c in stats else f"{'-':>15}"
                                                for c in configs[1:]))
    if len(complete) != len(order):
        print(f"({len(order) - len(complete)} benchmarks lack a configuration: each column's summary is over its own rows)")
    for (script_name, config), reason in failed.items():
        print(f"failed: {script_name} under {config}: {reason}")
    if args.json:
        args.json.write_text(json.dumps({
            "processes": args.processes, "slow_processes": args.slow_processes, "clock": args.clock,
            "values": args.values, "warmups": args.warmups, "elapsed_s": elapsed,
            "python": sys.version.split()[0],
            "cells": {f"{b}|{c}": {"ratios": cell.ratios, "seconds": cell.seconds} for (b, c), cell in cells.items()},
            "summary": stats, "failed": {f"{s}|{c}": r for (s, c), r in failed.items()},
        }, indent=2))
    return 1 if any(r.startswith("tracer not shown active") for r in failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
