"""Storage benchmark: a synthetic 24-hour run through the real writer.

2,880 snapshots (every 30 s) of 5,000 live allocation sites, 10% of which change per snapshot,
and 300 types, written with leaksoak's RunWriter into a fresh SQLite file. Prints the database
size, write time per snapshot (median, p99), the time of `soak report --format json` on it
(the real CLI, process start included, and in-process), the time and size of the HTML report,
and the time to read one site's series.

    python benchmarks/storage.py [--snapshots 2880] [--sites 5000] [--types 300] [--thin]

``--thin`` also applies the default retention (every snapshot of the last 6 h, every 10th before)
as a run would, every 20 minutes of synthetic time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from soak import api
from soak.analyzers import Thresholds
from soak.judging.analysis import refresh
from soak.judging.attribution import Attributor
from soak.reports import build_report, render
from soak.storage import open_database, queries
from soak.storage.retention import thin
from soak.storage.writer import RunWriter


def synthesize(path: str, snapshots: int, sites: int, types: int, interval: float, thinning: bool) -> list[float]:
    rng = np.random.default_rng(1)
    db = open_database(path)
    writer = RunWriter.create_run(
        db, name="synthetic-24h", target="app/handlers.py:handle", mode="run",
        planned_duration_s=snapshots * interval, interval_s=interval, options={},
        function_name=lambda file, line: f"func_{line % 97}",
    )
    files = [f"/srv/app/module_{i}.py" for i in range(200)]
    stacks = {  # unique allocation line per site, callers shared among many sites
        str(i + 1): [[files[i % len(files)], 10 + i]]
        + [[files[(i * 7 + d) % len(files)], 10 + (i * 13 + d * 31) % 900] for d in range(1, 10)]
        for i in range(sites)
    }
    sizes = rng.integers(64, 200_000, sites)
    counts = np.maximum(1, sizes // 64)
    leaking = rng.choice(sites, 20, replace=False)
    type_names = [f"app.models.Type{i}" for i in range(types)]
    type_counts = rng.integers(1, 50_000, types)
    write_ms = []
    for seq in range(snapshots):
        changing = rng.choice(sites, sites // 10, replace=False)
        sizes[changing] = np.maximum(0, sizes[changing] + rng.integers(-2_000, 2_000, len(changing)))
        sizes[leaking] += 50_000
        counts[changing] = np.maximum(1, sizes[changing] // 64)
        counts[leaking] += 1
        changing_types = rng.choice(types, types // 10, replace=False)
        type_counts[changing_types] += rng.integers(-50, 60, len(changing_types))
        body = {
            "pid": 1234, "iterations": seq * 1000, "tracer": "exact", "weight": 1.0,
            "traced_bytes": int(sizes.sum()), "tracer_overhead_bytes": 10_000_000,
            "gc_objects": 2_000_000, "gc_collections": seq, "asyncio_tasks": None, "at_boundary": True,
            "pause_total_ms": 500.0, "pause_ms": {"tracer": 450.0, "census": 50.0},
            "new_stacks": stacks if seq == 0 else {},
            "sites": [[i + 1, int(sizes[i]), int(counts[i])] for i in range(sites)],
            "types": [[type_names[i], int(type_counts[i])] for i in range(types)],
        }
        process = {"rss": 500_000_000 + seq * 10_000, "uss": 450_000_000, "fds": 40, "threads": 8, "pause_ms": 2.0}
        started = time.perf_counter()
        writer.record_snapshot(seq * interval, process, body)
        write_ms.append((time.perf_counter() - started) * 1000)
        if thinning and seq % 40 == 39:
            thin(db, writer.run_id, older_than_s=seq * interval - 6 * 3600, keep_every=10)
        if seq % 288 == 0:
            print(f"  {seq}/{snapshots} snapshots written", file=sys.stderr, flush=True)
    refresh(db, writer, Thresholds(), Attributor(["/srv/app"]), snapshots * interval)
    writer.finish("completed", None, snapshots * interval)
    db.close()
    return write_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshots", type=int, default=2880)
    parser.add_argument("--sites", type=int, default=5000)
    parser.add_argument("--types", type=int, default=300)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--thin", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.db")
        started = time.perf_counter()
        write_ms = synthesize(path, args.snapshots, args.sites, args.types, args.interval, args.thin)
        total_s = time.perf_counter() - started
        db = open_database(path, create=False)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        rows = db.execute("SELECT count(*) FROM site_samples").fetchone()[0]
        started = time.perf_counter()
        render(build_report(db, "latest"), "json")
        report_in_process = time.perf_counter() - started
        found = db.execute("SELECT stack_id FROM findings ORDER BY rank LIMIT 1").fetchone()
        findings = db.execute("SELECT count(*) FROM findings").fetchone()[0]
        stack_id = found[0] if found else 1
        started = time.perf_counter()
        times, series, _ = queries.site_series_of(db, 1, stack_id)
        read_one = time.perf_counter() - started
        stored = db.execute("SELECT count(*) FROM snapshots").fetchone()[0]
        db.close()
        started = time.perf_counter()
        page = api.report(path, "latest", fmt="html")
        html_s = time.perf_counter() - started
        cli = [sys.executable, "-m", "soak", "report", "--db", path, "--format", "json"]
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(cli, check=True, capture_output=True)
            runs.append(time.perf_counter() - started)
        startup = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "soak", "--help"], check=True, capture_output=True)
            startup.append(time.perf_counter() - started)
    write_ms.sort()
    print(f"synthetic run: {args.snapshots} snapshots x {args.sites} sites (10% changing) + {args.types} types"
          f"{', with retention' if args.thin else ''}; written in {total_s:.0f} s")
    print(f"snapshots stored:            {stored}  (findings: {findings}, of 20 planted leaks)")
    print(f"site sample rows:            {rows:,}")
    print(f"database size:               {size / 1e6:.1f} MB")
    print(f"write per snapshot:          median {statistics.median(write_ms):.1f} ms, p99 {write_ms[int(len(write_ms) * 0.99)]:.1f} ms")
    print(f"soak report --format json:   {min(runs):.2f} s (CLI, best of 3; `soak --help` alone takes {min(startup):.2f} s)")
    print(f"report in-process:           {report_in_process * 1000:.0f} ms")
    print(f"HTML report in-process:      {html_s * 1000:.0f} ms, {len(page.encode()) / 1e3:.0f} kB")
    print(f"one site's series ({len(series)} points): {read_one * 1000:.1f} ms")


if __name__ == "__main__":
    main()
