"""Snapshot pauses against wall time, with the pause budget off and on, side by side.

For each heap size, a clean workload holding N live gc-tracked objects is soaked by the real
CLI (``soak run``, default probes, a snapshot every ``--interval``), once with
``--pause-budget inf`` (every snapshot runs the full collection and the type census: the
"before") and once with the default budget; then the same heap in a service under the agent
(``python -m soak.agent``, sampled tracer) watched by ``soak watch``, with the agent's budget
``inf`` and its default. Configurations are interleaved, one after the other, in one run.

Printed per configuration: the total pause over the wall time the run lasted (what the workload
lost to snapshots), the pause per snapshot (p50, p99, max), and each probe's median pause with
the number of snapshots it ran in (the rationed ones, ``gc_collect``, ``types`` and ``holders``,
skip some), read as the run's report reads them (soak.reports.pauses).

    python benchmarks/pauses.py [--sizes 100000,1000000,2000000] [--duration 60s] [--interval 1s] [--agent-size 1000000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soak.agent import default_socket_path
from soak.durations import parse_duration
from soak.inprocess.probes.budget import AGENT_BUDGET, WORKER_BUDGET
from soak.judging.report_builder import pause_summary
from soak.model.report import PauseSummary

WORKLOAD = '''
import os
import time


class Node:
    __slots__ = ("value", "next")

    def __init__(self, value):
        self.value = value
        self.next = None


HEAP = [Node(i) for i in range(int(os.environ["PAUSES_LIVE"]))]


def step():
    scratch = [Node(i) for i in range(50)]  # a little churn, freed each call
    del scratch
    time.sleep(0.001)


if __name__ == "__main__":  # as a service under the agent
    print("ready", flush=True)
    while True:
        step()
'''


def soak_command() -> list[str]:
    return [sys.executable, "-m", "soak"]


def measured(db: Path) -> PauseSummary:
    """The run's pauses as its report gives them (soak.reports.pauses)."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        wall = conn.execute("SELECT duration_s FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
        rows = [dict(row) for row in conn.execute("SELECT pause_ms, probe_ms FROM snapshots ORDER BY seq")]
    summary = pause_summary(rows, wall)
    if summary is None:
        raise SystemExit(f"{db}: no snapshot recorded a pause")
    return summary


def run_worker(script: Path, live: int, budget: str, duration: str, interval: str, work: Path) -> PauseSummary:
    db = work / f"worker-{live}-{budget.replace('%', 'pc')}.db"
    env = {**os.environ, "PAUSES_LIVE": str(live)}
    proc = subprocess.run([*soak_command(), "run", f"{script}:step", "--db", str(db), "-d", duration, "-i", interval,
                           "--pause-budget", budget, "-q", "--fail-on", "never"],
                          env=env, capture_output=True, text=True, timeout=parse_duration(duration) + 300)
    if proc.returncode != 0:
        raise SystemExit(f"soak run failed ({proc.returncode}): {proc.stderr.strip()}")
    return measured(db)


def run_agent(script: Path, live: int, budget: str, duration: str, interval: str, work: Path) -> PauseSummary:
    db = work / f"agent-{live}-{budget.replace('%', 'pc')}.db"
    env = {**os.environ, "PAUSES_LIVE": str(live)}
    service = subprocess.Popen([sys.executable, "-m", "soak.agent", "--tracer", "sampled", "--pause-budget", budget,
                                "--", str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout is not None
        service.stdout.readline()  # "ready": the heap is built
        socket_path = default_socket_path(service.pid)
        deadline = time.monotonic() + 60
        while not os.path.exists(socket_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc = subprocess.run([*soak_command(), "watch", "--pid", str(service.pid), "--db", str(db), "-d", duration,
                               "-i", interval, "-q", "--fail-on", "never"],
                              capture_output=True, text=True, timeout=parse_duration(duration) + 300)
        if proc.returncode != 0:
            raise SystemExit(f"soak watch failed ({proc.returncode}): {proc.stderr.strip()}")
    finally:
        service.kill()
        service.wait()
    return measured(db)


def row(name: str, budget: str, m: PauseSummary) -> str:
    """The configuration's totals, then each probe's median pause and how many snapshots it ran in."""
    probes = "  ".join(f"{p.probe} {p.median_ms:.1f}x{p.runs}" for p in m.probes)
    return (f"{name:<16} {budget:>7} {m.share:>8.2%} {m.snapshots:>6} {m.p50_ms:>8.1f} {m.p99_ms:>8.1f} {m.max_ms:>8.1f}"
            f"  {probes}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000,2000000")
    parser.add_argument("--agent-size", type=int, default=1_000_000)
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--interval", default="1s")
    args = parser.parse_args()
    print(f"pause per snapshot in ms; default budgets: worker {WORKER_BUDGET:.0%}, agent {AGENT_BUDGET:.0%};"
          f" {args.duration} each, a snapshot every {args.interval}")
    print(f"{'configuration':<16} {'budget':>7} {'pause %':>8} {'snaps':>6} {'p50':>8} {'p99':>8} {'max':>8}"
          f"  per probe: median ms x snapshots it ran in")
    with tempfile.TemporaryDirectory(prefix="leaksoak-pauses-") as tmp:
        work = Path(tmp)
        script = work / "pauses_heap.py"
        script.write_text(WORKLOAD)
        for live in (int(s) for s in args.sizes.split(",")):
            for budget in ("inf", f"{WORKER_BUDGET:.0%}"):
                print(row(f"worker {live // 1000}k", budget, run_worker(script, live, budget, args.duration, args.interval, work)),
                      flush=True)
        if args.agent_size:
            for budget in ("inf", f"{AGENT_BUDGET:.0%}"):
                print(row(f"agent {args.agent_size // 1000}k", budget,
                          run_agent(script, args.agent_size, budget, args.duration, args.interval, work)), flush=True)


if __name__ == "__main__":
    main()
