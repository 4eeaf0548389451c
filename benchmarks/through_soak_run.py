"""The tracer's cost as a user meets it: a step's calls/s under ``soak run`` against a plain loop.

    python benchmarks/through_soak_run.py [--steps service,alloc] [--configs plain,off,sampled]
        [--rounds 5] [--seconds 20] [--warmup 5] [--seed 0] [--json]

The steps are benchmarks/overhead.py's ``service`` and ``alloc``. Configurations, each a fresh
process (or two):

- ``plain``: the step loaded as ``soak run`` loads a target, called in a plain loop;
- ``off``: ``soak run overhead.py:step_X --tracer off``: the worker, its driver, the snapshots'
  pauses (full collection, type census, ...), the supervisor beside it; no allocation tracer;
- ``sampled``: the same with the default tracer (``--tracer sampled``, its default interval), as a
  user runs it.

Both call this module's ``service`` / ``alloc``, which call the step and keep their own count:
after ``--warmup`` seconds they note the calls, the wall clock and the process's CPU time, and
the module's ``teardown()`` (which ``soak run`` calls when the run ends, and the plain loop after
``--seconds``) notes them again and writes the window to a file. So both configurations are timed
by the same code in the measured process, over a window that includes whatever pauses the
workload there: the snapshots (full collection, type census, tracer...), the driver, the tracer.
``soak run`` gets ``--duration`` warm-up + seconds and its default snapshot interval (duration/60,
at least 0.25 s).

Two slowdowns: by wall time (calls/s, what the issue's goal is stated in) and by CPU time of the
process (all its threads): on a machine shared with other work a process's calls/s move by 10%
from one run to the next, its CPU time per call much less. The supervisor's own CPU (a few
percent of a core) is in neither: on 2 cores it runs beside the workload.

Rounds are interleaved: each runs every configuration of a step once, in a shuffled order; a
configuration's slowdown in a round is the plain loop's rate over its own, and the table shows
the median over rounds with its min-max, and the snapshots' pauses as a share of the window (from
their stored ``pause_ms``).

A measurement: it exits 0 whatever it finds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEPS = ("service", "alloc")
CONFIGS = ("plain", "off", "sampled")
WINDOW_ENV = "LEAKSOAK_THROUGH_WINDOW"
"""'WARMUP_SECONDS PATH': when the timed window starts, and where teardown() writes it."""


# --- the target: soak run and the plain loop both call these -------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import step_alloc, step_service  # noqa: E402

_calls = 0
_first: float | None = None
_window_start: tuple[int, float, float] | None = None


def _counted(step: Callable[[], None]) -> None:
    global _calls, _first, _window_start
    step()
    _calls += 1
    if _window_start is None:
        now = time.perf_counter()
        if _first is None:
            _first = now
        elif now - _first >= float(os.environ[WINDOW_ENV].split(" ", 1)[0]):
            _window_start = (_calls, now, time.process_time())


def service() -> None:
    _counted(step_service)


def alloc() -> None:
    _counted(step_alloc)


def teardown() -> None:
    """The timed window, written where WINDOW_ENV says."""
    if _window_start is None:
        return
    calls, wall, cpu = _window_start
    window = {"calls": _calls - calls, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    with open(os.environ[WINDOW_ENV].split(" ", 1)[1], "w", encoding="utf-8") as file:
        json.dump(window, file)


# --- the runs ------------------------------------------------------------------------------------

def plain_child(step: str, seconds: float, warmup: float) -> None:
    """``--child``: the target loaded as the worker loads it, called in a plain loop, then its teardown."""
    from soak.inprocess.targets import load_target, parse_target

    loaded = load_target(parse_target(f"{os.path.abspath(__file__)}:{step}"))
    function = loaded.function
    deadline = time.perf_counter() + warmup + seconds
    while time.perf_counter() < deadline:
        function()
    assert loaded.teardown is not None
    loaded.teardown()


def read_window(path: str) -> dict[str, float]:
    with open(path, encoding="utf-8") as file:
        window: dict[str, float] = json.load(file)
    return {"calls_per_s": window["calls"] / window["wall_s"], "calls_per_cpu_s": window["calls"] / window["cpu_s"]}


def run_plain(step: str, seconds: float, warmup: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="leaksoak-through-") as tmp:
        path = os.path.join(tmp, "window.json")
        command = [sys.executable, os.path.abspath(__file__), "--child", step, str(seconds), str(warmup)]
        subprocess.run(command, capture_output=True, text=True, timeout=seconds + warmup + 120, check=True,
                       env={**os.environ, WINDOW_ENV: f"{warmup} {path}"})
        return {**read_window(path), "pause_share": 0.0}


def run_soak(step: str, tracer: str, seconds: float, warmup: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="leaksoak-through-") as tmp:
        db = os.path.join(tmp, "soak.db")
        path = os.path.join(tmp, "window.json")
        command = [sys.executable, "-m", "soak", "run", f"{os.path.abspath(__file__)}:{step}",
                   "--duration", f"{seconds + warmup:g}s", "--db", db, "--tracer", tracer, "--fail-on", "never", "-q"]
        subprocess.run(command, capture_output=True, text=True, timeout=seconds + warmup + 180, check=True, cwd=tmp,
                       env={**os.environ, WINDOW_ENV: f"{warmup} {path}"})
        with sqlite3.connect(db) as connection:
            rows = connection.execute("SELECT t_s, pause_ms FROM snapshots WHERE t_s >= ? ORDER BY t_s", [warmup]).fetchall()
        measured = read_window(path)
    if len(rows) >= 2:
        measured["pause_share"] = sum(pause or 0.0 for _, pause in rows[1:]) / 1000 / (rows[-1][0] - rows[0][0])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated; plain is always run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per run, after the warm-up")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled order within rounds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--child", nargs=3, metavar=("STEP", "SECONDS", "WARMUP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, seconds, warmup = args.child
        plain_child(step, float(seconds), float(warmup))
        return

    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    configs = ["plain", *[c.strip() for c in args.configs.split(",") if c.strip() not in ("", "plain")]]
    for name, known, given in (("step", STEPS, steps), ("configuration", CONFIGS, configs)):
        for value in given:
            if value not in known:
                raise SystemExit(f"unknown {name} {value!r} (known: {', '.join(known)})")
    rng = random.Random(args.seed)
    runs: dict[tuple[str, str], dict[int, dict[str, float]]] = {(s, c): {} for s in steps for c in configs}
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    for round_no in range(1, args.rounds + 1):
        for step in steps:
            order = list(configs)
            rng.shuffle(order)
            for config in order:
                try:
                    if config == "plain":
                        run = run_plain(step, args.seconds, args.warmup)
                    else:
                        run = run_soak(step, config, args.seconds, args.warmup)
                except (subprocess.SubprocessError, RuntimeError, ValueError) as e:
                    print(f"round {round_no} {step} {config} failed: {e}", file=sys.stderr, flush=True)
                    continue
                runs[step, config][round_no] = run
                print(f"round {round_no}/{args.rounds} {step:8} {config:8} {run['calls_per_s']:10,.0f} calls/s",
                      file=sys.stderr, flush=True)
    elapsed = time.monotonic() - started

    results: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        plain = runs[step, "plain"]
        rows = []
        for config in configs:
            mine = runs[step, config]
            row: dict[str, Any] = {"config": config, "rounds": len(mine), "runs": list(mine.values())}
            for key, name in (("calls_per_s", "wall"), ("calls_per_cpu_s", "cpu")):
                ratios = [plain[r][key] / run[key] for r, run in mine.items() if r in plain]
                row[f"{key}_median"] = statistics.median(run[key] for run in mine.values()) if mine else None
                row[name] = statistics.median(ratios) if ratios else None
                row[f"{name}_min"] = min(ratios) if ratios else None
                row[f"{name}_max"] = max(ratios) if ratios else None
            row["pause_share"] = statistics.median(run.get("pause_share", 0.0) for run in mine.values()) if mine else None
            rows.append(row)
        results[step] = rows
    if args.json:
        print(json.dumps({"rounds": args.rounds, "seconds": args.seconds, "warmup": args.warmup, "elapsed_s": elapsed,
                          "results": results}, indent=2))
        return
    print(f"through soak run: {args.rounds} interleaved rounds, {args.warmup:g} s warm-up + {args.seconds:g} s timed per run; "
          f"{os.cpu_count()} CPUs, load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}; took {elapsed / 60:.1f} min")
    print("slowdown = the plain loop's rate / the configuration's, in the same round; median (min-max) over rounds;\n"
          "by wall time (calls/s) and by the process's CPU time (calls per CPU second)")
    for step in steps:
        print(f"\n{step}\n  {'config':9} {'calls/s':>10} {'wall':>8} {'min-max':>12} {'cpu':>8} {'min-max':>12} {'pauses':>7}")
        for row in results[step]:
            if row["calls_per_s_median"] is None:
                print(f"  {row['config']:9} failed")
                continue
            cells = []
            for name in ("wall", "cpu"):
                if row["config"] == "plain":
                    cells += ["1", ""]
                else:
                    cells += [f"{row[name]:.3f}x", f"{row[name + '_min']:.2f}-{row[name + '_max']:.2f}"]
            pauses = "" if row["config"] == "plain" else f"{row['pause_share']:.2%}"
            print(f"  {row['config']:9} {row['calls_per_s_median']:>10,.0f} {cells[0]:>8} {cells[1]:>12} {cells[2]:>8} "
                  f"{cells[3]:>12} {pauses:>7}")


if __name__ == "__main__":
    main()
