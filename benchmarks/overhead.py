"""Tracer overhead benchmark: how much slower two workload steps run under each allocation tracer.

Two steps, both allocating and keeping nothing:

- ``alloc``: 2,000 small dict + list builds, dropped (allocation-heavy: the worst case for a
  per-allocation tracer);
- ``service``: 20 times, JSON-decode a small request, sum its items, format them with f-strings,
  JSON-encode a response (roughly a request handler's mix of allocation and plain work).

Configurations: ``none`` (untraced), ``sampled@INTERVAL`` (leaksoak's sampled tracer, one per
``--interval``), ``tracemalloc1`` and ``tracemalloc10`` (``tracemalloc.start(1)`` / ``(10)``),
``memray`` (``memray.Tracker(path)``: its default, which does not see pymalloc's small-object
allocations) and ``memray-pyalloc`` (``trace_python_allocators=True``, which does).

Each measurement is one fresh subprocess (``--child CONFIG STEP SECONDS``): it starts the
tracer, warms up for ``--warmup`` seconds under it, then calls the step in a loop for SECONDS,
``--depth`` frames deep (real services are deep, and tracemalloc at 10 frames pays per frame),
and prints its calls/s as JSON. At the default depth of 8, the 10 frames a 10-frame tracer
records are the step's and the nesting helper's, none of this harness's: that matters, because
tracemalloc (3.11) finds each frame's line number by scanning its function's line table, so a
frame deep into a long function (like ``main`` here, at ``--depth 0``) costs it several times more.
What the timed loop includes:

- the sampled tracer: its per-allocation cost *and* one ``collect()`` per second, as the
  worker does at a 1 s snapshot interval (conservative for it);
- tracemalloc and memray: their per-allocation cost only, no snapshots. memray writes its
  records to the capture file as it goes (buffered), which is timed; the lz4 compression of
  the file at ``Tracker`` exit is not.

Machines are noisy, so runs are interleaved: each round runs every configuration once per step,
in a shuffled order, and a configuration's slowdown in a round is the untraced calls/s of that
round divided by its own. The table shows, per step, the median calls/s, the median slowdown
over rounds and its min-max; for memray also the capture file's size per tracked second, as
written while tracking and after the lz4 compression at exit (the file is removed afterwards);
for the sampled tracer the median ``collect()`` time (the summaries and tables:
benchmarks/overhead_report.py).

    python benchmarks/overhead.py [--rounds 7] [--seconds 3] [--steps alloc,service]
        [--configs none,sampled,tracemalloc1,tracemalloc10,memray,memray-pyalloc]
        [--interval 4096,16384,65536,262144] [--depth 8] [--json] [--quick]
    python benchmarks/overhead.py --paired [--interval 16KiB,64KiB] [--rounds 7]

``--quick`` is 2 rounds of 1 s. ``sampled`` in ``--configs`` stands for every ``--interval``
(default: the tracer's ``DEFAULT_SAMPLE_INTERVAL``); a sampled tracer that cannot be imported
or whose C extension does not load is reported as unavailable and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from overhead_report import Series, print_table, summarize

STEPS = ("alloc", "service")
BASE_CONFIGS = ("none", "sampled", "tracemalloc1", "tracemalloc10", "memray", "memray-pyalloc")


# --- the steps -------------------------------------------------------------------------------

def step_alloc() -> None:
    for i in range(2000):
        d = {"id": i, "name": "x", "tags": [i, i + 1]}
        l = [d, i]  # noqa: E741, F841


_REQUEST = json.dumps({
    "request_id": "req-000123", "user": {"id": 4242, "name": "Ada", "roles": ["admin", "ops"]},
    "items": [{"sku": f"SKU-{i:04d}", "qty": i % 3 + 1, "price": 9.5 + i} for i in range(6)],
    "coupon": None,
})


def step_service() -> None:
    for _ in range(20):
        request = json.loads(_REQUEST)
        total = sum(item["qty"] * item["price"] for item in request["items"])
        lines = [f"{item['sku']}: {item['qty']} x {item['price']:.2f}" for item in request["items"]]
        response = {
            "request_id": request["request_id"], "status": "ok",
            "greeting": f"Hello {request['user']['name']} (#{request['user']['id']})",
            "lines": lines, "total": f"{total:.2f}",
        }
        json.dumps(response)


STEP_FUNCTIONS: dict[str, Callable[[], None]] = {"alloc": step_alloc, "service": step_service}


def nested(depth: int, step: Callable[[], None]) -> None:
    """Call ``step`` ``depth`` frames below this one."""
    if depth <= 0:
        step()
    else:
        nested(depth - 1, step)


def paired(args: argparse.Namespace) -> None:
    """``--paired``: the sampled tracer's cost measured in one process, the finest comparison there
    is on a noisy machine. Slices of ``PAIRED_CALLS`` calls alternate: untraced, traced (the tracer
    started for the slice and stopped after it), untraced; a slice's ratio is its traced time over
    the mean of the two untraced around it, and the median over ``--rounds`` x 10 slices is shown.
    Start and stop are inside the traced slice, so their cost counts against the tracer; collect()
    is not (the main mode times it, about 0.1 ms once a second)."""
    from soak.inprocess.probes.sampled import DEFAULT_SAMPLE_INTERVAL, SampledTracer, sampled_unavailable

    reason = sampled_unavailable()
    if reason is not None:
        print(f"sampled: unavailable ({reason})")
        return
    intervals = sorted({parse_bytes(i) for text in args.interval for i in text.split(",") if i}) or [DEFAULT_SAMPLE_INTERVAL]
    steps = [s for s in args.steps.split(",") if s]
    print(f"sampled tracer, paired in one process: {PAIRED_CALLS}-call slices, untraced / traced / untraced, "
          f"{args.rounds * 10} pairs per cell, step called {args.depth} frames deep; median (25th-75th percentile)")

    def timed(step: Callable[[], None]) -> float:
        started = time.perf_counter()
        for _ in range(PAIRED_CALLS):
            nested(args.depth, step)
        return time.perf_counter() - started

    for step_name in steps:
        step = STEP_FUNCTIONS[step_name]
        timed(step)
        for interval in intervals:
            ratios = []
            for _ in range(args.rounds * 10):
                before = timed(step)
                tracer = SampledTracer(frames=10, interval=interval)
                started = time.perf_counter()
                tracer.start()
                for _ in range(PAIRED_CALLS):
                    nested(args.depth, step)
                tracer.stop()
                traced = time.perf_counter() - started
                ratios.append(traced / ((before + timed(step)) / 2))
            ratios.sort()
            print(f"  {step_name:8} {sampled_config(interval):15} {statistics.median(ratios):.3f}x "
                  f"({ratios[len(ratios) // 4]:.3f}-{ratios[3 * len(ratios) // 4]:.3f})", flush=True)


PAIRED_CALLS = 60


# --- sizes and config names ------------------------------------------------------------------

def parse_bytes(text: str) -> int:
    text = text.strip()
    for suffix, factor in (("KiB", 1024), ("MiB", 1024 ** 2), ("K", 1024), ("M", 1024 ** 2), ("B", 1)):
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * factor
    return int(text)


def format_bytes(n: int) -> str:
    for suffix, factor in (("MiB", 1024 ** 2), ("KiB", 1024)):
        if n % factor == 0:
            return f"{n // factor}{suffix}"
    return f"{n}B"


def sampled_config(interval: int) -> str:
    return f"sampled@{format_bytes(interval)}"


# --- the child: one config, one step, one timed loop -----------------------------------------

def timed_loop(step: Callable[[], None], depth: int, warmup: float, seconds: float,
               every_second: Callable[[], None] | None = None) -> tuple[int, float]:
    """Warm up, then call ``step`` for ``seconds``; (calls, elapsed). ``every_second`` runs inside the timed loop."""
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        nested(depth, step)
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    next_tick = started + 0.5  # mid-second ticks: one per timed second, even in a 1 s run
    while True:
        nested(depth, step)
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            break
        if every_second is not None and now >= next_tick:
            every_second()
            next_tick += 1.0
    return calls, now - started


def child(config: str, step_name: str, seconds: float, depth: int, warmup: float) -> dict[str, Any]:
    step = STEP_FUNCTIONS[step_name]
    out: dict[str, Any] = {"config": config, "step": step_name}
    if config == "none":
        calls, elapsed = timed_loop(step, depth, warmup, seconds)
    elif config in ("tracemalloc1", "tracemalloc10"):
        import tracemalloc

        tracemalloc.start(1 if config == "tracemalloc1" else 10)
        calls, elapsed = timed_loop(step, depth, warmup, seconds)
        tracemalloc.stop()
    elif config in ("memray", "memray-pyalloc"):
        import memray

        with tempfile.TemporaryDirectory(prefix="leaksoak-overhead-") as tmp:
            path = os.path.join(tmp, "capture.bin")
            tracked = time.perf_counter()
            with memray.Tracker(path, trace_python_allocators=config == "memray-pyalloc"):
                calls, elapsed = timed_loop(step, depth, warmup, seconds)
                written = os.path.getsize(path)  # as written while tracking (less what is still buffered)
                tracked = time.perf_counter() - tracked
            compressed = os.path.getsize(path)  # after memray's lz4 compression at exit
        out["capture_written_bytes"] = written
        out["capture_written_bytes_per_s"] = written / tracked
        out["capture_bytes"] = compressed
        out["capture_bytes_per_s"] = compressed / tracked
    elif config.startswith("sampled@"):
        from soak.inprocess.probes.sampled import SampledTracer

        tracer = SampledTracer(frames=10, interval=parse_bytes(config.split("@", 1)[1]))
        collect_ms: list[float] = []

        def collect() -> None:
            started = time.perf_counter()
            tracer.collect()
            collect_ms.append((time.perf_counter() - started) * 1000)

        tracer.start()
        calls, elapsed = timed_loop(step, depth, warmup, seconds, every_second=collect)
        tracer.stop()
        out["collects"] = len(collect_ms)
        out["collect_ms"] = statistics.median(collect_ms) if collect_ms else None
    else:
        raise SystemExit(f"unknown config {config!r}")
    out.update(calls=calls, seconds=elapsed, calls_per_s=calls / elapsed)
    return out


# --- the parent: interleaved rounds -----------------------------------------------------------

def sampled_status() -> tuple[str | None, int | None]:
    """(reason it is unavailable or None, its default interval or None)."""
    try:
        from soak.inprocess.probes.sampled import DEFAULT_SAMPLE_INTERVAL, sampled_unavailable
    except ImportError as e:
        return f"cannot import soak.inprocess.probes.sampled: {e}", None
    return sampled_unavailable(), int(DEFAULT_SAMPLE_INTERVAL)


def run_child(config: str, step: str, seconds: float, depth: int, warmup: float) -> dict[str, Any]:
    # no tracemalloc started from the environment, and pymalloc as memray's default expects
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONTRACEMALLOC", "PYTHONMALLOC")}
    command = [sys.executable, os.path.abspath(__file__), "--child", config, step, str(seconds),
               "--depth", str(depth), "--warmup", str(warmup)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds + warmup + 120)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        raise RuntimeError(lines[-1])
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def expand_configs(names: list[str], intervals: list[int], default_interval: int | None) -> list[str]:
    configs: list[str] = ["none"]
    for name in names:
        if name == "sampled":
            for interval in intervals or ([default_interval] if default_interval else []):
                configs.append(sampled_config(interval))
        elif name.startswith("sampled@"):
            configs.append(sampled_config(parse_bytes(name.split("@", 1)[1])))
        elif name in BASE_CONFIGS:
            configs.append(name)
        else:
            raise SystemExit(f"unknown config {name!r} (known: {', '.join(BASE_CONFIGS)}, sampled@BYTES)")
    return list(dict.fromkeys(configs))


def split_list(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per child run")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds under the tracer before timing")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--configs", action="append", default=[],
                        help=f"comma-separated, repeatable (default: {','.join(BASE_CONFIGS)}); none is always run")
    parser.add_argument("--interval", action="append", default=[],
                        help="sampling interval(s) in bytes (4096, 16KiB), comma-separated or repeated")
    parser.add_argument("--depth", type=int, default=8, help="frames between the loop and the step (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled order within rounds")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--paired", action="store_true",
                        help="the sampled tracer only, in one process: short untraced and traced slices alternate")
    parser.add_argument("--child", nargs=3, metavar=("CONFIG", "STEP", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.paired:
        paired(args)
        return
    if args.child:
        config, step, seconds = args.child
        print(json.dumps(child(config, step, float(seconds), args.depth, args.warmup)))
        return

    if args.quick:
        args.rounds, args.seconds = 2, 1.0
    steps = split_list([args.steps])
    for step in steps:
        if step not in STEP_FUNCTIONS:
            raise SystemExit(f"unknown step {step!r} (known: {', '.join(STEPS)})")
    intervals = [parse_bytes(v) for v in split_list(args.interval)]
    unavailable: dict[str, str] = {}
    names = split_list(args.configs) or list(BASE_CONFIGS)
    default_interval = None
    if any(n == "sampled" or n.startswith("sampled@") for n in names):
        reason, default_interval = sampled_status()
        if reason is not None:
            unavailable["sampled"] = reason
            names = [n for n in names if not (n == "sampled" or n.startswith("sampled@"))]
    configs = expand_configs(names, intervals, default_interval)
    if "memray" in configs or "memray-pyalloc" in configs:
        try:
            import memray  # noqa: F401
        except ImportError as e:
            for name in ("memray", "memray-pyalloc"):
                if name in configs:
                    unavailable[name] = f"cannot import memray: {e}"
            configs = [c for c in configs if not c.startswith("memray")]

    series = {(step, config): Series(config, step) for step in steps for config in configs}
    rng = random.Random(args.seed)
    load_before = os.getloadavg()
    started = time.monotonic()
    for round_no in range(1, args.rounds + 1):
        for step in steps:
            order = [c for c in configs if series[step, c].failed is None]
            rng.shuffle(order)
            for config in order:
                s = series[step, config]
                try:
                    run = run_child(config, step, args.seconds, args.depth, args.warmup)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                    s.failed = str(e) or type(e).__name__
                    print(f"round {round_no}/{args.rounds} {step:8} {config:18} failed: {s.failed}", file=sys.stderr)
                    continue
                s.calls_per_s[round_no] = run["calls_per_s"]
                s.runs.append(run)
                print(f"round {round_no}/{args.rounds} {step:8} {config:18} {run['calls_per_s']:10,.0f} calls/s",
                      file=sys.stderr, flush=True)
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()

    results = {step: [summarize(series[step, c], series[step, "none"]) for c in configs] for step in steps}
    header = {
        "python": sys.version.split()[0], "rounds": args.rounds, "seconds": args.seconds, "warmup": args.warmup,
        "depth": args.depth, "cpus": os.cpu_count(), "load_before": load_before[0], "load_after": load_after[0],
        "elapsed_s": elapsed,
    }
    try:
        import memray

        header["memray"] = memray.__version__  # type: ignore[attr-defined]  # memray's __init__.pyi omits it
    except ImportError:
        pass
    if args.json:
        print(json.dumps({"setup": header, "unavailable": unavailable, "results": results}, indent=2))
        return
    print(f"tracer overhead: {args.rounds} interleaved rounds x {args.seconds:g} s per run (after {args.warmup:g} s "
          f"warm-up), step called {args.depth} frames deep")
    print(f"Python {header['python']}{', memray ' + header['memray'] if 'memray' in header else ''}; "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f} -> {load_after[0]:.2f}; took {elapsed:.0f} s")
    print("slowdown = untraced calls/s / traced calls/s in the same round; median and min-max over rounds")
    for step in steps:
        print_table(step, results[step], unavailable)


if __name__ == "__main__":
    main()
