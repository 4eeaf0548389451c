"""Estimate accuracy: the sampled tracer's and tracemalloc's live bytes per site, each against the
true size of the objects the workload keeps, on the Python that runs this.

For each leaky reference workload, a fresh child process imports it, notes every object alive,
starts tracemalloc (10 frames) and then the sampled tracer on top of it (its hooks chain to
tracemalloc's, so both see every call), runs ``step()`` for ``--seconds``, and at one call
boundary, after a full collection, takes three views:

- the sampler's estimates, and tracemalloc's traces, grouped by the same rule into sites (the
  same frames, cut the same way);
- the truth: every object alive then that was not alive at the start, each counted at
  ``sys.getsizeof`` (the object with what it allocated for itself: a list's item array, a dict's
  table, and the GC header before a tracked object; 3.12+: the managed dict's words too), at the
  site of the frames where it was created. Three things it cannot see: from 3.11 an instance of a
  plain class keeps its attributes' values outside any dict object (a block of their own on 3.11
  and 3.12, inline after the object on 3.13), which ``sys.getsizeof`` leaves out (128 to 136 bytes for a
  prometheus_client child, of 48 counted), so a site of such instances reads low; on 3.11,
  ``tracemalloc.get_object_traceback`` returns None for such an instance (it looks for the block at
  the GC head, and 3.11 puts the managed dict's two words before it), so it counts at no site; and
  an object made from a free list's block that predates tracing has no traceback to name its site
  (its size is printed as "at no site"). CPython reports an object's creation, a free list's
  reuse included, to tracemalloc's reference hook, which keeps the traceback of the object's
  memory block at its creation: that traceback names the site, the object its size. An object
  that was alive at the start and has grown since (a module's cache, a global list) counts its
  growth at the frames where it was grown: for half a second after the views are taken, the
  workload runs under ``sys.settrace``, which notes the frames where each such object's length
  changes (the most frequent ones are its site).

Sites are summed by the workload's line they come from (the first of their frames in the
workload's file, as leaksoak reports a library's allocations at the line that called into it);
every line holding at least ``--min-bytes`` of true size is compared: the relative error of each
tracer's figure. ``--seeds`` repeats each workload with other random streams of the sampler.

    python benchmarks/estimates.py [--seconds 10] [--interval 16KiB] [--seeds 2] [--min-bytes 1MB] [--scale 4] [--only NAME ...]

Prints one line per workload line (true size, the sampled and tracemalloc errors), then per tracer the
share within ±20% and, for the sampler, within three standard errors of what sampling alone
gives (sqrt(R/B) relative for B bytes at mean interval R). A measurement: it exits 0 whatever the
errors, non-zero only if a child fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from types import FrameType
from typing import Any

from soak.durations import parse_size
from soak.inprocess.probes.frames import DRIVER_FILES, Frame, FrameFilter
from soak.inprocess.probes.sampled import DEFAULT_SAMPLE_INTERVAL, SampledTracer
from soak.inprocess.targets import load_target, parse_target
from soak.workloads import reference
from soak.workloads.adapters import make_driver

FRAMES = 10
WATCH_S = 0.5
"""How long the workload runs under sys.settrace after the views, to find where grown objects grow."""
Site = tuple[Frame, ...]
OWN = os.path.abspath(__file__)


def _alive(ours: frozenset[int] = frozenset()) -> dict[int, Any]:
    """Every object alive: the collector's, and the objects they refer to (strings, bytes, ints
    and other untracked ones), by id; not what ``ours`` (this script's own tables) refer to."""
    found: dict[int, Any] = {}
    for obj in gc.get_objects():
        found[id(obj)] = obj
        if id(obj) not in ours:
            for ref in gc.get_referents(obj):
                found[id(ref)] = ref
    return found


def _size(obj: Any) -> int:
    try:
        return sys.getsizeof(obj)
    except TypeError:  # an object without a size (none in the corpus)
        return 0


class GrowthWatch:
    """Under sys.settrace, the frames where each watched object's length changes."""

    def __init__(self, watched: dict[int, Any], rule: FrameFilter) -> None:
        self.watched = {key: obj for key, obj in watched.items() if hasattr(obj, "__len__")}
        self.lengths = {key: len(obj) for key, obj in self.watched.items()}
        self.where: dict[int, Counter[Site]] = {key: Counter() for key in self.watched}
        self.rule = rule
        self.position: Site = ()

    def _stack(self, frame: FrameType | None) -> Site:
        frames: list[Frame] = []
        while frame is not None and len(frames) < FRAMES:
            frames.append((frame.f_code.co_filename, frame.f_lineno))
            if frame.f_code.co_filename in DRIVER_FILES:
                break
            frame = frame.f_back
        return self.rule.workload_frames(tuple(frames))

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        # a change seen now happened where the previous event left the code running
        for key, obj in self.watched.items():
            length = len(obj)
            if length != self.lengths[key]:
                self.lengths[key] = length
                if self.position:
                    self.where[key][self.position] += 1
        # after a return, the caller goes on at its line
        self.position = self._stack(frame.f_back if event == "return" else frame)
        return self.trace


def child(name: str, seconds: float, interval: int, seed: int) -> dict[str, Any]:
    """Drive the workload as the worker does; take both tracers' views and the truth at one call boundary."""
    target = load_target(parse_target(f"soak.workloads.reference.{name}:step"))
    if target.setup is not None:
        target.setup()
    gc.collect()
    before = _alive()
    sizes_before = {key: _size(obj) for key, obj in before.items()}
    tracemalloc.start(FRAMES)
    from soak.inprocess.probes import _sampler

    tracer = SampledTracer(frames=FRAMES, interval=interval)
    tracer.start()
    _sampler._seed(seed)
    driver = make_driver(target.function, is_async=target.is_async)
    views: dict[str, Any] = {}
    rule = FrameFilter()

    def take_views() -> None:
        gc.collect()
        # the truth first: the tracers' views are objects too, made when taken
        truth: dict[Site, int] = {}
        unplaced = 0
        grown: dict[int, int] = {}
        ours = frozenset((id(before), id(sizes_before)))
        for key, obj in _alive(ours).items():
            if key in ours:
                continue
            if key in before:
                growth = _size(obj) - sizes_before[key]
                if growth > 0:
                    grown[key] = growth
                continue
            traceback = tracemalloc.get_object_traceback(obj)
            site = rule.workload_frames(tuple((f.filename, f.lineno) for f in reversed(traceback))) if traceback else ()
            if site and site[0][0] != OWN:  # not this script's own objects (the lists of what is alive)
                truth[site] = truth.get(site, 0) + _size(obj)
            elif traceback is None:
                unplaced += _size(obj)

        views["truth"], views["grown"], views["unplaced"] = truth, grown, unplaced
        views["estimated"] = tracer.collect()
        views["raw"] = tracemalloc._get_traces()  # type: ignore[attr-defined]
        views["watch"] = GrowthWatch({key: before[key] for key in grown}, rule)
        sys.settrace(views["watch"].trace)

    def finish() -> None:
        try:
            time.sleep(seconds)
            driver.at_boundary(take_views, 30.0)
            time.sleep(WATCH_S)
            driver.at_boundary(lambda: sys.settrace(None), 30.0)
        finally:  # whatever failed, the child ends (its error is reported by the parent)
            driver.stop()

    threading.Thread(target=finish, daemon=True).start()
    driver.run()
    tracer.stop()
    tracemalloc.stop()
    truth: dict[Site, int] = views["truth"]
    watch: GrowthWatch = views["watch"]
    ungrown = 0
    for key, growth in views["grown"].items():
        seen = watch.where.get(key)
        if seen:
            site = seen.most_common(1)[0][0]
            truth[site] = truth.get(site, 0) + growth
        else:
            ungrown += growth  # grew before the watch, not during it
    exact: dict[Site, int] = {}
    for _domain, size, traceback, _total in views["raw"]:
        frames = rule.workload_frames(traceback)
        if frames:
            exact[frames] = exact.get(frames, 0) + size
    estimates = {site.frames: site.size for site in views["estimated"].sites}
    workload = os.path.abspath(target.module.__file__ or "")
    return {"calls": driver.iterations, "unplaced": views["unplaced"] + ungrown,
            "sites": [(line, size, by_line(estimates, workload).get(line, 0), by_line(exact, workload).get(line, 0))
                      for line, size in by_line(truth, workload).items()]}


def by_line(sites: dict[Site, Any], workload: str) -> dict[str, Any]:
    """Sites summed by the workload's line they come from: the first of their frames in the
    workload's file (``leaky_callbacks.py:24``), as leaksoak reports a library's allocations at the
    application line that called into it; a site with no frame there by its own first frame. A
    library object's parts are often made on several of the library's lines (an instance's
    attribute dict at its first assignment, grown at the next ones), which the truth, by object,
    cannot tell apart; under the workload's line they are one."""
    summed: dict[str, Any] = {}
    for site, value in sites.items():
        file, line = next((frame for frame in site if frame[0] == workload), site[0])
        label = f"{os.path.basename(file)}:{line}"
        summed[label] = summed.get(label, 0) + value
    return summed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", default=str(DEFAULT_SAMPLE_INTERVAL))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--min-bytes", default="1MB")
    parser.add_argument("--scale", type=float, default=4.0,
                        help="LEAKSOAK_LEAK_SCALE (4: every call leaks, so sites grow past 1 MB in seconds under tracemalloc)")
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--json", metavar="FILE", help="also write every compared site here")
    parser.add_argument("--child", nargs=4, metavar=("NAME", "SECONDS", "INTERVAL", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, seconds, interval, seed = args.child
        print(json.dumps(child(name, float(seconds), int(interval), int(seed))))
        return 0
    interval = parse_size(args.interval, option="interval")
    min_bytes = parse_size(args.min_bytes, option="min-bytes")
    names = [n for n in reference.names() if n.startswith("leaky_") and (not args.only or n in args.only)]
    print(f"estimate accuracy on {platform.python_implementation()} {platform.python_version()}: the sampled tracer at "
          f"{interval} B and tracemalloc against the size of the objects kept, {args.seconds:g} s per workload, "
          f"{args.seeds} seed(s), sites of at least {min_bytes:,} B")
    compared: list[dict[str, Any]] = []
    failed = 0
    for name in names:
        for seed in range(1, args.seeds + 1):
            proc = subprocess.run([sys.executable, __file__, "--child", name, str(args.seconds), str(interval), str(seed)],
                                  capture_output=True, text=True, env={**os.environ, "LEAKSOAK_LEAK_SCALE": repr(args.scale)})
            if proc.returncode != 0:
                last = proc.stderr.strip().splitlines()[-1:] or ["?"]
                print(f"  {name:24} seed {seed}: failed: {last[0]}")
                failed += 1
                continue
            data = json.loads(proc.stdout)
            for label, true, sampled, exact in sorted(data["sites"], key=lambda site: -site[1]):
                if true < min_bytes:
                    continue
                row = {"workload": name, "seed": seed, "site": label, "true": true,
                       "sampled": (sampled - true) / true, "tracemalloc": (exact - true) / true}
                compared.append(row)
                print(f"  {name:24} seed {seed}  {label:28} {true / 1e6:6.2f} MB   sampled {row['sampled']:+6.1%}   "
                      f"tracemalloc {row['tracemalloc']:+6.1%}")
            if data["unplaced"] >= min_bytes / 10:
                print(f"  {name:24} seed {seed}  ({data['unplaced'] / 1e6:.2f} MB of new objects at no site)")
    if compared:
        for tracer in ("sampled", "tracemalloc"):
            errors = [row[tracer] for row in compared]
            within = sum(abs(e) <= 0.2 for e in errors)
            extra = ""
            if tracer == "sampled":  # |error| <= 3 sqrt(R / B): three standard errors of sampling B bytes at interval R
                close = sum(abs(row["sampled"]) <= 3 * (interval / row["true"]) ** 0.5 for row in compared)
                extra = f", {close}/{len(compared)} within 3 standard errors of sampling"
            print(f"{tracer}: {within}/{len(compared)} sites within ±20%{extra}; median |error| "
                  f"{statistics.median(abs(e) for e in errors):.1%}, worst {max(errors, key=abs):+.1%}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"python": platform.python_version(), "interval": interval, "seconds": args.seconds,
                       "sites": compared}, file, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
