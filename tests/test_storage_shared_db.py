"""Several runs started at once on one new database file: every one completes, none is refused.

This is how `benchmarks/accuracy.py --jobs N` and a CI matrix use leaksoak. Before the schema lock
and BEGIN IMMEDIATE, one run would find the schema half made ("not a leaksoak one") or fail a
write at once with "database is locked" after another run's commit.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import FAST_LEAKS, REFERENCE, db_rows, soak_command

WORKLOADS = ["clean_bounded_lru", "clean_churn", "clean_ttl_cache", "leaky_dict_cache"]


def test_runs_started_together_on_a_new_file_all_complete(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    procs = [
        subprocess.Popen(
            [*soak_command(), "run", f"{REFERENCE / name}.py:step", "--duration", "4s", "--interval", "0.25s",
             "--db", str(db), "--name", name, "--quiet", "--format", "json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **FAST_LEAKS},
        )
        for name in WORKLOADS
    ]
    errors = {name: (proc.wait(timeout=120), proc.communicate()[1]) for name, proc in zip(WORKLOADS, procs, strict=True)}
    assert all(code in (0, 1) and not err for code, err in errors.values()), errors
    rows = db_rows(db, "SELECT name, status, snapshots FROM runs ORDER BY name")
    assert [(name, status) for name, status, _ in rows] == [(name, "completed") for name in sorted(WORKLOADS)]
    assert all(snapshots >= 5 for _, _, snapshots in rows), rows
    assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
