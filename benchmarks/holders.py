"""The type census and the holder search at 100k, 1M and 2M live objects.

Builds a heap of N small instances held in a module-level dict (a cache leak of that size),
then times the ``types`` probe's census (its pause, as a snapshot records it) and one holder
search of the leaking type, each run a few times; prints the median of each.

    python benchmarks/holders.py [--sizes 100000,1000000,2000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import types

from soak.inprocess.probes.holders import find_holders
from soak.inprocess.probes.types import TypeProbe


class Entry:
    def __init__(self, n: int) -> None:
        self.n = n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000,2000000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cache = types.ModuleType("bench_cache")
    sys.modules["bench_cache"] = cache
    entries: dict[int, Entry] = {}
    cache.__dict__["ENTRIES"] = entries  # the module attribute holding the leak
    print(f"{'live objects':>14} {'census ms':>10} {'holder search ms':>17}  holder")
    for size in (int(s) for s in args.sizes.split(",")):
        entries.clear()
        entries.update((n, Entry(n)) for n in range(size))
        gc.collect()
        census, search, held = [], [], None
        probe = TypeProbe()
        for _ in range(args.repeat):
            started = time.perf_counter()
            probe.collect()
            census.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            found = find_holders([{"key": "k", "type": f"{__name__}.Entry"}])["k"]
            search.append((time.perf_counter() - started) * 1000)
            held = found.get("held_by")
        print(f"{len(gc.get_objects()):>14,} {statistics.median(census):>10.1f} {statistics.median(search):>17.1f}  {held}")


if __name__ == "__main__":
    main()
