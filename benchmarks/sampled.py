"""Statistics on sampled series: false alarms and power of the analyzer at sampling intervals R.

    python benchmarks/sampled.py [--sites 400] [--runs 40] [--leaks 60] [--seed 1] [--only clean|runs|power]

Each site's series is what a sampled tracer (Poisson over allocated bytes, mean interval R,
Horvitz–Thompson estimates) would report at 1 s snapshots over a 60 s run, simulated by
``tests/sampled_heap.py``; the analyzer is the product's (``soak.analyzers.analyze`` with the
default ``Thresholds``), given the estimated bytes and blocks. "exact" is R = 1 byte: every block
sampled, which is what tracemalloc reports.

Printed:

- per clean site: the share of ``--sites`` seeded series of each clean kind judged leak / suspect;
- per run: ``--runs`` runs of 200 clean sites (25 of each kind) judged together (one
  Benjamini–Hochberg family, as a refresh does): the share of runs whose verdict is leak / suspect;
- power: ``--leaks`` seeded leaks of each rate, alone and amid churn in the same site: the share
  judged leak at 60 s, and the median (and 90th percentile) of the first snapshot at which a
  refresh (one every 2 snapshots, as ``soak run`` does at 1 s
  intervals) calls it a leak.

A measurement: it exits 0 whatever it finds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sampled_heap import CLEAN_SITES, KIB, Estimate, Population, churn, leak, simulate  # noqa: E402

from soak.analyzers import Series, Thresholds, analyze  # noqa: E402

T = np.arange(0, 61, 1.0)
INTERVALS = {"exact": 1, "4K": 4 * KIB, "16K": 16 * KIB, "64K": 64 * KIB, "256K": 256 * KIB}
LEAK_RATES = [2_000, 5_000, 20_000, 100_000, 400_000]  # bytes/s of 50–500 B blocks
AWARE = True
"""Give the analyzer each site's live samples and R (``--unaware``: only bytes and blocks, as an exact tracer's)."""


def site(key: object, e: Estimate, n: int | None = None) -> Series:
    end = len(e.bytes) if n is None else n
    return Series(key, e.bytes[:end], e.blocks[:end], e.samples[:end] if AWARE else None)


def judge(times: np.ndarray, series: list[Series], interval: float, thresholds: Thresholds) -> str:
    return analyze(times, series, thresholds, sample_interval=interval if interval > 1 else None).verdict


def clean_sites(args: argparse.Namespace, thresholds: Thresholds) -> None:
    print(f"\nPer clean site, share judged leak / suspect ({args.sites} seeded sites each)")
    print(f"{'site':<16}" + "".join(f"{name:>14}" for name in INTERVALS))
    for k, (kind, populations) in enumerate(CLEAN_SITES.items()):
        cells = []
        for interval in INTERVALS.values():
            rng = np.random.default_rng([args.seed, k, interval])
            verdicts = []
            for i in range(args.sites):
                e = simulate(T, populations, interval, rng)
                verdicts.append(judge(T, [site(i, e)], interval, thresholds))
            cells.append(f"{verdicts.count('leak') / len(verdicts):6.1%}/{verdicts.count('suspect') / len(verdicts):5.1%}")
        print(f"{kind:<16}" + "".join(f"{c:>14}" for c in cells))


def clean_runs(args: argparse.Namespace, thresholds: Thresholds) -> None:
    print(f"\nPer run of 200 clean sites judged together, share of runs leak / suspect ({args.runs} runs)")
    cells = []
    for name, interval in INTERVALS.items():
        rng = np.random.default_rng([args.seed, 7, interval])
        verdicts = []
        for _ in range(args.runs):
            series = []
            for kind, populations in CLEAN_SITES.items():
                for j in range(25):
                    e = simulate(T, populations, interval, rng)
                    series.append(site((kind, j), e))
            verdicts.append(judge(T, series, interval, thresholds))
        cells.append(f"{verdicts.count('leak') / len(verdicts):6.1%}/{verdicts.count('suspect') / len(verdicts):5.1%}")
        print(f"  R={name:<6} {cells[-1]}", flush=True)


def first_leak(populations: list[Population], interval: float, rng: np.random.Generator, thresholds: Thresholds) -> tuple[str, int | None]:
    """Verdict at the end of the run, and the first snapshot count at which a refresh says leak."""
    e = simulate(T, populations, interval, rng)
    first = None
    for n in range(thresholds.min_points + 1, len(T) + 1, 2):  # a refresh every 2 snapshots, as `soak run` at 1 s
        if judge(T[:n], [site("site", e, n)], interval, thresholds) == "leak":
            first = n
            break
    final = judge(T, [site("site", e)], interval, thresholds)
    return final, first


def power(args: argparse.Namespace, thresholds: Thresholds) -> None:
    for amid in (False, True):
        title = "amid churn in the same site (200 KiB live, 10 B–4 KB blocks, 50 ms lifetimes)" if amid else "alone"
        print(f"\nLeaks of 50–500 B blocks, {title}: leak at 60 s; first leak refresh, median/p90 snapshot ({args.leaks} seeds)")
        print(f"{'rate':>9}" + "".join(f"{name:>22}" for name in INTERVALS))
        for rate in LEAK_RATES:
            cells = []
            for name, interval in INTERVALS.items():
                rng = np.random.default_rng([args.seed, rate, interval, amid])
                populations = [leak(rate)] + ([churn(200 * KIB, 0.05)] if amid else [])
                runs = [first_leak(populations, interval, rng, thresholds) for _ in range(args.leaks)]
                share = sum(v == "leak" for v, _ in runs) / len(runs)
                firsts = np.array([f if f is not None else np.inf for _, f in runs])
                med, p90 = np.percentile(firsts, [50, 90], method="nearest")
                per_snapshot = rate / interval if name != "exact" else None
                rel = f"{per_snapshot:.2g}/s " if per_snapshot is not None else ""
                cells.append(f"{rel}{share:4.0%} {_n(med)}/{_n(p90)}")
            print(f"{rate / 1000:>6.0f}kB/s" + "".join(f"{c:>22}" for c in cells), flush=True)


def _n(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=400)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--leaks", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["clean", "runs", "power"], action="append")
    parser.add_argument("--unaware", action="store_true", help="judge without the sites' live samples (as before the sampling rule)")
    args = parser.parse_args()
    global AWARE
    AWARE = not args.unaware
    print("analyzer given live samples and R" if AWARE else "analyzer given estimated bytes and blocks only")
    thresholds = Thresholds()
    only = set(args.only or ["clean", "runs", "power"])
    if "clean" in only:
        clean_sites(args, thresholds)
    if "runs" in only:
        clean_runs(args, thresholds)
    if "power" in only:
        power(args, thresholds)


if __name__ == "__main__":
    main()
