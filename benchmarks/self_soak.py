"""Self-soak: does leaksoak's own supervisor grow over a long run?

Runs ``soak run`` on a clean, paced workload (benchmarks/paced_clean.py) for ``--duration``
(an hour by default) while a second leaksoak, ``soak watch --pid <that supervisor> --tracer off``,
watches the supervisor process from outside. Prints the supervisor's RSS (first, last, peak), its
slope in MB/hour (least squares over the watch, and over its second half, after any warm-up),
and the watcher's verdict on it. Goal: at most 1 MB/hour, verdict clean.

    nice -n 19 python benchmarks/self_soak.py [--duration 1h] [--interval 5s] [--watch-interval 10s]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from soak.durations import format_duration, parse_duration

BENCHMARKS = Path(__file__).resolve().parent
WORKLOAD = f"{BENCHMARKS / 'paced_clean.py'}:step"
MB = 1_000_000


def soak_command() -> list[str]:
    return [sys.executable, "-m", "soak"]


def wait_for_first_snapshot(db: Path, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"self_soak: the soak run ended early with code {proc.returncode}")
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                if conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]:
                    return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.2)
    raise SystemExit("self_soak: the soak run took no snapshot in time")


def slope_mb_per_hour(t_s: np.ndarray, values: np.ndarray) -> float:
    if len(t_s) < 3:
        return float("nan")
    return float(np.polyfit(t_s / 3600.0, values / MB, 1)[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="1h", help="how long the watched soak runs (default 1h)")
    parser.add_argument("--interval", default="5s", help="the watched soak's snapshot interval (default 5s)")
    parser.add_argument("--watch-interval", default=None, help="the watcher's interval (default: duration/360, at least 0.5s)")
    parser.add_argument("--keep", action="store_true", help="keep the two databases and print where they are")
    args = parser.parse_args()
    duration_s = parse_duration(args.duration)
    watch_interval_s = parse_duration(args.watch_interval, option="watch-interval") if args.watch_interval else max(0.5, duration_s / 360)

    workdir = Path(tempfile.mkdtemp(prefix="leaksoak-self-soak-"))
    run_db, watch_db = workdir / "run.db", workdir / "watch.db"
    started = time.monotonic()
    run = subprocess.Popen([*soak_command(), "run", WORKLOAD, "--db", str(run_db), "--duration", f"{duration_s}s",
                            "--interval", args.interval, "--format", "json", "-q"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_first_snapshot(run_db, run)
        # The watcher ends a little before the run, so that it judges a live supervisor.
        watch_s = max(5.0, duration_s - (time.monotonic() - started) - max(3.0, 2 * watch_interval_s))
        watcher = subprocess.run([*soak_command(), "watch", "--pid", str(run.pid), "--tracer", "off", "--db", str(watch_db),
                                  "--duration", f"{watch_s:.1f}s", "--interval", f"{watch_interval_s}s", "--format", "json", "-q"],
                                 check=False, capture_output=True, text=True)
        run_out, run_err = run.communicate(timeout=duration_s + 300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()

    with sqlite3.connect(watch_db) as conn:
        rows = conn.execute("SELECT t_s, rss, uss FROM snapshots ORDER BY seq").fetchall()
    t_s = np.array([r[0] for r in rows], dtype=float)
    rss = np.array([r[1] for r in rows], dtype=float)
    uss = np.array([r[2] if r[2] is not None else np.nan for r in rows], dtype=float)
    half = len(t_s) // 2
    try:
        verdict = json.loads(watcher.stdout)
    except ValueError:
        print(f"self_soak: the watcher printed no report (exit {watcher.returncode}): {watcher.stderr.strip()}", file=sys.stderr)
        return 3
    run_report = json.loads(run_out) if run_out.strip() else {}

    print(f"self-soak: soak run {format_duration(duration_s)} (interval {args.interval}) on {WORKLOAD}")
    print(f"  soak run: exit {run.returncode}, status {run_report.get('run', {}).get('status')}, "
          f"{run_report.get('run', {}).get('snapshots')} snapshots, verdict {run_report.get('verdict')}")
    print(f"  watcher: soak watch --pid {run.pid} every {format_duration(watch_interval_s)}: exit {watcher.returncode}, "
          f"{len(rows)} snapshots, verdict {verdict.get('verdict')}, findings {len(verdict.get('findings', []))}")
    for finding in verdict.get("findings", []):
        print(f"    {finding.get('verdict')} {finding.get('kind')} {finding.get('resource') or ''} "
              f"{(finding.get('growth_bytes_per_hour') or 0) / MB:+.2f} MB/hour p={finding.get('p_value')}")
    print(f"  supervisor RSS: first {rss[0] / MB:.1f} MB, last {rss[-1] / MB:.1f} MB, peak {rss.max() / MB:.1f} MB")
    print(f"  supervisor RSS slope: {slope_mb_per_hour(t_s, rss):+.3f} MB/hour over the watch, "
          f"{slope_mb_per_hour(t_s[half:], rss[half:]):+.3f} MB/hour over its second half")
    if not np.isnan(uss).all():
        print(f"  supervisor USS slope: {slope_mb_per_hour(t_s, uss):+.3f} MB/hour over the watch, "
              f"{slope_mb_per_hour(t_s[half:], uss[half:]):+.3f} MB/hour over its second half")
    goal = slope_mb_per_hour(t_s[half:], rss[half:]) <= 1.0 and verdict.get("verdict") in ("clean", "inconclusive")
    print(f"  goal (<= 1 MB/hour, verdict clean): {'met' if goal else 'NOT met'}")
    if args.keep:
        print(f"  databases: {run_db} (the run), {watch_db} (the watcher)")
    else:
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    if run_err.strip():
        print(f"  soak run stderr: {run_err.decode(errors='replace').strip()[:500]}", file=sys.stderr)
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
