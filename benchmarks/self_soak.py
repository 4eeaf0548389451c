"""Self-soak: does leaksoak's own supervisor grow over a long run?

Runs ``soak run`` on a clean, paced workload (benchmarks/paced_clean.py) for ``--duration``
(an hour by default) while a second leaksoak, ``soak watch --pid <that supervisor> --tracer off``,
watches the supervisor process from outside, and the analysis process's RSS (soak.supervisor.analysis_process:
a run planned longer than 15 minutes analyses in it) is read beside. Prints the supervisor's RSS (first, last, peak), its
slope in MB/hour (least squares over the watch, and over its second half, after any warm-up),
the watcher's verdict on it, and the analysis process's RSS. Goal: at most 1 MB/hour, verdict clean.
Interrupted (Ctrl-C, SIGTERM, SIGHUP), it stops both and prints the numbers of the run so far.

    nice -n 19 python benchmarks/self_soak.py [--duration 1h] [--interval 5s] [--watch-interval 10s]
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

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


class AnalysisSampler(threading.Thread):
    """Reads the RSS of the supervisor's analysis process (soak.supervisor.analysis_process) every
    ``every_s``: the watcher sees the supervisor alone, and the analysis runs beside it."""

    def __init__(self, supervisor_pid: int, every_s: float) -> None:
        super().__init__(name="analysis-sampler", daemon=True)
        self.supervisor_pid, self.every_s = supervisor_pid, every_s
        self.samples: list[tuple[float, int, int]] = []
        """(seconds, pid, RSS)"""
        self.stopped = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopped.wait(self.every_s):
            try:
                children = psutil.Process(self.supervisor_pid).children()
            except psutil.Error:
                return
            for child in children:
                try:
                    if "soak.supervisor.analysis_process" in " ".join(child.cmdline()):
                        self.samples.append((time.monotonic() - started, child.pid, child.memory_info().rss))
                except psutil.Error:
                    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="1h", help="how long the watched soak runs (default 1h)")
    parser.add_argument("--interval", default="5s", help="the watched soak's snapshot interval (default 5s)")
    parser.add_argument("--watch-interval", default=None, help="the watcher's interval (default: duration/360, at least 0.5s)")
    parser.add_argument("--analysis", choices=("auto", "process", "supervisor"), default="auto",
                        help="where the watched run analyses (default auto: a process for runs longer than 15m)")
    parser.add_argument("--keep", action="store_true", help="keep the two databases and print where they are")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    duration_s = parse_duration(args.duration)
    watch_interval_s = parse_duration(args.watch_interval, option="watch-interval") if args.watch_interval else max(0.5, duration_s / 360)
    analysis = {"auto": [], "process": ["--analysis-process"], "supervisor": ["--analysis-in-supervisor"]}[args.analysis]

    workdir = Path(tempfile.mkdtemp(prefix="leaksoak-self-soak-"))
    run_db, watch_db = workdir / "run.db", workdir / "watch.db"
    print(f"self-soak: soak run {format_duration(duration_s)} (interval {args.interval}, analysis {args.analysis}) "
          f"on {WORKLOAD}; data in {workdir}; started {time.strftime('%H:%M:%S')}")
    interrupted: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        interrupted.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    started = time.monotonic()
    run = subprocess.Popen([*soak_command(), "run", WORKLOAD, "--db", str(run_db), "--duration", f"{duration_s}s",
                            "--interval", args.interval, *analysis, "--format", "json", "-q"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watcher: subprocess.Popen[str] | None = None
    sampler = AnalysisSampler(run.pid, watch_interval_s)
    watch_out = watch_err = ""
    run_out, run_err = b"", b""
    try:
        wait_for_first_snapshot(run_db, run)
        sampler.start()
        # The watcher ends a little before the run, so that it judges a live supervisor.
        watch_s = max(5.0, duration_s - (time.monotonic() - started) - max(3.0, 2 * watch_interval_s))
        watcher = subprocess.Popen([*soak_command(), "watch", "--pid", str(run.pid), "--tracer", "off", "--db", str(watch_db),
                                    "--duration", f"{watch_s:.1f}s", "--interval", f"{watch_interval_s}s", "--format", "json", "-q"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watch_out, watch_err = watcher.communicate()
        run_out, run_err = run.communicate(timeout=duration_s + 300)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: stop both, report what they have
        if not interrupted:
            interrupted.append("SIGINT")
        for proc in (watcher, run):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # each ends early with its report
        if watcher is not None:
            watch_out, watch_err = _collect(watcher)
        run_out, run_err = _collect(run)
    finally:
        sampler.stopped.set()
        if run.poll() is None:
            run.kill()
            run.wait()
    if interrupted:
        print(f"  interrupted ({interrupted[0]}) after {format_duration(time.monotonic() - started)}: the numbers are of the run so far")
    return report(args, duration_s, watch_interval_s, run, run_out, run_err, watcher, watch_out, watch_err,
                  sampler, workdir, run_db, watch_db)


def _collect(proc: subprocess.Popen[Any]) -> tuple[Any, Any]:
    try:
        return proc.communicate(timeout=120)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        return proc.communicate()


def report(args: argparse.Namespace, duration_s: float, watch_interval_s: float, run: subprocess.Popen[bytes],
           run_out: bytes, run_err: bytes, watcher: subprocess.Popen[str] | None, watch_out: str, watch_err: str,
           sampler: AnalysisSampler, workdir: Path, run_db: Path, watch_db: Path) -> int:
    rows: list[tuple[float, int, int | None]] = []
    if watch_db.exists():
        with sqlite3.connect(watch_db) as conn:
            rows = conn.execute("SELECT t_s, rss, uss FROM snapshots ORDER BY seq").fetchall()
    t_s = np.array([r[0] for r in rows], dtype=float)
    rss = np.array([r[1] for r in rows], dtype=float)
    uss = np.array([r[2] if r[2] is not None else np.nan for r in rows], dtype=float)
    half = len(t_s) // 2
    try:
        verdict = json.loads(watch_out)
    except ValueError:
        verdict = {}
        print(f"  the watcher printed no report (exit {watcher.returncode if watcher else None}): {watch_err.strip()[:500]}")
    try:
        run_report = json.loads(run_out) if run_out.strip() else {}
    except ValueError:
        run_report = {}

    print(f"  soak run: exit {run.returncode}, status {run_report.get('run', {}).get('status')}, "
          f"{run_report.get('run', {}).get('snapshots')} snapshots, verdict {run_report.get('verdict')}")
    print(f"  watcher: soak watch --pid {run.pid} every {format_duration(watch_interval_s)}: "
          f"exit {watcher.returncode if watcher else None}, {len(rows)} snapshots, verdict {verdict.get('verdict')}, "
          f"findings {len(verdict.get('findings', []))}")
    for finding in verdict.get("findings", []):
        print(f"    {finding.get('verdict')} {finding.get('kind')} {finding.get('resource') or ''} "
              f"{(finding.get('growth_bytes_per_hour') or 0) / MB:+.2f} MB/hour p={finding.get('p_value')}")
    second_half = slope_mb_per_hour(t_s[half:], rss[half:])
    if len(rss):
        print(f"  supervisor RSS: first {rss[0] / MB:.1f} MB, last {rss[-1] / MB:.1f} MB, peak {rss.max() / MB:.1f} MB")
        print(f"  supervisor RSS slope: {slope_mb_per_hour(t_s, rss):+.3f} MB/hour over the watch, "
              f"{second_half:+.3f} MB/hour over its second half")
    if not np.isnan(uss).all():
        print(f"  supervisor USS slope: {slope_mb_per_hour(t_s, uss):+.3f} MB/hour over the watch, "
              f"{slope_mb_per_hour(t_s[half:], uss[half:]):+.3f} MB/hour over its second half")
    if sampler.samples:
        memory = np.array([s[2] for s in sampler.samples], dtype=float)
        pids = {s[1] for s in sampler.samples}
        print(f"  analysis process: {len(pids)} seen (a fresh one every 50 refreshes), RSS median {np.median(memory) / MB:.1f} MB, "
              f"peak {memory.max() / MB:.1f} MB, last {memory[-1] / MB:.1f} MB ({len(memory)} readings)")
    else:
        print("  analysis process: none (the run analysed in its supervisor)")
    goal = second_half <= 1.0 and verdict.get("verdict") in ("clean", "inconclusive")
    print(f"  goal (<= 1 MB/hour over the second half, verdict clean): {'met' if goal else 'NOT met'}")
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
