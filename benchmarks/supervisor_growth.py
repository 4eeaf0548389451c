"""How much the supervisor grows per 1000 snapshots, with and without the analysis process.

Two supervisors side by side, started together on the same clean, paced workload
(benchmarks/paced_clean.py) with the same options, one computing its analysis refreshes itself
(``RunOptions.analysis_process=False``), the other in an analysis process
(soak.supervisor.analysis_process, recycled every ``--recycle-every`` refreshes). Each supervisor's RSS is
read from outside every ``--sample-every``; the growth is the least-squares slope of RSS against
the run's snapshot count over the second half of the run (after imports and warm-up), per 1000
snapshots (and per hour at this interval). The analysis process's own RSS is printed too.

    nice -n 19 python benchmarks/supervisor_growth.py [--snapshots 2000] [--interval 0.1s]
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from soak.durations import format_duration, parse_duration

BENCHMARKS = Path(__file__).resolve().parent
WORKLOAD = f"{BENCHMARKS / 'paced_clean.py'}:step"
MB = 1_000_000
DRIVER = """
import sys
from soak.model.options import RunOptions
from soak.supervisor.runner import run
db, duration, interval, use, every = sys.argv[1:6]
result = run(RunOptions(target={workload!r}, db_path=db, duration_s=float(duration), interval_s=float(interval),
                        analysis_process=use == "1", analysis_recycle_every=int(every)))
print(result.status, result.verdict)
"""


@dataclass
class Side:
    name: str
    use_process: bool
    db: Path
    proc: subprocess.Popen[str] | None = None
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    """(seconds, snapshots, supervisor RSS, analysis process RSS or 0)"""
    analysis_pids: set[int] = field(default_factory=set)


def snapshots(db: Path) -> int | None:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM snapshots").fetchone()[0])
    except sqlite3.Error:
        return None


def analysis_rss(supervisor: psutil.Process, side: Side) -> int:
    total = 0
    for child in supervisor.children():
        try:
            if "soak.supervisor.analysis_process" in " ".join(child.cmdline()):
                side.analysis_pids.add(child.pid)
                total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def slope_per_1000(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x / 1000.0, y / MB, 1)[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=2000, help="snapshots per run (default 2000)")
    parser.add_argument("--interval", default="0.1s", help="snapshot interval (default 0.1s)")
    parser.add_argument("--recycle-every", type=int, default=50, help="refreshes per analysis process (default 50)")
    parser.add_argument("--sample-every", default="1s", help="how often RSS is read (default 1s)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    interval_s = parse_duration(args.interval, option="interval")
    every_s = parse_duration(args.sample_every, option="sample-every")
    duration_s = args.snapshots * interval_s
    workdir = Path(tempfile.mkdtemp(prefix="leaksoak-supervisor-growth-"))
    sides = [Side("in the supervisor", False, workdir / "in.db"), Side("analysis process", True, workdir / "process.db")]
    driver = DRIVER.format(workload=WORKLOAD)
    print(f"supervisor growth: {args.snapshots} snapshots every {format_duration(interval_s)} "
          f"({format_duration(duration_s)}) on {WORKLOAD}, two supervisors side by side")
    for side in sides:
        side.proc = subprocess.Popen([sys.executable, "-c", driver, str(side.db), str(duration_s), str(interval_s),
                                      "1" if side.use_process else "0", str(args.recycle_every)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    interrupted = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    try:
        while not interrupted and any(s.proc is not None and s.proc.poll() is None for s in sides):
            for side in sides:
                assert side.proc is not None
                if side.proc.poll() is not None:
                    continue
                try:
                    supervisor = psutil.Process(side.proc.pid)
                    rss = supervisor.memory_info().rss
                    analysis = analysis_rss(supervisor, side)
                except psutil.Error:
                    continue
                count = snapshots(side.db)
                if count is not None:
                    side.samples.append((time.monotonic() - started, count, rss, analysis))
            time.sleep(every_s)
    except KeyboardInterrupt:
        interrupted = True
    for side in sides:
        assert side.proc is not None
        if side.proc.poll() is None:
            side.proc.send_signal(signal.SIGINT)
        try:
            out, err = side.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            side.proc.kill()
            out, err = side.proc.communicate()
        status = out.strip() or f"exit {side.proc.returncode}: {err.strip()[-300:]}"
        report(side, status, interval_s)
    if interrupted:
        print("  (interrupted: the numbers are of the runs so far)")
    for path in workdir.iterdir():
        path.unlink()
    workdir.rmdir()
    return 0


def report(side: Side, status: str, interval_s: float) -> None:
    if len(side.samples) < 3:
        print(f"  {side.name}: too few samples ({len(side.samples)}); run: {status}")
        return
    data = np.array(side.samples, dtype=float)
    count, rss, analysis = data[:, 1], data[:, 2], data[:, 3]
    half = len(data) // 2
    per_1000 = slope_per_1000(count[half:], rss[half:])
    per_hour = per_1000 * 3600 / (1000 * interval_s)
    print(f"  {side.name}: run {status}; {int(count[-1])} snapshots; supervisor RSS first {rss[0] / MB:.1f} MB, "
          f"peak {rss.max() / MB:.1f} MB, last {rss[-1] / MB:.1f} MB")
    print(f"    supervisor growth over the second half: {per_1000:+.2f} MB per 1000 snapshots "
          f"({per_hour:+.2f} MB/hour at this interval); over the whole run {slope_per_1000(count, rss):+.2f} MB per 1000")
    if side.use_process:
        live = analysis[analysis > 0]
        print(f"    analysis process: {len(side.analysis_pids)} started, RSS "
              + (f"median {np.median(live) / MB:.1f} MB, peak {live.max() / MB:.1f} MB" if len(live) else "never read"))


if __name__ == "__main__":
    sys.exit(main())
