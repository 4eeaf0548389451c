"""Kill tests at scale: SIGKILL the supervisor, then the worker, at random moments of real runs.

For each victim, ``--kills`` times (100 by default): start ``soak run`` (the first time a new run,
then ``--resume latest`` of the same run), SIGKILL the supervisor or its worker at a random
moment (a quarter of them timed from the start, mostly in start-up; the others 0.2-4 s after
the run's first new snapshot), wait for the supervisor to end, and check the database:
``PRAGMA integrity_check``, every snapshot a reader had seen committed before any kill still
there, and the run row's snapshot count equal to its snapshots. A last resume runs the run to its
end. Prints, per victim, the kills, corrupt databases, acknowledged snapshots lost, count
mismatches and the run's final status and segments. The suite (tests/test_storage_durability.py)
does 20 kills of the supervisor.

    nice -n 19 python benchmarks/kills.py [--kills 100] [--victims supervisor,worker] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from killing import VICTIMS, Kill, kill_once

LEAKY = "soak.workloads.reference.leaky_dict_cache:step"


def soak_command() -> list[str]:
    return [sys.executable, "-m", "soak"]


IN_START_UP = 0.25
"""The share of kills timed from the start of ``soak run`` (0.2–4 s: start-up, or its first
snapshots); the others land 0.2–4 s after the run's first new snapshot, mid-schedule."""


def kill_many(db: Path, victim: str, kills: int, rng: random.Random) -> list[Kill]:
    outcomes: list[Kill] = []
    seen: set[int] = set()
    command = ["run", LEAKY, "--db", str(db), "--duration", "1h", "--interval", "0.1s", "-q"]
    for n in range(1, kills + 1):
        outcome = kill_once(db, [*soak_command(), *command], victim, rng, seen_before=seen, in_start_up=IN_START_UP)
        outcomes.append(outcome)
        seen |= outcome.seen
        if not outcome.sound:
            print(f"  {victim} kill {n} at {outcome.after_s:.2f}s: integrity {outcome.integrity!r}, "
                  f"lost {sorted(outcome.lost)[:10]}, run row counts {outcome.counted} of {len(outcome.seen)}", flush=True)
        if outcome.seen or _has_run(db):
            command = ["run", "--resume", "latest", "--db", str(db), "--duration", "1h", "-q"]
        if n % 10 == 0:
            print(f"  {victim}: {n} kills, {len(seen)} snapshots seen", flush=True)
    return outcomes


def _has_run(db: Path) -> bool:
    try:
        with sqlite3.connect(db) as conn:
            return bool(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return False


def finish(db: Path) -> tuple[int, dict[str, object]]:
    """Resume once more to the end: the exit code and what the run says of itself."""
    if not _has_run(db):
        return 2, {"status": None, "note": "every kill landed before the run was created"}
    proc = subprocess.run([*soak_command(), "run", "--resume", "latest", "--db", str(db), "--duration", "4s",
                           "--format", "json", "-q"], check=False, capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    with sqlite3.connect(db) as conn:
        seqs = [seq for (seq,) in conn.execute("SELECT seq FROM snapshots ORDER BY seq")]
        segments = conn.execute("SELECT count(DISTINCT segment) FROM snapshots").fetchone()[0]
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    return proc.returncode, {"status": report.get("run", {}).get("status"), "verdict": report.get("verdict"),
                             "runs": runs, "segments": segments, "snapshots": len(seqs),
                             "series_without_holes": seqs == list(range(len(seqs)))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100, help="kills per victim (default 100)")
    parser.add_argument("--victims", default=",".join(VICTIMS), help="supervisor, worker or both (default)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    failed = False
    workdir = Path(tempfile.mkdtemp(prefix="leaksoak-kills-"))
    for victim in args.victims.split(","):
        db = workdir / f"{victim}.db"
        started = time.monotonic()
        outcomes = kill_many(db, victim, args.kills, rng)
        mid_run = sum(len(o.seen) > len(prev.seen) for prev, o in zip([Kill(victim, 0, "ok"), *outcomes], outcomes, strict=False))
        code, final = finish(db)
        corrupt = sum(o.integrity != "ok" for o in outcomes)
        lost = set().union(*(o.lost for o in outcomes))
        mismatched = sum(o.counted != len(o.seen) for o in outcomes)
        print(f"{victim}: {len(outcomes)} SIGKILLs in {time.monotonic() - started:.0f}s, each followed by --resume: "
              f"({mid_run} after the run's first new snapshot), {corrupt} corrupt databases, "
              f"{len(lost)} acknowledged snapshots lost, {mismatched} run rows miscounted; "
              f"last resume exit {code}: {final}", flush=True)
        failed |= bool(corrupt or lost or mismatched) or final["status"] != "completed" or not final.get("series_without_holes")
    for path in workdir.iterdir():
        path.unlink()
    workdir.rmdir()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
