"""SIGKILL a real ``soak run`` at a random moment and check what survives in its database.

Shared by tests/test_storage_durability.py (20 kills of the supervisor) and benchmarks/kills.py
(100 of the supervisor and 100 of the worker, each followed by ``--resume``).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

VICTIMS = ("supervisor", "worker")


def committed(db: Path) -> tuple[set[int], int]:
    """Snapshot seqs a reader sees as committed, and the run row's own count."""
    if not db.exists():
        return set(), 0
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            seqs = {seq for (seq,) in conn.execute("SELECT seq FROM snapshots")}
            row = conn.execute("SELECT snapshots FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return seqs, (row[0] if row else 0)
    except sqlite3.OperationalError:  # schema not created yet
        return set(), 0


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check``'s first line: ``ok`` for a sound database (or none yet)."""
    if not db.exists():
        return "ok"
    with sqlite3.connect(db, timeout=10) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@dataclass
class Kill:
    """What one kill left behind."""

    victim: str
    after_s: float
    """How long after ``soak run`` started the kill landed."""
    integrity: str
    lost: set[int] = field(default_factory=set)
    """Snapshots a reader had seen committed before the kill that are gone after it."""
    seen: set[int] = field(default_factory=set)
    """Every snapshot committed after the kill."""
    counted: int = 0
    """The run row's snapshot count after the kill (equal to ``len(seen)`` when they commit together)."""

    @property
    def sound(self) -> bool:
        return self.integrity == "ok" and not self.lost and self.counted == len(self.seen)


def _worker_of(supervisor: subprocess.Popen[str], deadline: float) -> psutil.Process | None:
    """The supervisor's worker process, waiting for it to be started until ``deadline``."""
    while time.monotonic() < deadline and supervisor.poll() is None:
        try:
            children = psutil.Process(supervisor.pid).children()
        except psutil.NoSuchProcess:
            return None
        if children:
            return children[0]
        time.sleep(0.02)
    return None


def _wait_for_a_new_snapshot(db: Path, proc: subprocess.Popen[str], seen_before: set[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if committed(db)[0] - seen_before:
            return
        time.sleep(0.05)


def kill_once(db: Path, command: list[str], victim: str, rng: random.Random, *, seen_before: set[int],
              in_start_up: float = 0.25, moment: tuple[float, float] = (0.2, 4.0)) -> Kill:
    """Start ``command`` (a ``soak run`` writing to ``db``), SIGKILL the ``victim`` at a random
    moment, wait for the supervisor to end, and check the database.

    The moment is, for a share ``in_start_up`` of the kills, a random time in ``moment`` seconds
    from the start (mostly inside start-up on a loaded machine); for the others, that long after
    the run's first new snapshot (mid-schedule, often mid-snapshot), whatever start-up costs.
    ``seen_before``: snapshots already seen committed by earlier kills of the same run; they, and
    those seen just before this kill, must all be there after it.
    """
    assert victim in VICTIMS
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        if rng.random() >= in_start_up:
            _wait_for_a_new_snapshot(db, proc, seen_before, timeout_s=120)
        time.sleep(rng.uniform(*moment))
        target: int | None = proc.pid
        if victim == "worker":
            worker = _worker_of(proc, time.monotonic() + 30)
            target = worker.pid if worker is not None else None
        before, _ = committed(db)
        after_s = time.monotonic() - started
        if target is not None:
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=120)  # a supervisor whose worker was killed ends the run by itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    health = integrity(db)
    after, counted = committed(db)
    return Kill(victim, after_s, health, (seen_before | before) - after, after, counted)
