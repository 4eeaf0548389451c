"""Estimate accuracy: the sampled tracer's live bytes per site against tracemalloc's exact figure,
both watching the same allocations in the same process.

For each reference workload, a fresh child process imports it, starts tracemalloc (10 frames) and
then the sampled tracer on top of it (its hooks chain to tracemalloc's, so both see every call),
runs ``step()`` for ``--seconds``, and takes both views at once: tracemalloc's traces and the
sampler's estimates, each grouped by the same rule into sites (the same frames, cut the same
way). Every site with at least ``--min-bytes`` live (exactly) is compared: the relative error of
its estimate. ``--seeds`` repeats each workload with other random streams.

    python benchmarks/estimates.py [--seconds 10] [--interval 16KiB] [--seeds 2] [--min-bytes 1MB] [--scale 4] [--only NAME ...]

Prints, per workload, the sites compared, the largest error, the share within ±20% and the share
within three standard errors of what sampling alone gives (sqrt(R/B) relative for B bytes at mean
interval R); then the totals. A measurement: it exits 0 whatever the errors, non-zero only if a child fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Any

from soak.durations import parse_size
from soak.inprocess.probes.frames import Frame, FrameFilter
from soak.inprocess.probes.sampled import DEFAULT_SAMPLE_INTERVAL, SampledTracer
from soak.inprocess.targets import load_target, parse_target
from soak.workloads import reference
from soak.workloads.adapters import make_driver


def child(name: str, seconds: float, interval: int, seed: int) -> dict[str, Any]:
    """Drive the workload as the worker does, then take both tracers' views at one call boundary."""
    target = load_target(parse_target(f"soak.workloads.reference.{name}:step"))
    if target.setup is not None:
        target.setup()
    tracemalloc.start(10)
    from soak.inprocess.probes import _sampler

    tracer = SampledTracer(frames=10, interval=interval)
    tracer.start()
    _sampler._seed(seed)
    driver = make_driver(target.function, is_async=target.is_async)
    views: dict[str, Any] = {}

    def take_both() -> None:
        views["estimated"] = tracer.collect()
        views["raw"] = tracemalloc._get_traces()  # type: ignore[attr-defined]

    def finish() -> None:
        time.sleep(seconds)
        driver.at_boundary(take_both, 2.0)
        driver.stop()

    threading.Thread(target=finish, daemon=True).start()
    driver.run()
    tracer.stop()
    tracemalloc.stop()
    rule = FrameFilter()
    exact: dict[tuple[Frame, ...], int] = {}
    for _domain, size, traceback, _total in views["raw"]:
        frames = rule.workload_frames(traceback)
        if frames:
            exact[frames] = exact.get(frames, 0) + size
    estimates = {site.frames: site.size for site in views["estimated"].sites}
    return {"calls": driver.iterations,
            "sites": [(repr(frames), size, estimates.get(frames, 0)) for frames, size in exact.items()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", default=str(DEFAULT_SAMPLE_INTERVAL))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--min-bytes", default="1MB")
    parser.add_argument("--scale", type=float, default=4.0,
                        help="LEAKSOAK_LEAK_SCALE (4: every call leaks, so sites grow past 1 MB in seconds under tracemalloc)")
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--child", nargs=4, metavar=("NAME", "SECONDS", "INTERVAL", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, seconds, interval, seed = args.child
        print(json.dumps(child(name, float(seconds), int(interval), int(seed))))
        return 0
    interval = parse_size(args.interval, option="interval")
    min_bytes = parse_size(args.min_bytes, option="min-bytes")
    names = [n for n in reference.names() if not args.only or n in args.only]
    print(f"estimate accuracy: sampled tracer at {interval} B against tracemalloc in the same process, "
          f"{args.seconds:g} s per workload, {args.seeds} seed(s), sites of at least {min_bytes:,} B live")
    compared = within = within_3se = 0
    errors: list[float] = []
    failed = 0
    for name in names:
        rows = []
        for seed in range(1, args.seeds + 1):
            proc = subprocess.run([sys.executable, __file__, "--child", name, str(args.seconds), str(interval), str(seed)],
                                  capture_output=True, text=True, env={**os.environ, "LEAKSOAK_LEAK_SCALE": repr(args.scale)})
            if proc.returncode != 0:
                last = proc.stderr.strip().splitlines()[-1:] or ["?"]
                print(f"  {name:28} seed {seed}: failed: {last[0]}")
                failed += 1
                continue
            data = json.loads(proc.stdout)
            rows += [(exact, estimate) for _key, exact, estimate in data["sites"] if exact >= min_bytes]
        if not rows:
            print(f"  {name:28} no site of {min_bytes:,} B or more")
            continue
        errs = [(estimate - exact) / exact for exact, estimate in rows]
        ok = sum(abs(e) <= 0.2 for e in errs)
        # Sampling alone: the estimate of B bytes in blocks far smaller than the interval R has a
        # standard error of sqrt(R * B) (larger blocks: less), so |error| <= 3 * sqrt(R / B).
        ok_3se = sum(abs(e) <= 3 * (interval / exact) ** 0.5 for e, (exact, _) in zip(errs, rows, strict=True))
        compared += len(errs)
        within += ok
        within_3se += ok_3se
        errors += errs
        print(f"  {name:28} {len(errs):3} site(s), largest {max(e for _, e in rows) / 1e6:7.1f} MB; "
              f"error median {statistics.median(errs):+.1%}, worst {max(errs, key=abs):+.1%}; {ok}/{len(errs)} within ±20%, "
              f"{ok_3se}/{len(errs)} within 3 standard errors")
    if errors:
        print(f"all: {within}/{compared} sites within ±20% ({within / compared:.1%}), {within_3se}/{compared} within "
              f"3 standard errors of sampling; median |error| "
              f"{statistics.median(abs(e) for e in errors):.1%}, worst {max(errors, key=abs):+.1%}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
