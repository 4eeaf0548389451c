"""Native tracking overhead: how much slower the reference workloads run under ``--native``.

For each reference workload (``workloads/reference``, the synchronous ones) and each
configuration, a fresh subprocess imports the workload, runs its ``setup()``, warms up, then
calls its step in a loop for ``--seconds`` and prints its calls/s. The workloads' simulated I/O
pauses (``time.sleep``) are made no-ops, so that what is timed is their own work (the worst case
for any tracer). Configurations:

- ``none``: untraced;
- ``sampled``: leaksoak's default tracer, one ``collect()`` a second (as the worker does at a 1 s
  snapshot interval);
- ``sampled+native``: the same, plus memray's ``Tracker(native_traces=True)`` read by leaksoak's
  native reader and one native ``collect()`` a second — what ``soak run --native`` adds.

Rounds are interleaved (every configuration once per workload per round, shuffled); a slowdown is
the round's untraced calls/s over the configuration's. The table gives, per workload, the median
calls/s untraced, the median slowdown of each configuration and, for native, the median pause of
one native snapshot (the reader's answer, which the workload waits for) and of the first one,
which waits for the reader to finish reading symbol tables (it is taken in the warm-up, untimed).

    python benchmarks/native.py [--rounds 3] [--seconds 3] [--workloads leaky_dict_cache,clean_churn]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

REFERENCE = Path(__file__).resolve().parent.parent / "workloads" / "reference"
CONFIGS = ("none", "sampled", "sampled+native")


def child(config: str, name: str, seconds: float) -> dict[str, float]:
    import importlib

    time.sleep = lambda _seconds: None  # the workloads' simulated I/O
    module = importlib.import_module(f"soak.workloads.reference.{name}")
    if getattr(module, "setup", None):
        module.setup()
    step = module.step
    tracer = native = None
    if config != "none":
        from soak.inprocess.probes.tracer import make_tracer

        tracer = make_tracer("sampled")
        assert tracer is not None
        tracer.start()
    if config == "sampled+native":
        from soak.inprocess.probes.native import NativeProbe

        native = NativeProbe()
        native.start()
    pauses: list[float] = []
    deadline = time.perf_counter() + 1.0
    while time.perf_counter() < deadline:  # warm-up
        step()
    if native is not None:
        # The reader reads symbol tables and resolves its first stacks (about a second) while the
        # workload starts; the first snapshot waits for that. It is timed apart: not a steady cost.
        before = time.perf_counter()
        native.collect()
        first_pause = time.perf_counter() - before
    calls, started = 0, time.perf_counter()
    next_collect = started + 1.0
    while (now := time.perf_counter()) < started + seconds:
        step()
        calls += 1
        if now >= next_collect:
            if tracer is not None:
                tracer.collect()
            if native is not None:
                before = time.perf_counter()
                native.collect()
                pauses.append(time.perf_counter() - before)
            next_collect = now + 1.0
    elapsed = time.perf_counter() - started
    if native is not None:
        native.stop()
    return {"calls_per_s": calls / elapsed, "native_pause_ms": 1000 * statistics.median(pauses) if pauses else 0.0,
            "first_pause_ms": 1000 * first_pause if native is not None else 0.0}


def synchronous_workloads() -> list[str]:
    import importlib

    names = []
    for path in sorted(REFERENCE.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = importlib.import_module(f"soak.workloads.reference.{path.stem}")
        if not inspect.iscoroutinefunction(getattr(module, "step", None)):
            names.append(path.stem)
    return names


def measure(config: str, name: str, seconds: float) -> dict[str, float]:
    proc = subprocess.run([sys.executable, __file__, "--child", config, name, str(seconds)],
                          capture_output=True, text=True, timeout=seconds * 10 + 120,
                          env={**os.environ, "LEAKSOAK_LEAK_SCALE": os.environ.get("LEAKSOAK_LEAK_SCALE", "1")})
    if proc.returncode != 0:
        raise RuntimeError(f"{config} {name}: {proc.stderr.strip().splitlines()[-1:]}")
    return cast("dict[str, float]", json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=3, metavar=("CONFIG", "WORKLOAD", "SECONDS"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--workloads", default=None, help="comma-separated names (default: every synchronous one)")
    args = parser.parse_args()
    if args.child:
        config, name, seconds = args.child
        print(json.dumps(child(config, name, float(seconds))))
        return 0
    names = args.workloads.split(",") if args.workloads else synchronous_workloads()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    rng = random.Random(11)
    for round_ in range(args.rounds):
        for name in names:
            order = list(CONFIGS)
            rng.shuffle(order)
            for config in order:
                results.setdefault((name, config), []).append(measure(config, name, args.seconds))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    import memray

    memray_version = memray.__version__  # type: ignore[attr-defined]  # memray's __init__.pyi omits it
    print(f"Python {sys.version.split()[0]}, memray {memray_version}; {args.rounds} rounds of {args.seconds:g} s, "
          "I/O pauses removed")
    print("| workload | untraced calls/s | sampled | sampled + --native | native snapshot | first native snapshot |")
    print("|---|---|---|---|---|---|")
    native_slowdowns: list[float] = []
    for name in names:
        base = [r["calls_per_s"] for r in results[(name, "none")]]
        cells = []
        for config in CONFIGS[1:]:
            ratios = [b / r["calls_per_s"] for b, r in zip(base, results[(name, config)], strict=False)]
            cells.append(f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}-{max(ratios):.2f})")
            if config == "sampled+native":
                native_slowdowns.append(statistics.median(ratios))
        pause = statistics.median(r["native_pause_ms"] for r in results[(name, "sampled+native")])
        first = statistics.median(r["first_pause_ms"] for r in results[(name, "sampled+native")])
        print(f"| {name} | {statistics.median(base):,.0f} | {cells[0]} | {cells[1]} | {pause:.0f} ms | {first:.0f} ms |")
    geomean = statistics.geometric_mean(native_slowdowns)
    print(f"\nsampled + --native: geometric mean {geomean:.2f}×, max {max(native_slowdowns):.2f}× over {len(names)} workloads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
